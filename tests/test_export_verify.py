"""Exports are verifiable like bundles (issue 29 item 2): one digest for the whole export, export.json
included; predict.py refuses a tampered export; `verticals inspect EXPORT [--expect]` reads exports."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")

import verticals  # noqa: E402
from verticals.cli import main  # noqa: E402
from verticals.delivery.export import export_onnx  # noqa: E402
from verticals.testing import make_tiny_backbone, only_plugins, run_export_reference  # noqa: E402


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("exportverify")
    backbone = str(make_tiny_backbone(root / "tiny"))
    (root / "tc.jsonl").write_text("".join(
        json.dumps({"text": f"{w} service today", "label": lab}) + "\n"
        for lab, w in [("ok", "fine"), ("ok", "good"), ("bad", "slow"), ("bad", "rude")] * 6))
    with only_plugins():
        verticals.train("text-classification", root / "tc.jsonl", output=root / "b", backbone=backbone,
                        overrides=["training.epochs=2", "training.learning_rate=0.003", "training.batch_size=8"])
        result = export_onnx(root / "b", root / "onnx")
    assert result.digest == hashlib.sha256((root / "onnx" / "manifest.json").read_bytes()).hexdigest()
    return root / "onnx"


def _copy(export_dir: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(export_dir, tmp_path / "onnx"))


def _predict(directory: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(directory / "predict.py"), *args], capture_output=True, text=True,
                          timeout=300, check=False)


def test_the_manifest_covers_every_file_and_export_json(export_dir: Path) -> None:
    manifest = json.loads((export_dir / "manifest.json").read_text())
    assert manifest["algorithm"] == "sha256"
    on_disk = {p.name for p in export_dir.iterdir()} - {"manifest.json", ".verticals-output.json"}
    assert set(manifest["files"]) == on_disk and "export.json" in on_disk and "predict.py" in on_disk
    for name, expected in manifest["files"].items():
        assert hashlib.sha256((export_dir / name).read_bytes()).hexdigest() == expected


def test_swapped_labels_in_export_json_are_refused(export_dir: Path, tmp_path: Path) -> None:
    good = run_export_reference(export_dir, ["rude and slow service"])[0]
    tampered = _copy(export_dir, tmp_path)
    meta = json.loads((tampered / "export.json").read_text())
    assert sorted(meta["labels"]) == ["bad", "ok"]
    meta["labels"] = meta["labels"][::-1]  # the answers flip, silently, without a check
    (tampered / "export.json").write_text(json.dumps(meta, indent=2))

    proc = _predict(tampered, str(tampered), "rude and slow service")
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "export.json: sha256 does not match manifest.json" in lines[0] and "--no-verify" in lines[0]

    # --no-verify answers (with the swapped label: what the check protects against)
    for args in (["--no-verify", str(tampered)], [str(tampered), "--no-verify"]):
        proc = _predict(tampered, *args, "rude and slow service")
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["label"] != good["label"]


@pytest.mark.parametrize("damage", ["manifest", "model", "unlisted"])
def test_predict_refuses_what_the_manifest_does_not_vouch_for(export_dir: Path, tmp_path: Path,
                                                             damage: str) -> None:
    tampered = _copy(export_dir, tmp_path)
    if damage == "manifest":
        (tampered / "manifest.json").unlink()
        fragment = "manifest.json is missing"
    elif damage == "model":
        with open(tampered / "model.onnx", "ab") as handle:
            handle.write(b"\0")
        fragment = "model.onnx: sha256 does not match"
    else:  # a rewritten manifest that leaves export.json out
        manifest = json.loads((tampered / "manifest.json").read_text())
        del manifest["files"]["export.json"]
        (tampered / "manifest.json").write_text(json.dumps(manifest))
        fragment = "'export.json' is not covered by manifest.json"
    proc = _predict(tampered, str(tampered), "good service today")
    assert proc.returncode == 2 and fragment in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_inspect_reads_exports(export_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    digest = hashlib.sha256((export_dir / "manifest.json").read_bytes()).hexdigest()
    assert main(["inspect", str(export_dir)]) == 0
    out = capsys.readouterr().out
    assert "intact export, every file matches manifest.json" in out and f"digest   {digest}" in out
    assert "text-classification" in out and "labels   2: bad, ok" in out and "predict.py" in out
    assert main(["inspect", str(export_dir), "--expect", digest.upper()]) == 0
    capsys.readouterr()
    assert main(["inspect", str(export_dir), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["digest"] == digest and summary["kind"] == "export" and summary["labels"] == ["bad", "ok"]


def test_inspect_expect_mismatch_and_tampering_exit_2(export_dir: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(export_dir), "--expect", "0" * 64]) == 2
    err = capsys.readouterr().err
    assert "is not the expected" in err and len(err.strip().splitlines()) == 1
    tampered = _copy(export_dir, tmp_path)
    meta = json.loads((tampered / "export.json").read_text())
    meta["labels"] = meta["labels"][::-1]
    (tampered / "export.json").write_text(json.dumps(meta))
    assert main(["inspect", str(tampered)]) == 2
    assert "export.json: sha256 does not match the manifest" in capsys.readouterr().err
    (tampered / "export.json").write_text((export_dir / "export.json").read_text())
    (tampered / "notes.txt").write_text("added later")
    assert main(["inspect", str(tampered)]) == 2
    assert "'notes.txt' is not in the manifest" in capsys.readouterr().err
    (tampered / "notes.txt").unlink()
    (tampered / "manifest.json").unlink()
    assert main(["inspect", str(tampered)]) == 2
    assert "no manifest.json" in capsys.readouterr().err
