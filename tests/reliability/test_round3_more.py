"""Reliability round 3 (issue 24), items 12, 13, 15, 17 and 18: pipes that blocked, environment failures that
ended in a traceback or left files behind, pipelined HTTP requests, and messages that blamed the wrong thing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import verticals
from verticals.cli import main
from verticals.testing import only_plugins

from ..conftest import FAST, text_rows, write_csv

pytestmark = pytest.mark.reliability
ENV = {**os.environ, "VERTICALS_PLUGINS": "", "HF_HUB_OFFLINE": "1"}


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    with only_plugins():
        code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def cli(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The CLI in a subprocess, so that a hang fails the test (TimeoutExpired) instead of the run."""
    try:
        return subprocess.run([sys.executable, "-m", "verticals", *args], env=ENV, text=True, capture_output=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"verticals {' '.join(args[:1])} blocked for {timeout} s")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> Path:
    root = tmp_path_factory.mktemp("bundle")
    with only_plugins():
        verticals.train("text-classification", write_csv(root / "train.csv", text_rows(8, 0)), output=root / "b",
                        overrides=FAST[1:] + ["training.epochs=1"], backbone=str(tiny_backbone))
    return root / "b"


# ---- 12. a FIFO as data ----------------------------------------------------------------------------------------
def feed(fifo: Path, source: Path) -> subprocess.Popen[bytes]:
    """A writer that blocks until someone opens the FIFO for reading, then writes ``source`` once."""
    os.mkfifo(fifo)
    return subprocess.Popen(["sh", "-c", f"cat '{source}' > '{fifo}'"])


@pytest.mark.parametrize("verb", ["train", "evaluate"])
def test_a_fifo_as_training_or_evaluation_data_is_refused_not_waited_on(verb: str, tmp_path: Path,
                                                                         tiny_backbone: Path, bundle: Path) -> None:
    source = write_csv(tmp_path / "src.csv", text_rows(4, 0))
    writer = feed(tmp_path / "pipe.csv", source)
    try:
        if verb == "train":
            args = ["train", "text-classification", "--train", str(tmp_path / "pipe.csv"), "--output",
                    str(tmp_path / "out"), "--backbone", str(tiny_backbone), "--set", "training.epochs=1"]
        else:
            args = ["evaluate", str(bundle), "--data", str(tmp_path / "pipe.csv")]
        result = cli(args)
    finally:
        writer.kill()
        writer.wait()
    assert result.returncode == 2, result.stderr
    assert "pipe.csv" in result.stderr and "named pipe (FIFO)" in result.stderr and "save it to a file" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_predict_streams_a_fifo_once(tmp_path: Path, bundle: Path) -> None:
    source = write_csv(tmp_path / "src.csv", text_rows(2, 3))
    writer = feed(tmp_path / "pipe.csv", source)
    try:
        result = cli(["predict", str(bundle), "--input", str(tmp_path / "pipe.csv"), "--output",
                      str(tmp_path / "p.jsonl")])
    finally:
        writer.kill()
        writer.wait()
    assert result.returncode == 0, result.stderr
    assert len((tmp_path / "p.jsonl").read_text(encoding="utf-8").splitlines()) == 6
