"""finance.sentiment exports whole (its predict.py reproduces the SDK without Verticals); finance.fraud is
refused with one line saying why."""

from pathlib import Path

import pytest
from finance_testdata import write_phrasebank
from verticals import load, train
from verticals.cli import main
from verticals.testing import make_tiny_backbone, run_export_reference

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

TEXTS = ["profit rose sharply at Oy Ab1 , Espoo", "net loss widened", "the board will meet in May",
         "what is the capital of Mongolia"]


def test_sentiment_export_reproduces_the_sdk(tmp_path: Path) -> None:
    backbone = make_tiny_backbone(tmp_path / "tiny")
    train("finance.sentiment", write_phrasebank(tmp_path / "train.txt", n=30), output=tmp_path / "bundle",
          backbone=str(backbone), overrides=["training.epochs=2", "training.batch_size=8"])
    assert main(["export", str(tmp_path / "bundle"), "--output", str(tmp_path / "onnx")]) == 0
    predictor = load(tmp_path / "bundle")
    predictor.task.precision_ = "fp32"
    expected = predictor.predict(TEXTS)
    got = run_export_reference(tmp_path / "onnx", TEXTS)
    assert [g["label"] for g in got] == [e.label for e in expected]
    assert [g["score"] for g in got] == pytest.approx([e.score for e in expected], abs=1e-4)
