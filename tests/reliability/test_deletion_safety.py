"""Deletion safety: the SDK deletes only what it wrote and can prove it wrote; everything else is refused
with exit 2 and left exactly as it was (issue 15, data loss items 1-5 and 11)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import verticals
from verticals.bundles.bundle import digest
from verticals.cli import main
from verticals.testing import only_plugins

from ..conftest import FAST, text_rows, write_csv

pytestmark = pytest.mark.reliability


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` with its bytes: what must survive a refused command unchanged."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def user_folder(path: Path) -> Path:
    """A folder of someone's work that happens to look a little like ours (it has a manifest.json)."""
    (path / "src").mkdir(parents=True)
    (path / "src" / "main.js").write_text("console.log('my work')\n")
    (path / "manifest.json").write_text('{"name": "my-web-app", "files": {}}\n')
    return path


def train_args(data: dict[str, Path], backbone: Path, output: Path, *extra: str) -> list[str]:
    sets = [item for value in FAST[1:] + ["training.epochs=1"] for item in ("--set", value)]
    return ["train", "text-classification", "--train", str(data["train"]), "--validation", str(data["validation"]),
            "--output", str(output), "--backbone", str(backbone), *sets, *extra]


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    with only_plugins():
        code = main(args)
    return code, capsys.readouterr().err


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> Path:
    root = tmp_path_factory.mktemp("bundle")
    data = {"train": write_csv(root / "train.csv", text_rows(12, 0)),
            "validation": write_csv(root / "validation.csv", text_rows(3, 1))}
    with only_plugins():
        verticals.train("text-classification", data["train"], validation=data["validation"], output=root / "b",
                        overrides=FAST[1:] + ["training.epochs=1"], backbone=str(tiny_backbone))
    return root / "b"


# ---- 1. checkpoint_dir never deletes a folder Verticals did not make --------------------------------
def test_checkpoint_dir_that_is_a_user_folder_is_refused(tmp_path, tiny_backbone, text_data, capsys):
    mine = user_folder(tmp_path / "results")
    before = snapshot(mine)
    code, err = run(train_args(text_data, tiny_backbone, tmp_path / "b", "--set",
                               f"training.checkpoint_dir={mine}"), capsys)
    assert code == 2, err
    assert "training.checkpoint_dir" in err
    assert snapshot(mine) == before and not (tmp_path / "b").exists()


def test_checkpoint_dir_dot_never_empties_the_current_folder(tmp_path, tiny_backbone, capsys, monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    data = {"train": write_csv(project / "train.csv", text_rows(12, 0)),
            "validation": write_csv(project / "validation.csv", text_rows(3, 1))}
    before = snapshot(project)
    monkeypatch.chdir(project)
    code, err = run(train_args(data, tiny_backbone, tmp_path / "b", "--set", "training.checkpoint_dir=."), capsys)
    assert code == 2, err
    assert "training.checkpoint_dir=." in err
    assert snapshot(project) == before


def test_existing_default_checkpoint_folder_of_someone_else_is_refused(tmp_path, tiny_backbone, text_data, capsys):
    theirs = user_folder(tmp_path / "b.checkpoints")
    before = snapshot(theirs)
    code, err = run(train_args(text_data, tiny_backbone, tmp_path / "b"), capsys)
    assert code == 2 and "b.checkpoints" in err, err
    assert snapshot(theirs) == before


def test_own_checkpoint_folders_are_reused_and_removed(tmp_path, tiny_backbone, text_data, capsys):
    """What the rule still allows: an empty folder is used (and kept, empty), our own folder is cleaned."""
    empty = tmp_path / "ckpt"
    empty.mkdir()
    code, err = run(train_args(text_data, tiny_backbone, tmp_path / "a", "--set", f"training.checkpoint_dir={empty}"),
                    capsys)
    assert code == 0, err
    assert empty.is_dir() and list(empty.iterdir()) == []
    code, err = run(train_args(text_data, tiny_backbone, tmp_path / "b", "--set", "training.keep_checkpoints=true"),
                    capsys)
    assert code == 0 and list((tmp_path / "b.checkpoints").glob("checkpoint-*")), err
    code, err = run(train_args(text_data, tiny_backbone, tmp_path / "b", "--overwrite"), capsys)
    assert code == 0, err
    assert not (tmp_path / "b.checkpoints").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((".a", ".b", "a", "b"))) == ["a", "b"]


