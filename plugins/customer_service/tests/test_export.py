"""The ONNX export of customer_service.intent is the whole model: the calibrated thresholds, the retrieval index
and the FAQ answers travel with the graph, and the export's predict.py (no Verticals) answers as the SDK does,
out-of-scope and retrieval-fallback answers included."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from verticals import api
from verticals.cli import main
from verticals.testing import run_export_reference

from .data import FAST

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

MONGOLIA = "what is the capital of Mongolia"
QUERIES = [MONGOLIA, "where is my parcel", "I forgot my password", "do you sell gift cards",
           "hello, my parcel and the tracking please", "hello, my refund and the money please",
           "tell me about the weather and a poem", "reset my login"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path, intent_data: dict[str, Path]) -> Any:
    out = tmp_path_factory.mktemp("cs-export") / "bundle"
    api.train("customer_service.intent", intent_data["train"], validation=intent_data["validation"],
              output=out, overrides=[*FAST, f"task.faq={intent_data['faq']}"], backbone=str(tiny_backbone))
    return out


def _same(got: list[dict[str, Any]], expected: list[Any]) -> None:
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert (g["intent"], g["out_of_scope"], g["fallback"], g["answer"]) == (
            e.intent, e.out_of_scope, e.fallback, e.answer), e.reason
        assert g["confidence"] == pytest.approx(e.confidence, abs=1e-4)
        assert g["scores"] == pytest.approx(e.scores, abs=1e-4)
        assert [(m["text"], m["intent"], m["answer"], m["source"]) for m in g["matches"]] == [
            (m.text, m.intent, m.answer, m.source) for m in e.matches]
        assert [m["similarity"] for m in g["matches"]] == pytest.approx([m.similarity for m in e.matches], abs=1e-4)


def test_cli_export_carries_thresholds_index_and_answers(trained: Path, tmp_path: Path) -> None:
    """The calibrated bundle through `verticals export`: decision values, index files, config.json."""
    from transformers import AutoConfig

    assert main(["export", str(trained), "--output", str(tmp_path / "onnx")]) == 0
    out = tmp_path / "onnx"
    meta = json.loads((out / "export.json").read_text())
    decision, state = meta["decision"], json.loads((trained / "bundle.json").read_text())["state"]
    assert decision["kind"] == "customer_service.intent"
    thresholds = state["thresholds"]
    assert decision["score"] == thresholds["score"]
    assert decision["threshold"] == thresholds.get("threshold")
    assert decision["confidence_threshold"] == thresholds.get("confidence")
    assert decision["similarity_threshold"] == thresholds.get("similarity")
    assert decision["oos_label"] == "out_of_scope" and decision["top_k"] == 5 and decision["fallback"] is True
    assert decision["answers"] == {"track_order": "See Orders > Tracking.", "reset_password": "Use 'Forgot password'."}
    assert decision["index"]["entries"] == 48 + 3 and meta["outputs"] == ["logits", "embeddings"]
    assert {"fallback_index.faiss", "fallback_index.json"} <= set(meta["files"])
    assert AutoConfig.from_pretrained(out).id2label == {0: "refund_status", 1: "reset_password", 2: "track_order"}

    predictor = api.load(trained)
    predictor.task.precision_ = "fp32"  # ONNX runs fp32
    _same(run_export_reference(out, QUERIES), predictor.predict(QUERIES))


def test_reference_reproduces_out_of_scope_and_fallback(trained: Path, tmp_path: Path) -> None:
    """An operating point where the three outcomes all occur: the classifier answers the most confident query,
    retrieval answers an FAQ question, and the Mongolia query is out of scope."""
    from verticals.delivery.export import export_predictor

    predictor = api.load(trained)
    task = predictor.task
    task.precision_ = "fp32"
    # The nearest entry alone decides (a tiny random encoder's neighbourhoods are noisy); exported as top_k.
    task.options = task.options.model_copy(update={"top_k": 1})
    records = [task.as_record(q, i) for i, q in enumerate(QUERIES)]
    probs, vectors = task._forward(records)
    voted = [task._vote(hits) for hits in task.index_.search(vectors, task.options.top_k)]
    confidence = probs.max(-1)
    parcel = QUERIES.index("where is my parcel")
    low = max(confidence[0], confidence[parcel])
    assert confidence.max() > low + 1e-3  # some query is more confident than both
    assert voted[parcel][0] == "track_order" and voted[parcel][1] > voted[0][1] + 1e-3
    task.thresholds_ = dict(task.thresholds_, score="retrieval", confidence=float((low + confidence.max()) / 2),
                            similarity=float((voted[0][1] + voted[parcel][1]) / 2))
    expected = predictor.predict(QUERIES)
    assert expected[0].out_of_scope and expected[0].intent == "out_of_scope"
    assert expected[parcel].fallback and not expected[parcel].out_of_scope
    assert expected[parcel].answer == "See Orders > Tracking."
    assert any(not p.fallback for p in expected)

    export_predictor(predictor, tmp_path / "onnx")
    got = run_export_reference(tmp_path / "onnx", QUERIES)
    _same(got, expected)
    assert json.loads((tmp_path / "onnx" / "export.json").read_text())["decision"]["top_k"] == 1
    assert got[0]["out_of_scope"] and got[parcel]["intent"] == "track_order"


def test_reference_reproduces_the_nearest_utterance_rule(trained: Path, tmp_path: Path) -> None:
    """With the nearest-utterance similarity deciding, the export answers out of scope exactly where the SDK
    does (a threshold between the Mongolia query's nearest similarity and the parcel query's)."""
    from verticals.delivery.export import export_predictor

    predictor = api.load(trained)
    task = predictor.task
    task.precision_ = "fp32"
    records = [task.as_record(q, i) for i, q in enumerate(QUERIES)]
    _, vectors = task._forward(records)
    nearest = [hits[0][0] for hits in task.index_.search(vectors, 1)]
    parcel = QUERIES.index("where is my parcel")
    assert nearest[parcel] > nearest[0] + 1e-3
    task.thresholds_ = {"score": "similarity", "threshold": float((nearest[0] + nearest[parcel]) / 2),
                        "objective": "in_scope_rejection"}
    expected = predictor.predict(QUERIES)
    assert expected[0].out_of_scope and not expected[parcel].out_of_scope
    export_predictor(predictor, tmp_path / "onnx")
    decision = json.loads((tmp_path / "onnx" / "export.json").read_text())["decision"]
    assert decision["score"] == "similarity" and decision["threshold"] == task.thresholds_["threshold"]
    _same(run_export_reference(tmp_path / "onnx", QUERIES), expected)


def test_embed_is_the_index_embedding(trained: Path) -> None:
    """Predictor.embed gives the vectors the fallback index was built with (mean pooling, unit length)."""
    predictor = api.load(trained)
    texts = ["where is my parcel", "I forgot my password"]
    vectors = predictor.embed(texts)
    assert vectors.shape == (2, 32) and vectors.dtype == np.float32
    stored = predictor.task.index_.index.reconstruct_n(48, 2)  # the FAQ questions follow the 48 utterances
    assert np.allclose(vectors, stored, atol=1e-5)
