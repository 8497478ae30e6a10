"""Reliability round 3 (issue 24): outputs that would land inside a bundle or on a user's file.

One rule for files and folders: an output never goes inside a bundle or another folder Verticals wrote, and
``--overwrite`` replaces only what Verticals wrote as that kind of output and nobody changed since (a folder
proves it with its manifest or marker, a single file with ``.NAME.verticals-output.json`` beside it)."""

from __future__ import annotations

from pathlib import Path

import pytest
import verticals
from verticals.bundles.bundle import digest, verify
from verticals.cli import main
from verticals.testing import only_plugins

from ..conftest import FAST, text_rows, write_csv

pytestmark = pytest.mark.reliability


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    with only_plugins():
        code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> Path:
    root = tmp_path_factory.mktemp("bundle")
    data = {"train": write_csv(root / "train.csv", text_rows(12, 0)),
            "validation": write_csv(root / "validation.csv", text_rows(3, 1))}
    with only_plugins():
        verticals.train("text-classification", data["train"], validation=data["validation"], output=root / "b",
                        overrides=FAST[1:] + ["training.epochs=1"], backbone=str(tiny_backbone))
    return root / "b"


def intact(bundle: Path, before: str) -> None:
    verify(bundle)
    assert digest(bundle) == before
    assert sorted(p.name for p in bundle.iterdir() if p.name.startswith(".")) == []


# ---- 1. predict --output inside the bundle it reads ----------------------------------------------------------
@pytest.mark.parametrize("name", ["bundle.json", "head.safetensors", "new.jsonl"])
def test_predict_output_inside_the_bundle_is_refused(bundle: Path, name: str, capsys) -> None:
    before = digest(bundle)
    code, _, err = run(["predict", str(bundle), "good film", "--output", str(bundle / name), "--overwrite"], capsys)
    assert code == 2 and "inside" in err and "Traceback" not in err, err
    intact(bundle, before)


# ---- 2. card --output BUNDLE/bundle.json --overwrite ----------------------------------------------------------
def test_card_over_the_bundles_own_file_is_refused(bundle: Path, capsys) -> None:
    before = digest(bundle)
    code, _, err = run(["card", str(bundle), "--output", str(bundle / "bundle.json"), "--overwrite"], capsys)
    assert code == 2 and "inside" in err, err
    intact(bundle, before)


# ---- 3. single-file outputs replace only what Verticals wrote ------------------------------------------------
def test_card_overwrite_never_replaces_a_users_file(bundle: Path, tmp_path: Path, capsys) -> None:
    users = tmp_path / "mydata.csv"
    users.write_text("text,label\nmy,data\n", encoding="utf-8")
    code, _, err = run(["card", str(bundle), "--output", str(users), "--overwrite"], capsys)
    assert code == 2 and "did not write it" in err, err
    assert users.read_text(encoding="utf-8") == "text,label\nmy,data\n"


def test_card_overwrite_replaces_its_own_card_but_not_an_edited_one(bundle: Path, tmp_path: Path, capsys) -> None:
    card = tmp_path / "card.md"
    assert run(["card", str(bundle), "--output", str(card)], capsys)[0] == 0
    assert run(["card", str(bundle), "--output", str(card)], capsys)[0] == 2  # exists, no --overwrite
    assert run(["card", str(bundle), "--output", str(card), "--overwrite"], capsys)[0] == 0
    card.write_text(card.read_text(encoding="utf-8") + "\nreviewer's notes\n", encoding="utf-8")
    code, _, err = run(["card", str(bundle), "--output", str(card), "--overwrite"], capsys)
    assert code == 2 and "changed after Verticals wrote it" in err, err
    assert card.read_text(encoding="utf-8").endswith("reviewer's notes\n")


@pytest.mark.parametrize("stream", [False, True], ids=["texts", "file-to-file"])
def test_predict_never_replaces_a_users_file(bundle: Path, tmp_path: Path, stream: bool, capsys) -> None:
    users = tmp_path / "notes.jsonl"
    users.write_text('{"mine": 1}\n', encoding="utf-8")
    source = write_csv(tmp_path / "in.csv", [{"text": "good film"}], ["text"])
    inputs = ["--input", str(source)] if stream else ["good film"]
    for extra in ([], ["--overwrite"]):
        code, _, err = run(["predict", str(bundle), *inputs, "--output", str(users), *extra], capsys)
        assert code == 2 and "Traceback" not in err, err
        assert users.read_text(encoding="utf-8") == '{"mine": 1}\n'
    ours = tmp_path / "preds.jsonl"
    assert run(["predict", str(bundle), *inputs, "--output", str(ours)], capsys)[0] == 0
    assert run(["predict", str(bundle), *inputs, "--output", str(ours), "--overwrite"], capsys)[0] == 0
    assert len(ours.read_text(encoding="utf-8").splitlines()) == 1


# ---- 4. nothing is written inside a bundle (or an export/report) ---------------------------------------------
@pytest.mark.parametrize("verb", ["card", "report", "export", "train"])
def test_folder_and_file_outputs_inside_a_bundle_are_refused(bundle: Path, tmp_path: Path, tiny_backbone: Path,
                                                             verb: str, capsys) -> None:
    before = digest(bundle)
    data = write_csv(tmp_path / "data.csv", text_rows(3, 2))
    args = {"card": ["card", str(bundle), "--output", str(bundle / "x" / "card.md")],
            "report": ["report", str(bundle), "--data", str(data), "--output", str(bundle / "x")],
            "export": ["export", str(bundle), "--output", str(bundle / "x")],
            "train": ["train", "text-classification", "--train", str(data), "--output", str(bundle / "x"),
                      "--backbone", str(tiny_backbone)]}[verb]
    code, _, err = run(args, capsys)
    assert code == 2 and "inside" in err, err
    intact(bundle, before)
    assert not (bundle / "x").exists()


# ---- 16. conventions: '-' is standard output, a trailing slash is a folder ------------------------------------
def test_dash_is_standard_output(bundle: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(["predict", str(bundle), "good film", "--output", "-"], capsys)
    assert code == 0 and out.startswith("{") and '"label"' in out
    code, out, _ = run(["card", str(bundle), "--output", "-"], capsys)
    assert code == 0 and out.startswith("# ")
    assert not (tmp_path / "-").exists()


def test_trailing_slash_means_a_folder(bundle: Path, tmp_path: Path, capsys) -> None:
    assert run(["card", str(bundle), "--output", f"{tmp_path / 'cards'}/"], capsys)[0] == 0
    assert (tmp_path / "cards" / "model_card.md").is_file()
    assert run(["predict", str(bundle), "good film", "--output", f"{tmp_path / 'preds'}/"], capsys)[0] == 0
    assert (tmp_path / "preds" / "predictions.jsonl").is_file()


def test_a_users_file_named_like_our_proof_is_never_replaced(bundle: Path, tmp_path: Path, capsys) -> None:
    proof = tmp_path / ".card.md.verticals-output.json"
    proof.write_text("my own notes\n", encoding="utf-8")
    code, _, err = run(["card", str(bundle), "--output", str(tmp_path / "card.md")], capsys)
    assert code == 2 and "in the way" in err, err
    assert proof.read_text(encoding="utf-8") == "my own notes\n"
    assert not (tmp_path / "card.md").exists()
