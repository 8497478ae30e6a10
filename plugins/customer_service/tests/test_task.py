"""customer_service.intent end to end on tiny data: calibration, FAQ, fallback, bundle round trip."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from verticals import BundleError, api

from .data import FAST


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path, intent_data: dict[str, Path]) -> Any:
    out = tmp_path_factory.mktemp("cs") / "bundle"
    return api.train("customer_service.intent", intent_data["train"], validation=intent_data["validation"],
                     output=out, overrides=[*FAST, f"task.faq={intent_data['faq']}"], backbone=str(tiny_backbone))


def test_thresholds_and_objective_in_bundle_json(trained: Any) -> None:
    info = json.loads((trained.path / "bundle.json").read_text())
    thresholds = info["state"]["thresholds"]
    assert thresholds["objective"] == "accuracy_at_oos_recall"
    assert thresholds["target"] == 0.8
    assert thresholds["n_out_of_scope"] == 12
    assert info["labels"] == ["refund_status", "reset_password", "track_order"]  # never 'out_of_scope'
    assert info["state"]["index"] == {"file": "fallback_index.faiss", "utterances": 48, "faq": 3}


def test_calibrated_thresholds_reproduce_on_the_calibration_data(trained: Any, intent_data: dict[str, Path]) -> None:
    # The training file has no out-of-scope rows, so the calibration data is exactly the validation file:
    # the metrics promised by calibration must be what predict() then delivers on it.
    achieved = trained.info.state["thresholds"]["achieved"]
    metrics = trained.evaluate(intent_data["validation"]).metrics
    for name in ("in_scope_accuracy", "oos_recall", "fallback_rate"):
        assert metrics[name] == pytest.approx(achieved[name]), name
    assert trained.info.state["thresholds"]["target_met"] == (achieved["oos_recall"] >= 0.8)


def test_evaluate_reports_issue_metrics(trained: Any, intent_data: dict[str, Path]) -> None:
    evaluation = trained.evaluate(intent_data["validation"])
    assert {"accuracy", "macro_f1", "in_scope_accuracy", "oos_recall", "oos_precision", "oos_f1",
            "fallback_rate"} <= set(evaluation.metrics)
    assert "out_of_scope" in evaluation.per_label and "track_order" in evaluation.per_label


def test_prediction_object(trained: Any, intent_data: dict[str, Path]) -> None:
    records = trained.task.read(intent_data["validation"])
    predictions = trained.task.predict(records)
    oos_label = trained.task.options.oos_label
    assert any(p.fallback for p in predictions)
    for p in predictions:
        assert p.out_of_scope == (p.intent == oos_label)
        assert p.fallback == bool(p.matches)  # matches are retrieved exactly when the fallback fires
        if p.out_of_scope:
            assert p.fallback and "out of scope" in p.reason
        if p.fallback:
            assert "< threshold" in p.reason
            sims = [m.similarity for m in p.matches]
            assert sims == sorted(sims, reverse=True) and len(sims) == 5
        if not p.out_of_scope and p.intent in {"track_order", "reset_password"}:
            assert p.answer  # FAQ answers are attached to their intents
    plain = trained.task.predict(records, fallback=False)
    assert not any(p.fallback or p.out_of_scope for p in plain)
    assert [p.confidence for p in plain] == [p.confidence for p in predictions]
    single = trained.predict_one("my parcel tracking please")
    assert single.model_dump() == trained.predict(["my parcel tracking please"])[0].model_dump()


def test_bundle_round_trip_includes_index(trained: Any, intent_data: dict[str, Path], tmp_path: Path) -> None:
    manifest = json.loads((trained.path / "manifest.json").read_text())
    listed = json.dumps(manifest)
    assert "fallback_index.faiss" in listed and "fallback_index.json" in listed
    loaded = api.load(trained.path)
    records = loaded.task.read(intent_data["validation"])
    before = [p.model_dump() for p in trained.task.predict(records)]
    after = [p.model_dump() for p in loaded.task.predict(records)]
    assert len(loaded.task.index_) == 51
    assert json.dumps(before, sort_keys=True) == json.dumps(after, sort_keys=True)
    copy = tmp_path / "tampered"
    shutil.copytree(trained.path, copy)
    meta = copy / "fallback_index.json"
    meta.write_text(meta.read_text().replace("parcel", "parcels", 1))
    with pytest.raises(BundleError):
        api.load(copy)


def test_onnx_engine_gives_the_same_answers(trained: Any, intent_data: dict[str, Path]) -> None:
    """The low-latency engine swaps only the encoder: intents, fallback decisions and matches are unchanged."""
    pytest.importorskip("onnxruntime")
    torch_run, onnx_run = api.load(trained.path, engine="torch"), api.load(trained.path, engine="onnx")
    torch_run.task.precision_ = "fp32"  # compare like with like (ONNX Runtime runs fp32)
    records = onnx_run.task.read(intent_data["validation"])
    expected, got = torch_run.task.predict(records), onnx_run.task.predict(records)
    assert [(p.intent, p.fallback, p.out_of_scope) for p in got] == [
        (p.intent, p.fallback, p.out_of_scope) for p in expected]
    assert [p.confidence for p in got] == pytest.approx([p.confidence for p in expected], abs=1e-4)
    assert [[m.text for m in p.matches] for p in got] == [[m.text for m in p.matches] for p in expected]


def test_epoch_metrics_say_they_are_not_the_summary(trained: Any) -> None:
    """Per-epoch accuracy is the classifier's on in-scope rows; the summary's includes out-of-scope rows and
    the fallback. The history (and the console line, from the same entry) must say which is which."""
    history = trained.info.history
    assert len(history) >= 2 and sum(entry["best"] for entry in history) == 1
    for entry in history:
        assert entry["metrics_on"] == "in-scope validation, classifier only"
        assert entry["metrics"]["fallback_rate"] == 0.0 and "oos_recall" not in entry["metrics"]
    assert "oos_recall" in trained.info.metrics["validation"]


def test_explain_names_the_classifiers_top_intent(trained: Any) -> None:
    pytest.importorskip("captum")
    texts = ["I want my money back for this order", "zzz qqq"]
    for explanation, prediction in zip(trained.explain(texts), trained.predict(texts)):
        # out of scope or not, the words explain the classifier's own top intent
        assert explanation.label == max(prediction.scores, key=prediction.scores.__getitem__)
        assert explanation.score == pytest.approx(prediction.confidence, abs=1e-4)
    assert [w.word for w in explanation.words] == ["zzz", "qqq"]


def test_bundle_stores_intervals_of_the_headline_scores(trained: Any) -> None:
    """Out-of-scope gold rows and fallback predictions are resampled like any label (issue 29, item 4)."""
    from verticals.delivery.card import bundle_card

    info = json.loads((trained.path / "bundle.json").read_text())
    found = info["intervals"]["validation"]
    assert found["metrics"]["accuracy"]["method"] == "wilson" and "macro_f1" in found["metrics"]
    assert "out_of_scope" in found["per_label_f1"]
    for name, entry in found["metrics"].items():
        assert entry["value"] == pytest.approx(info["metrics"]["validation"][name])
        assert entry["low"] <= entry["value"] <= entry["high"]
    card = bundle_card(trained.path)
    accuracy = found["metrics"]["accuracy"]
    assert f"| validation | accuracy | {accuracy['value']:.4f} | {accuracy['low']:.4f} – {accuracy['high']:.4f} |" \
        in card
    assert "| validation | oos_recall |" in card  # a pack's own score: shown, without an interval