# ---- 2. --overwrite replaces only an output of the same kind that Verticals provably wrote -----------
def test_train_overwrite_refuses_a_folder_with_a_foreign_manifest(tmp_path, tiny_backbone, text_data, capsys):
    project = user_folder(tmp_path / "app")
    before = snapshot(project)
    code, err = run(train_args(text_data, tiny_backbone, project, "--overwrite"), capsys)
    assert code == 2 and "refusing to delete" in err, err
    assert snapshot(project) == before


def test_train_overwrite_refuses_a_bundle_holding_an_unlisted_file(tmp_path, bundle, tiny_backbone, text_data,
                                                                    capsys):
    copy = tmp_path / "b"
    shutil.copytree(bundle, copy)
    (copy / "notes.txt").write_text("my notes on this model\n")
    code, err = run(train_args(text_data, tiny_backbone, copy, "--overwrite"), capsys)
    assert code == 2 and "notes.txt" in err, err
    assert (copy / "notes.txt").read_text() == "my notes on this model\n"


def test_train_overwrite_replaces_a_bundle(tmp_path, bundle, tiny_backbone, text_data, capsys):
    copy = tmp_path / "b"
    shutil.copytree(bundle, copy)
    code, err = run(train_args(text_data, tiny_backbone, copy, "--overwrite"), capsys)
    assert code == 0, err
    assert digest(copy) != digest(bundle)
    assert verticals.load(copy).info.data["train"] != verticals.load(bundle).info.data["train"]


@pytest.mark.parametrize("verb", ["report", "new-pack", "export"])
def test_overwrite_never_deletes_an_unrelated_folder(verb, tmp_path, bundle, capsys):
    if verb == "report":
        pytest.importorskip("matplotlib")
    if verb == "export":
        pytest.importorskip("onnx")
        pytest.importorskip("onnxruntime")
    data = write_csv(tmp_path / "eval.csv", text_rows(3, 2))
    commands = {"report": ["report", str(bundle), "--data", str(data)],
                "export": ["export", str(bundle)],
                "new-pack": ["new-pack", "insurance", "--labels", "auto,home"]}
    project = user_folder(tmp_path / "out")
    before = snapshot(project)
    code, err = run(commands[verb] + ["--output", str(project), "--overwrite"], capsys)
    assert code == 2 and "refusing to delete" in err, err
    assert snapshot(project) == before

    # Its own output is replaced; once a person changed it, or for a different kind of output, it is not.
    fresh = tmp_path / "fresh"
    assert run(commands[verb] + ["--output", str(fresh)], capsys)[0] == 0
    assert run(commands[verb] + ["--output", str(fresh), "--overwrite"], capsys)[0] == 0
    edited = next(p for p in sorted(fresh.rglob("*")) if p.is_file() and p.name != ".verticals-output.json")
    edited.write_bytes(edited.read_bytes() + b"\n")
    before = snapshot(fresh)
    code, err = run(commands[verb] + ["--output", str(fresh), "--overwrite"], capsys)
    assert code == 2 and "changed" in err, err
    assert snapshot(fresh) == before
    code, err = run(commands[verb] + ["--output", str(bundle), "--overwrite"], capsys)
    assert code == 2 and verticals.load(bundle)


def test_output_below_a_file_is_one_clear_error(tmp_path, tiny_backbone, text_data, capsys):
    code, err = run(train_args(text_data, tiny_backbone, text_data["train"] / "model"), capsys)
    assert code == 2 and "cannot write there" in err, err


# ---- 3. --resume never implies --overwrite ----------------------------------------------------------
def test_resume_without_checkpoints_never_replaces_a_bundle(tmp_path, bundle, tiny_backbone, capsys):
    copy = tmp_path / "b"
    shutil.copytree(bundle, copy)
    before = digest(copy)
    one_label = {"train": write_csv(tmp_path / "t.csv", [{"text": f"word {i}", "label": "only"} for i in range(8)]),
                 "validation": write_csv(tmp_path / "v.csv", [{"text": "word", "label": "only"}])}
    code, err = run(train_args(one_label, tiny_backbone, copy, "--resume"), capsys)
    assert code == 2 and "already exists" in err, err
    assert digest(copy) == before and not (tmp_path / "b.checkpoints").exists()


