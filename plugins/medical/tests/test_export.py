"""The ONNX export of medical.ner carries its windowing (stride, window size, special tokens) and word splitting,
and the export's predict.py (no Verticals) finds the SDK's entities with the same character offsets, on
documents longer than one window included."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from verticals import api
from verticals.cli import main
from verticals.testing import run_export_reference

from .data import SENTENCES, write_conll
from .test_decoding import UNICODE_TEXT

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

LONG = " ".join(text for text, _ in SENTENCES * 3)  # ~130 words: several 16-token windows
INPUTS = [LONG, UNICODE_TEXT, "Cisplatin causes nephrotoxicity in mice .",
          {"tokens": ["Ibuprofen", "relieved", "the", "migraine", "."]},
          {"tokens": ["Huntington", "disease"], "text": "Huntington  disease!"}]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> Path:
    root = tmp_path_factory.mktemp("ner-export")
    write_conll(root / "train.conll", repeat=8)
    api.train("medical.ner", root / "train.conll", output=root / "bundle", backbone=str(tiny_backbone),
              overrides=["training.epochs=6", "training.batch_size=8", "training.learning_rate=0.003",
                         "training.max_length=16", "task.stride=4"])
    return root / "bundle"


def test_reference_reproduces_windowed_entities(bundle: Path, tmp_path: Path) -> None:
    assert main(["export", str(bundle), "--output", str(tmp_path / "onnx")]) == 0
    meta = json.loads((tmp_path / "onnx" / "export.json").read_text())
    decision = meta["decision"]
    assert decision["kind"] == "medical.ner" and decision["stride"] == 4 and decision["max_length"] == 16
    assert decision["window_size"] == 16 - len(decision["prefix_ids"]) - len(decision["suffix_ids"])

    predictor = api.load(bundle)
    predictor.task.precision_ = "fp32"
    expected = predictor.predict(INPUTS)
    assert sum(len(p.entities) for p in expected) >= 3  # the comparison below is about real entities
    assert len(predictor.task.encode([predictor.task.as_record(LONG)], with_labels=False)) > 3  # windows
    got = run_export_reference(tmp_path / "onnx", INPUTS)
    for g, e in zip(got, expected, strict=True):
        assert g["tokens"] == e.tokens and g["tags"] == e.tags
        assert [(x["type"], x["text"], x["start"], x["end"], x["token_start"], x["token_end"])
                for x in g["entities"]] == [(x.type, x.text, x.start, x.end, x.token_start, x.token_end)
                                            for x in e.entities]
        assert [x["score"] for x in g["entities"]] == pytest.approx([x.score for x in e.entities], abs=1e-4)
