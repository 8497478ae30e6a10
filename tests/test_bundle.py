"""Bundle integrity: atomic writes, and any modification is refused by load/evaluate/predict."""

from __future__ import annotations

import shutil

import pytest
import verticals
from verticals.bundles.bundle import atomic_directory
from verticals.errors import BundleError

from .conftest import FAST, run_cli


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, tiny_backbone):
    from .conftest import text_rows, write_csv

    root = tmp_path_factory.mktemp("bundle")
    train = write_csv(root / "train.csv", text_rows(8, 0))
    verticals.train("text-classification", train, output=root / "b", overrides=FAST, backbone=str(tiny_backbone))
    return root / "b"


def _copy(bundle, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(bundle, target)
    return target


@pytest.mark.parametrize("name", ["bundle.json", "head.safetensors", "backbone/model.safetensors",
                                  "backbone/tokenizer.json"])
def test_one_changed_byte_is_refused(bundle, tmp_path, name):
    copy = _copy(bundle, tmp_path)
    path = copy / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256 does not match"):
        verticals.load(copy)
    for args in (["evaluate", str(copy), "--data", str(bundle.parent / "train.csv")], ["predict", str(copy), "hi"]):
        result = run_cli(*args)
        assert result.returncode == 2 and "sha256 does not match" in result.stderr
        assert "Traceback" not in result.stderr


def test_missing_and_extra_files_are_refused(bundle, tmp_path):
    copy = _copy(bundle, tmp_path)
    (copy / "head.safetensors").unlink()
    with pytest.raises(BundleError, match="incomplete"):
        verticals.load(copy)
    copy2 = tmp_path / "copy2"
    shutil.copytree(bundle, copy2)
    (copy2 / "backbone" / "pytorch_model.bin").write_bytes(b"not allowed")
    with pytest.raises(BundleError, match="not in the manifest"):
        verticals.load(copy2)
    with pytest.raises(BundleError, match="does not exist"):
        verticals.load(tmp_path / "nowhere")


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_directory(tmp_path / "out") as tmp:
            (tmp / "partial").write_text("x")
            raise RuntimeError("crash while saving")
    assert list(tmp_path.iterdir()) == []


def test_bundle_needing_a_missing_pack(bundle, tmp_path):
    import json

    from verticals.bundles.bundle import write_manifest

    copy = _copy(bundle, tmp_path)
    info = json.loads((copy / "bundle.json").read_text())
    info["pack"] = "finance"
    (copy / "bundle.json").write_text(json.dumps(info))
    write_manifest(copy)
    with pytest.raises(BundleError, match="pip install verticals-finance"):
        verticals.load(copy)


def test_newer_bundle_with_unknown_options_loads_with_warning(bundle, tmp_path):
    import json

    from verticals.bundles.bundle import write_manifest

    copy = _copy(bundle, tmp_path)
    info = json.loads((copy / "bundle.json").read_text())
    info["config"]["training"]["future_option"] = 1
    info["format_version"] = 99
    info["future_field"] = "x"
    (copy / "bundle.json").write_text(json.dumps(info))
    write_manifest(copy)
    with pytest.warns(UserWarning, match="future_option"):
        predictor = verticals.load(copy)
    assert predictor.predict(["hello"])[0].label


def test_inspect_pins_the_bundle_by_its_digest(bundle, tmp_path):
    """`inspect` verifies without loading the model; --expect catches a bundle whose manifest was rewritten,
    which the manifest check alone cannot."""
    import hashlib
    import json

    from verticals.bundles.bundle import write_manifest

    result = run_cli("inspect", str(bundle), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    expected = hashlib.sha256((bundle / "manifest.json").read_bytes()).hexdigest()
    assert summary["digest"] == expected
    assert summary["task"] == "text-classification" and summary["labels"] == ["account", "billing", "shipping"]
    assert summary["files"] == len(json.loads((bundle / "manifest.json").read_text())["files"])
    assert summary["data"]["train"]["records"] > 0 and "validation" in summary["metrics"]
    assert run_cli("inspect", str(bundle), "--expect", expected.upper()).returncode == 0

    copy = _copy(bundle, tmp_path)
    info = json.loads((copy / "bundle.json").read_text())
    info["metrics"]["validation"]["accuracy"] = 1.0  # a doctored claim, manifest regenerated to match
    (copy / "bundle.json").write_text(json.dumps(info))
    write_manifest(copy)
    assert run_cli("inspect", str(copy)).returncode == 0  # intact as far as its own manifest can tell
    result = run_cli("inspect", str(copy), "--expect", expected)
    assert result.returncode == 2 and "not the bundle that was sent" in result.stderr

    (copy / "head.safetensors").write_bytes(b"changed")
    result = run_cli("inspect", str(copy))
    assert result.returncode == 2 and "sha256 does not match" in result.stderr and "Traceback" not in result.stderr
