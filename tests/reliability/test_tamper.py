"""Tampered bundles: nothing outside the manifest is loaded, nothing the manifest names escapes the bundle.

The manifest proves a bundle is intact; these cases make sure that what is checked is what is loaded:
symlinks, unlisted files (an extra PEFT adapter), manifest entries outside the bundle, unknown algorithms.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import verticals
from verticals.bundles.bundle import digest, verify
from verticals.errors import BundleError

from ..conftest import FAST, run_cli, text_rows, write_csv

pytestmark = pytest.mark.reliability

QUERIES = ["question about my invoice and the refund", "question about my parcel and the courier",
           "question about my password and the login"]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, tiny_backbone) -> Path:
    root = tmp_path_factory.mktemp("tamper")
    train = write_csv(root / "train.csv", text_rows(8, 0))
    verticals.train("text-classification", train, output=root / "b", overrides=FAST, backbone=str(tiny_backbone))
    return root / "b"


def _copy(bundle: Path, tmp_path: Path, name: str = "copy") -> Path:
    target = tmp_path / name
    shutil.copytree(bundle, target)
    return target


def _scores(path: Path) -> list[dict[str, float]]:
    return [p.scores for p in verticals.load(path).predict(QUERIES)]


def _write_adapter(backbone_dir: Path, base: Path) -> None:
    """A PEFT LoRA adapter with large random weights, saved beside the backbone's own files."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(base))
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=64, target_modules=["query", "value"],
                                                  init_lora_weights=False))
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name:
                param.normal_(0, 2.0)
    peft_model.save_pretrained(str(backbone_dir))
    config = json.loads((backbone_dir / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(backbone_dir)
    (backbone_dir / "adapter_config.json").write_text(json.dumps(config))


def test_symlinked_backbone_with_an_extra_adapter_is_refused(bundle, tmp_path):
    """The attack of issue 15 item 6: same digest, different predictions. It must not pass."""
    copy = _copy(bundle, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    shutil.move(copy / "backbone", elsewhere)
    _write_adapter(elsewhere, elsewhere)
    (copy / "backbone").symlink_to(elsewhere, target_is_directory=True)
    assert digest(copy) == digest(bundle)  # the manifest was not touched
    with pytest.raises(BundleError, match="symbolic link"):
        verify(copy)
    with pytest.raises(BundleError, match="symbolic link"):
        verticals.load(copy)
    result = run_cli("inspect", str(copy), "--expect", digest(bundle))
    assert result.returncode == 2 and "symbolic link" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("target", ["file", "outside"])
def test_symlinked_files_are_refused(bundle, tmp_path, target):
    copy = _copy(bundle, tmp_path)
    head = copy / "head.safetensors"
    real = tmp_path / "head.safetensors" if target == "outside" else copy / "backbone" / "vocab.txt"
    if target == "outside":
        shutil.move(head, real)
        head.symlink_to(real)
    else:  # an unlisted link inside the bundle pointing at a listed file
        (copy / "backbone" / "vocab-link.txt").symlink_to(real)
    with pytest.raises(BundleError, match="symbolic link"):
        verify(copy)


def test_bundle_given_through_a_symlink_is_fine(bundle, tmp_path):
    link = tmp_path / "link"
    link.symlink_to(bundle, target_is_directory=True)
    assert verify(link)["files"]
    assert verticals.load(link).predict(QUERIES[:1])


def test_adapter_files_listed_in_the_manifest_are_not_loaded(bundle, tmp_path):
    """Even an adapter that the manifest lists (a rewritten manifest) is never applied to the backbone."""
    from verticals.bundles.bundle import write_manifest

    copy = _copy(bundle, tmp_path)
    _write_adapter(copy / "backbone", copy / "backbone")
    write_manifest(copy)
    assert _scores(copy) == _scores(bundle)


def test_the_verified_bytes_loader_matches_from_pretrained(bundle):
    """The bundle's backbone, built from config.json + safetensors, is the model save_pretrained wrote."""
    import torch
    from transformers import AutoModel
    from verticals.backbones.loading import load_bundle_backbone

    ours = load_bundle_backbone(bundle)
    reference = AutoModel.from_pretrained(str(bundle / "backbone")).eval()
    ids = torch.tensor([[101, 2054, 2003, 1996, 102]])
    with torch.no_grad():
        assert torch.equal(ours(input_ids=ids).last_hidden_state, reference(input_ids=ids).last_hidden_state)


@pytest.mark.parametrize("change", ["drop", "extra", "shape"])
def test_weights_that_do_not_fit_the_config_are_refused(bundle, tmp_path, change):
    """A re-manifested bundle whose backbone weights lack a parameter, carry an unknown one or change a shape."""
    import torch
    from safetensors.torch import load_file, save_file
    from verticals.bundles.bundle import write_manifest

    copy = _copy(bundle, tmp_path)
    path = copy / "backbone" / "model.safetensors"
    state = load_file(str(path))
    if change == "drop":
        state.pop("pooler.dense.weight")
    elif change == "extra":
        state["encoder.layer.0.attention.self.query.lora_A.weight"] = torch.zeros(4, 32)
    else:
        state["pooler.dense.weight"] = torch.zeros(16, 32)
    save_file(state, str(path))
    write_manifest(copy)
    with pytest.raises(BundleError, match="weights do not match config.json"):
        verticals.load(copy)


@pytest.mark.parametrize("name", ["backbone/adapter_config.json", ".hidden", "backbone/.cache/x", "notes/a.txt"])
def test_unlisted_files_are_refused_hidden_ones_too(bundle, tmp_path, name):
    copy = _copy(bundle, tmp_path)
    (copy / name).parent.mkdir(parents=True, exist_ok=True)
    (copy / name).write_text("{}")
    with pytest.raises(BundleError, match="not in the manifest"):
        verify(copy)


def test_unlisted_empty_directory_and_special_files_are_refused(bundle, tmp_path):
    copy = _copy(bundle, tmp_path)
    (copy / "backbone" / "extra").mkdir()
    with pytest.raises(BundleError, match="not in the manifest"):
        verify(copy)
    copy2 = _copy(bundle, tmp_path, "copy2")
    os.mkfifo(copy2 / "pipe")
    with pytest.raises(BundleError, match="not a regular file"):
        verify(copy2)


def _rewrite_manifest(copy: Path, change) -> None:  # type: ignore[no-untyped-def]
    manifest = json.loads((copy / "manifest.json").read_text())
    change(manifest)
    (copy / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("entry", ["/etc/hostname", "../outside.txt", "backbone/../../outside.txt",
                                   "./head.safetensors", "backbone//vocab.txt", "C:\\x", ""])
def test_manifest_entries_outside_the_bundle_are_refused(bundle, tmp_path, entry):
    import hashlib

    copy = _copy(bundle, tmp_path)
    (tmp_path / "outside.txt").write_text("x")
    target = Path("/etc/hostname") if entry == "/etc/hostname" else tmp_path / "outside.txt"
    sha = hashlib.sha256(target.read_bytes()).hexdigest() if target.exists() else "0" * 64
    _rewrite_manifest(copy, lambda m: m["files"].__setitem__(entry, sha))
    with pytest.raises(BundleError, match="manifest entry"):
        verify(copy)
    result = run_cli("inspect", str(copy))
    assert result.returncode == 2 and "manifest entry" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("algorithm", ["md5", None, "SHA256 "])
def test_unknown_manifest_algorithm_is_refused(bundle, tmp_path, algorithm):
    copy = _copy(bundle, tmp_path)
    _rewrite_manifest(copy, lambda m: m.__setitem__("algorithm", algorithm))
    with pytest.raises(BundleError, match="algorithm"):
        verify(copy)


def test_deeply_nested_manifest_is_refused_cleanly(bundle, tmp_path):
    copy = _copy(bundle, tmp_path)
    (copy / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(BundleError, match="unreadable manifest"):
        verify(copy)


def test_malformed_digests_are_refused(bundle, tmp_path):
    copy = _copy(bundle, tmp_path)
    _rewrite_manifest(copy, lambda m: m["files"].__setitem__("head.safetensors", 12))
    with pytest.raises(BundleError, match="head.safetensors"):
        verify(copy)


def test_inspect_lists_every_file_and_flags_data_derived_ones(bundle, tmp_path):
    result = run_cli("inspect", str(bundle), "--json")
    assert result.returncode == 0, result.stderr
    listing = {f["path"]: f for f in json.loads(result.stdout)["contents"]}
    manifest = json.loads((bundle / "manifest.json").read_text())["files"]
    assert set(listing) == set(manifest)
    assert all(f["bytes"] == (bundle / p).stat().st_size for p, f in listing.items())
    text = run_cli("inspect", str(bundle))
    assert text.returncode == 0 and "backbone/model.safetensors" in text.stdout


@pytest.mark.parametrize("name", ["fallback_index.json", "my_index.json"])
def test_inspect_flags_data_derived_files(bundle, tmp_path, name):
    from verticals.bundles.bundle import write_manifest

    copy = _copy(bundle, tmp_path)
    (copy / name).write_text('{"dim": 2, "metadata": [{"text": "a training utterance"}]}')
    (copy / name.replace(".json", ".faiss")).write_bytes(b"vectors")
    write_manifest(copy)
    result = run_cli("inspect", str(copy), "--json")
    listing = {f["path"]: f for f in json.loads(result.stdout)["contents"]}
    assert "utterance" in listing[name]["data"] or "indexed" in listing[name]["data"]
    assert listing[name.replace(".json", ".faiss")]["data"] and listing["bundle.json"]["data"]
    assert not listing["head.safetensors"]["data"] and not listing["backbone/model.safetensors"]["data"]
    text = run_cli("inspect", str(copy)).stdout
    assert "* " in text and name in text and "holds data" in text


def test_a_bundle_replaced_while_it_loads_is_refused_not_mixed(bundle, tmp_path, monkeypatch):
    """Found reviewing CI stop 47: each file was checked against the manifest on disk at the moment it was
    read, so a bundle swapped in place (train --overwrite) during a load gave the first bundle's description
    with the second's weights, each passing its own check. The manifest read first now pins the whole load."""
    import verticals.api as api
    from safetensors.torch import load_file, save_file
    from verticals.bundles.bundle import write_manifest

    served = _copy(bundle, tmp_path, "served")
    loaded_digest = digest(served)
    assert verticals.load(served).digest == loaded_digest  # what a server reports is what it loaded
    other = _copy(bundle, tmp_path, "other")  # another valid bundle: the same with other head weights
    head = load_file(str(other / "head.safetensors"))
    save_file({name: tensor + 1.0 for name, tensor in head.items()}, str(other / "head.safetensors"))
    (other / "manifest.json").unlink()
    write_manifest(other)
    verify(other)
    real_read_info = api.read_info

    def read_info_then_swap(*args, **kwargs):
        info = real_read_info(*args, **kwargs)
        os.replace(served, tmp_path / "served.old")  # what train --overwrite does
        os.replace(other, served)
        return info

    monkeypatch.setattr(api, "read_info", read_info_then_swap)
    with pytest.raises(BundleError, match="head.safetensors: sha256 does not match the manifest"):
        verticals.load(served)


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_a_manifest_that_is_not_a_regular_file_is_refused_at_once(bundle, tmp_path, kind):
    """Second read of the pinned load: it opens manifest.json before verify looks at anything, and a FIFO
    there blocked the open for ever (a directory gave a traceback)."""
    import subprocess
    import sys

    copy = _copy(bundle, tmp_path)
    (copy / "manifest.json").unlink()
    if kind == "fifo":
        os.mkfifo(copy / "manifest.json")
    else:
        (copy / "manifest.json").mkdir()
    script = ("import sys, verticals\ntry:\n    verticals.load(sys.argv[1])\nexcept verticals.BundleError as exc:\n"
              "    print(exc)\n    sys.exit(2)\n")
    done = subprocess.run([sys.executable, "-c", script, str(copy)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "VERTICALS_PLUGINS": ""})
    assert done.returncode == 2, done.stderr[-2000:]
    assert "manifest.json" in done.stdout


def test_a_bundle_link_flipped_while_it_loads_is_refused(bundle, tmp_path, monkeypatch):
    """Second read of the pinned load: the pin was kept under the resolved path, so after `current` was
    flipped from v1 to v2 during a load the rest of it found no pin and read v2, checked against v2's manifest."""
    import verticals.api as api
    from safetensors.torch import load_file, save_file
    from verticals.bundles.bundle import write_manifest

    v1, v2 = _copy(bundle, tmp_path, "v1"), _copy(bundle, tmp_path, "v2")
    head = load_file(str(v2 / "head.safetensors"))
    save_file({name: tensor + 1.0 for name, tensor in head.items()}, str(v2 / "head.safetensors"))
    (v2 / "manifest.json").unlink()
    write_manifest(v2)
    current = tmp_path / "current"
    current.symlink_to(v1, target_is_directory=True)
    real_read_info = api.read_info

    def read_info_then_flip(*args, **kwargs):
        info = real_read_info(*args, **kwargs)
        flipped = tmp_path / "current.new"
        flipped.symlink_to(v2, target_is_directory=True)
        os.replace(flipped, current)  # how a release flips a link
        return info

    monkeypatch.setattr(api, "read_info", read_info_then_flip)
    with pytest.raises(BundleError, match="head.safetensors: sha256 does not match the manifest"):
        verticals.load(current)
