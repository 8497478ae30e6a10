"""Reliability round 3 (issue 24): what was silently wrong is refused with one line and exit 2."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest
import verticals
from verticals.cli import main
from verticals.testing import only_plugins

from ..conftest import FAST, text_rows, write_csv

pytestmark = pytest.mark.reliability


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    with only_plugins():
        code = main(args)
    return code, capsys.readouterr().err


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> Path:
    root = tmp_path_factory.mktemp("bundle")
    with only_plugins():
        verticals.train("text-classification", write_csv(root / "train.csv", text_rows(8, 0)), output=root / "b",
                        overrides=FAST[1:] + ["training.epochs=1"], backbone=str(tiny_backbone))
    return root / "b"


# ---- 6. inspect --expect "" ----------------------------------------------------------------------------------
@pytest.mark.parametrize("expect", ["", "  ", "abc123"])
def test_inspect_refuses_an_empty_or_malformed_expected_digest(bundle: Path, expect: str, capsys) -> None:
    code, err = run(["inspect", str(bundle), "--expect", expect], capsys)
    assert code == 2 and "--expect" in err and "intact" not in err, err


# ---- 7/8. duplicate labels, also in two Unicode normalisations -----------------------------------------------
@pytest.mark.parametrize("labels", [["a", "b", "a"], ["café", unicodedata.normalize("NFD", "café"), "b"]],
                         ids=["same", "nfc-nfd"])
def test_duplicate_labels_in_the_configuration_are_refused(tmp_path: Path, tiny_backbone: Path,
                                                           labels: list[str], capsys) -> None:
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"labels": labels}), encoding="utf-8")
    code, err = run(["train", "text-classification", "--train", str(write_csv(tmp_path / "t.csv", text_rows(4, 0))),
                     "--output", str(tmp_path / "b"), "--config", str(config), "--backbone", str(tiny_backbone)],
                    capsys)
    assert code == 2 and "duplicate label" in err, err
    assert not (tmp_path / "b").exists()


def test_new_pack_refuses_duplicate_labels(tmp_path: Path, capsys) -> None:
    code, err = run(["new-pack", "legal", "--output", str(tmp_path / "p"), "--labels", "a,a"], capsys)
    assert code == 2 and "duplicate" in err, err


def test_labels_in_the_data_are_one_label_in_either_normalisation(tmp_path: Path, tiny_backbone: Path) -> None:
    nfc, nfd = "café", unicodedata.normalize("NFD", "café")
    rows = [{"text": f"coffee {i}", "label": nfc if i % 2 else nfd} for i in range(8)]
    rows += [{"text": f"tea {i}", "label": "tea"} for i in range(8)]
    with only_plugins():
        predictor = verticals.train("text-classification", write_csv(tmp_path / "t.csv", rows),
                                    output=tmp_path / "b", overrides=FAST[1:] + ["training.epochs=1"],
                                    backbone=str(tiny_backbone))
    assert sorted(predictor.info.labels) == sorted([nfc, "tea"])


# ---- 10. the text column is the label column -----------------------------------------------------------------
def test_text_column_equal_to_label_column_is_refused(tmp_path: Path, tiny_backbone: Path, capsys) -> None:
    code, err = run(["train", "text-classification", "--train", str(write_csv(tmp_path / "t.csv", text_rows(4, 0))),
                     "--output", str(tmp_path / "b"), "--set", "data.text_column=label",
                     "--backbone", str(tiny_backbone)], capsys)
    assert code == 2 and "text_column" in err and "label_column" in err, err


# ---- 11. a manifest listing one file twice -------------------------------------------------------------------
def test_manifest_listing_a_file_twice_is_refused(bundle: Path, tmp_path: Path, capsys) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    text = (copy / "manifest.json").read_text(encoding="utf-8")
    real = json.loads(text)["files"]["bundle.json"]
    (copy / "bundle.json").write_text((copy / "bundle.json").read_text(encoding="utf-8") + " ", encoding="utf-8")
    from verticals.bundles.outputs import file_sha256

    forged = file_sha256(copy / "bundle.json")
    # the forged digest first, the real one second: json keeps the last, so a naive check passes
    text = text.replace(f'"bundle.json": "{real}"', f'"bundle.json": "{forged}", "bundle.json": "{real}"')
    text = text.replace(f'"bundle.json": "{forged}", "bundle.json": "{real}"',
                        f'"bundle.json": "{real}", "bundle.json": "{forged}"')
    (copy / "manifest.json").write_text(text, encoding="utf-8")
    code, err = run(["inspect", str(copy)], capsys)
    assert code == 2 and "listed twice" in err, err


# ---- 14. an empty or non-ASCII API key ------------------------------------------------------------------------
@pytest.mark.parametrize("how", [("--api-key", ""), ("env", ""), ("--api-key", " "), ("env", "clé-secrète")],
                         ids=["empty-flag", "empty-env", "blank-flag", "non-ascii-env"])
def test_serve_refuses_an_empty_or_non_ascii_api_key(bundle: Path, how: tuple[str, str]) -> None:
    pytest.importorskip("fastapi")
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "VERTICALS_PLUGINS": ""}
    env.pop("VERTICALS_API_KEY", None)
    command = [sys.executable, "-m", "verticals", "serve", str(bundle), "--port", str(port), "--workers", "1"]
    if how[0] == "env":
        env["VERTICALS_API_KEY"] = how[1]
    else:
        command += ["--api-key", how[1]]
    # in a subprocess with a time limit: before the fix these started a server with authentication off
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 2 and "API key" in done.stderr, done.stderr


# ---- 5. --resume after the data or options changed -----------------------------------------------------------
def test_resume_with_other_data_or_options_is_refused(tmp_path: Path, tiny_backbone: Path, capsys) -> None:
    first = write_csv(tmp_path / "t.csv", text_rows(8, 0))
    base = ["train", "text-classification", "--output", str(tmp_path / "b"), "--backbone", str(tiny_backbone),
            "--set", "training.epochs=1", "--set", "training.keep_checkpoints=true", "--set", "training.batch_size=8"]
    assert run([*base, "--train", str(first)], capsys)[0] == 0
    before = (tmp_path / "b" / "head.safetensors").read_bytes() if (tmp_path / "b" / "head.safetensors").exists() \
        else None
    other = write_csv(tmp_path / "t2.csv", text_rows(8, 5))
    code, err = run([*base, "--train", str(other), "--resume", "--overwrite"], capsys)
    assert code == 2 and "--resume" in err and "data.train" in err, err
    code, err = run([*base, "--train", str(first), "--resume", "--overwrite", "--set", "training.learning_rate=0.1"],
                    capsys)
    assert code == 2 and "training.learning_rate" in err, err
    if before is not None:
        assert (tmp_path / "b" / "head.safetensors").read_bytes() == before
    # the same run again resumes (more epochs are allowed: training longer is what --resume is for)
    code, err = run([*base, "--train", str(first), "--resume", "--overwrite", "--set", "training.epochs=2"], capsys)
    assert code == 0, err
