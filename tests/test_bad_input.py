"""Every bad-input case: one line naming file/line/field, exit code 2, no traceback, no output written."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from .conftest import FAST, run_cli, text_rows, write_csv


def _train(tmp_path, backbone, train, *extra):
    sets = [arg for s in FAST for arg in ("--set", s)]
    return run_cli("train", "text-classification", "--train", str(train), "--output", str(tmp_path / "out"),
                   "--backbone", str(backbone), *sets, *extra)


def _assert_clean_error(result, *fragments, output=None):
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("verticals: error:")]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    if output is not None:
        assert not output.exists(), "no half-written output on error"


def test_missing_column(tmp_path, tiny_backbone):
    train = write_csv(tmp_path / "t.csv", [{"utterance": "hi", "label": "a"}])
    _assert_clean_error(_train(tmp_path, tiny_backbone, train), "t.csv:2:", "'text'", "data.text_column",
                        output=tmp_path / "out")


def test_configurable_column_names(tmp_path, tiny_backbone):
    rows = [{"utterance": r["text"], "intent": r["label"]} for r in text_rows(6, 0)]
    train = write_csv(tmp_path / "t.csv", rows)
    result = _train(tmp_path, tiny_backbone, train, "--set", "data.text_column=utterance",
                    "--set", "data.label_column=intent")
    assert result.returncode == 0, result.stderr


def test_empty_text(tmp_path, tiny_backbone):
    rows = text_rows(4, 0)
    rows[2]["text"] = "   "
    train = write_csv(tmp_path / "t.csv", rows)
    _assert_clean_error(_train(tmp_path, tiny_backbone, train), "t.csv:4:", "field 'text'", "empty text")


def test_empty_label(tmp_path, tiny_backbone):
    rows = text_rows(4, 0)
    rows[5]["label"] = ""
    train = write_csv(tmp_path / "t.csv", rows)
    _assert_clean_error(_train(tmp_path, tiny_backbone, train), "t.csv:7:", "field 'label'", "empty label")


def test_unseen_label_in_validation(tmp_path, tiny_backbone):
    train = write_csv(tmp_path / "t.csv", text_rows(4, 0))
    rows = text_rows(1, 1)
    rows[1]["label"] = "refunds"
    validation = write_csv(tmp_path / "v.csv", rows)
    _assert_clean_error(_train(tmp_path, tiny_backbone, train, "--validation", str(validation)),
                        "v.csv:3:", "field 'label'", "'refunds'", "never seen in training")


def test_token_tag_length_mismatch(tmp_path, tiny_backbone):
    data = tmp_path / "t.jsonl"
    data.write_text('{"tokens": ["a", "b"], "tags": ["O", "O"]}\n{"tokens": ["a", "b", "c"], "tags": ["O", "O"]}\n')
    result = run_cli("train", "token-classification", "--train", str(data), "--output", str(tmp_path / "o"),
                     "--backbone", str(tiny_backbone))
    _assert_clean_error(result, "t.jsonl:2:", "3 tokens but 2 tags")


def test_unknown_tag_scheme(tmp_path, tiny_backbone):
    data = tmp_path / "t.conll"
    data.write_text("Paris\tS-LOC\nis\tO\n")
    result = run_cli("train", "token-classification", "--train", str(data), "--output", str(tmp_path / "o"),
                     "--backbone", str(tiny_backbone))
    _assert_clean_error(result, "t.conll:1:", "field 'tags'", "BIO")


def test_undecodable_bytes(tmp_path, tiny_backbone):
    train = tmp_path / "t.csv"
    train.write_bytes(b"text,label\nfine,a\ncaf\xe9 latte,b\n")
    _assert_clean_error(_train(tmp_path, tiny_backbone, train), "t.csv:3:", "undecodable", "data.encoding")


@pytest.mark.parametrize("content", ["", "text,label\n"])
def test_empty_file(tmp_path, tiny_backbone, content):
    train = tmp_path / "t.csv"
    train.write_text(content)
    _assert_clean_error(_train(tmp_path, tiny_backbone, train), "t.csv")


def test_malformed_jsonl(tmp_path, tiny_backbone):
    train = tmp_path / "t.jsonl"
    train.write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": \n')
    _assert_clean_error(_train(tmp_path, tiny_backbone, train), "t.jsonl:2:", "invalid JSON")


def test_missing_file_and_unknown_task(tmp_path):
    _assert_clean_error(run_cli("train", "text-classification", "--train", str(tmp_path / "nope.csv"),
                                "--output", str(tmp_path / "o")), "nope.csv", "file not found")
    _assert_clean_error(run_cli("train", "text-clasification", "--train", "x", "--output", "o"),
                        "did you mean 'text-classification'")


def test_existing_output_is_not_overwritten(tmp_path, tiny_backbone):
    train = write_csv(tmp_path / "t.csv", text_rows(4, 0))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "precious.txt").write_text("keep me")
    _assert_clean_error(_train(tmp_path, tiny_backbone, train), "already exists")
    assert (tmp_path / "out" / "precious.txt").read_text() == "keep me"


def test_closed_output_pipe_is_not_an_internal_error():
    """`verticals packs | head -0`: the reader is gone before anything is written; no traceback, exit 141."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([sys.executable, "-m", "verticals.cli", "packs"], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert done.returncode == 141, done.stderr
    assert "error" not in done.stderr.lower() and "Traceback" not in done.stderr