# ---- 4. predictions never replace their input -------------------------------------------------------
@pytest.mark.parametrize("link", ["same", "relative", "symlink", "hardlink"])
def test_predict_output_that_is_the_input_is_refused(link, tmp_path, bundle, capsys, monkeypatch):
    records = tmp_path / "records.jsonl"
    records.write_text("".join(json.dumps({"text": f"my invoice {i}"}) + "\n" for i in range(3)))
    before = records.read_bytes()
    output = {"same": records, "relative": Path("sub/../records.jsonl"), "symlink": tmp_path / "alias.jsonl",
              "hardlink": tmp_path / "hard.jsonl"}[link]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    if link == "symlink":
        output.symlink_to(records)
    if link == "hardlink":
        os.link(records, output)
    code, err = run(["predict", str(bundle), "--input", str(records), "--output", str(output)], capsys)
    assert code == 2 and "is the --input file" in err, err
    assert records.read_bytes() == before


@pytest.mark.parametrize("kind", ["folder", "pipe"])
def test_predict_output_never_replaces_a_folder_or_a_pipe(kind, tmp_path, bundle, capsys):
    output = tmp_path / "out"
    if kind == "folder":
        output.mkdir()
        (output / "keep.txt").write_text("mine")
    else:
        os.mkfifo(output)
    code, err = run(["predict", str(bundle), "my invoice", "--output", str(output)], capsys)
    assert code == 2 and ("not a regular file" in err or "is a directory" in err), err
    assert (output / "keep.txt").read_text() == "mine" if kind == "folder" else output.is_fifo()


# ---- 11. leftovers of a killed run are cleaned, only ours -------------------------------------------
def test_leftovers_of_a_killed_write_are_cleaned_only_ours(tmp_path, tiny_backbone, text_data, capsys):
    for name in (".b.tmp-0123abcd", ".b.old-89abcdef"):  # what a kill leaves (our exact naming)
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.safetensors").write_bytes(b"half")
    (tmp_path / ".b.tmp-0123abcd.txt").write_text("not ours: other name")
    (tmp_path / ".bb.tmp-0123abcd").mkdir()  # another output's leftover: not this run's business
    (tmp_path / ".b.tmp-notours").mkdir()
    code, err = run(train_args(text_data, tiny_backbone, tmp_path / "b"), capsys)
    assert code == 0, err
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))
    assert left == [".b.tmp-0123abcd.txt", ".b.tmp-notours", ".bb.tmp-0123abcd"]


def test_resume_skips_a_checkpoint_a_kill_left_incomplete(tmp_path, tiny_backbone, text_data, capsys):
    code, err = run(train_args(text_data, tiny_backbone, tmp_path / "b", "--set", "training.epochs=2",
                               "--set", "training.keep_checkpoints=true"), capsys)
    assert code == 0, err
    shutil.rmtree(tmp_path / "b")  # as if killed before the bundle was written
    last = max((tmp_path / "b.checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    for name in ("trainer_state.json", "optimizer.pt", "scheduler.pt"):  # killed while saving: state comes last
        (last / name).unlink(missing_ok=True)
    (last / "model.safetensors").write_bytes(b"")
    code, err = run(train_args(text_data, tiny_backbone, tmp_path / "b", "--set", "training.epochs=3", "--resume"),
                    capsys)
    assert code == 0, err
    assert verticals.load(tmp_path / "b").info.metrics["validation"]


@pytest.mark.parametrize("content", [b"my notes\n", None])
def test_a_user_file_named_like_our_lock_is_never_locked_or_removed(content, tmp_path, tiny_backbone, text_data,
                                                                   capsys):
    lock = tmp_path / ".out.lock"
    if content is None:
        (tmp_path / "notes.txt").write_text("mine\n")
        lock.symlink_to(tmp_path / "notes.txt")
    else:
        lock.write_bytes(content)
    before = snapshot(tmp_path)
    assert main(train_args(text_data, tiny_backbone, tmp_path / "out")) == 2
    assert ".out.lock" in capsys.readouterr().err
    assert snapshot(tmp_path) == before and lock.is_symlink() == (content is None)


def test_our_lock_file_is_removed_after_training_even_when_a_kill_left_it(tmp_path, tiny_backbone, text_data, capsys):
    from verticals.bundles.outputs import LOCK_MARK

    (tmp_path / ".out.lock").write_bytes(LOCK_MARK)  # a killed run's lock
    assert main(train_args(text_data, tiny_backbone, tmp_path / "out")) == 0
    assert not (tmp_path / ".out.lock").exists()
