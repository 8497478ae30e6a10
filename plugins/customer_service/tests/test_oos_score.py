"""The out-of-scope score choice: nearest-utterance similarity, the evidence-bounded rule without
out-of-scope examples, the classifier-only accuracy beside the fallback figures, bundle round trips."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from verticals import api
from verticals_customer_service.calibration import (
    Outcomes,
    calibrate,
    choose_score,
    mixed_pseudo_unknowns,
    pseudo_unknown_threshold,
    rejection_threshold,
    single_score,
)

from .data import FAST, intent_rows, write_csv


def test_rejection_threshold_is_a_low_quantile_with_enough_evidence() -> None:
    values = np.arange(1000, dtype=float) / 1000  # 0.000 .. 0.999
    t = rejection_threshold(values, 0.01)
    assert (values < t).sum() == 9  # an observed value: 9 of 1,000 calibration queries fall below it
    assert rejection_threshold(values, 0.0) == 0.0  # rate 0: nothing observed is rejected


def test_rejection_threshold_without_enough_evidence_rejects_only_below_every_observation() -> None:
    # 50 in-scope queries cannot estimate a 1 % quantile: the minimum is the honest (conservative) choice.
    rng = np.random.default_rng(0)
    values = rng.uniform(0.3, 0.9, size=50)
    assert rejection_threshold(values, 0.01) == pytest.approx(values.min())
    assert (values < rejection_threshold(values, 0.01)).sum() == 0


def outcomes(conf: list[float], nearest: list[float], correct: list[bool], oos: list[bool]) -> Outcomes:
    return Outcomes(confidence=np.array(conf), classifier_correct=np.array(correct),
                    similarity=np.array(nearest), retrieval_correct=np.array(correct),
                    is_oos=np.array(oos), nearest=np.array(nearest))


def test_similarity_wins_when_it_separates_out_of_scope_and_confidence_does_not() -> None:
    # Out-of-scope queries are confidently misclassified (0.9) but far from every training utterance.
    o = outcomes(conf=[0.95, 0.9, 0.85, 0.8, 0.9, 0.92, 0.88],
                 nearest=[0.9, 0.85, 0.8, 0.82, 0.3, 0.35, 0.25],
                 correct=[True, True, True, True, False, False, False],
                 oos=[False, False, False, False, True, True, True])
    found = {"similarity": calibrate(single_score(o, o.nearest), "accuracy_at_oos_recall", use_retrieval=False),
             "softmax": calibrate(single_score(o, o.confidence), "accuracy_at_oos_recall", use_retrieval=False),
             "retrieval": calibrate(o, "accuracy_at_oos_recall")}
    assert found["similarity"].achieved["oos_recall"] == 1.0
    assert found["similarity"].achieved["in_scope_accuracy"] == 1.0
    assert found["softmax"].achieved["in_scope_accuracy"] < 1.0
    assert choose_score(found) == "similarity"


def test_ties_go_to_the_simpler_rule() -> None:
    o = outcomes(conf=[0.9, 0.8, 0.2], nearest=[0.9, 0.8, 0.2], correct=[True, True, False],
                 oos=[False, False, True])
    found = {name: calibrate(single_score(o, o.confidence), "accuracy_at_oos_recall", use_retrieval=False)
             for name in ("softmax", "similarity")}
    assert choose_score(found) == "softmax"


def trained_without_oos(directory: Path, backbone: Path, validation_per_intent: int, seed: int) -> Any:
    """A pack trained with no out-of-scope example anywhere; (predictor, validation file, folder)."""
    train = write_csv(directory / "train.csv", intent_rows(16, 0, seed=seed))
    validation = write_csv(directory / "validation.csv", intent_rows(validation_per_intent, 0, seed=seed + 1))
    predictor = api.train("customer_service.intent", train, validation=validation, output=directory / "bundle",
                          overrides=[*FAST], backbone=str(backbone))
    return predictor, validation, directory


@pytest.fixture(scope="module")
def no_oos(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> Any:
    """Few validation rows per intent: the evidence-bounded similarity rule."""
    return trained_without_oos(tmp_path_factory.mktemp("no-oos"), tiny_backbone, 5, seed=3)


def test_without_out_of_scope_examples_the_rule_is_bounded_by_evidence(no_oos: Any) -> None:
    predictor, validation, _ = no_oos
    t = predictor.info.state["thresholds"]
    assert t["objective"] == "in_scope_rejection" and t["score"] == "similarity"
    assert t["calibration_per_intent"] == 5.0  # < task.min_calibration_per_intent (8): too few for pseudo-unknowns
    # 15 in-scope calibration queries < 1 / 0.01: nothing that was observed may be rejected.
    assert t["achieved"]["in_scope_rejection"] == 0.0
    metrics = predictor.evaluate(validation).metrics
    assert metrics["fallback_rate"] == 0.0
    assert metrics["accuracy"] == pytest.approx(metrics["classifier_accuracy"])


def test_similarity_rule_flags_far_queries_and_explains_why(no_oos: Any) -> None:
    predictor, _, _ = no_oos
    threshold = predictor.info.state["thresholds"]["threshold"]
    predictor.task.thresholds_["threshold"] = 1.01  # nothing is that similar: everything is out of scope
    try:
        p = predictor.predict(["hello, my parcel and the tracking please"])[0]
    finally:
        predictor.task.thresholds_["threshold"] = threshold
    assert p.out_of_scope and p.fallback and p.matches
    assert "nearest utterance similarity" in p.reason and "< threshold 1.010" in p.reason


def test_bundle_round_trip_keeps_score_and_threshold(no_oos: Any) -> None:
    predictor, validation, directory = no_oos
    loaded = api.load(directory / "bundle")
    assert loaded.task.thresholds_ == predictor.task.thresholds_
    stored = json.loads((directory / "bundle" / "bundle.json").read_text())["state"]["thresholds"]
    assert stored["score"] == "similarity" and stored["threshold"] == predictor.task.thresholds_["threshold"]
    records = loaded.task.read(validation)
    assert [p.model_dump() for p in loaded.task.predict(records)] == \
        [p.model_dump() for p in predictor.task.predict(records)]


def test_with_out_of_scope_examples_every_score_is_compared(tmp_path: Path, tiny_backbone: Path) -> None:
    train = write_csv(tmp_path / "train.csv", intent_rows(16, 0, seed=0))
    validation = write_csv(tmp_path / "validation.csv", intent_rows(5, 12, seed=1))
    predictor = api.train("customer_service.intent", train, validation=validation, output=tmp_path / "b",
                          overrides=[*FAST], backbone=str(tiny_backbone))
    t = predictor.info.state["thresholds"]
    assert set(t["compared"]) == {"retrieval", "similarity", "softmax"}
    assert t["score"] in t["compared"]
    # The chosen rule delivers on the calibration data what calibration promised.
    metrics = predictor.evaluate(validation).metrics
    assert metrics["oos_recall"] == pytest.approx(t["achieved"]["oos_recall"])
    assert metrics["in_scope_accuracy"] == pytest.approx(t["achieved"]["in_scope_accuracy"])


def test_a_bundle_from_before_the_score_choice_still_uses_retrieval(no_oos: Any) -> None:
    predictor, validation, _ = no_oos
    task = predictor.task
    saved = dict(task.thresholds_)
    task.thresholds_ = {k: v for k, v in saved.items() if k not in ("score", "threshold")} | {
        "confidence": 1.01, "similarity": 1.01}  # the old two-threshold state: always fall back, never match
    try:
        p = task.predict(task.read(validation))[0]
    finally:
        task.thresholds_ = saved
    assert p.out_of_scope and "best retrieval similarity" in p.reason


def test_fallback_off_works_with_a_single_score_rule(no_oos: Any) -> None:
    """`predict(fallback=False)` (or task.fallback=false) on a bundle whose rule has one threshold: the
    classifier alone, never a KeyError on the two-threshold fields it does not have."""
    predictor, validation, _ = no_oos
    task = predictor.task
    records = task.read(validation)
    alone = task.predict(records, fallback=False)
    assert len(alone) == len(records)
    assert not any(p.out_of_scope or p.fallback for p in alone)
    assert all(p.reason == "fallback disabled" for p in alone)
    metrics = task.score(records, alone).metrics
    assert metrics["accuracy"] == pytest.approx(metrics["classifier_accuracy"])


def test_pseudo_unknowns_lie_between_two_different_intents() -> None:
    vectors = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    intents = ["a", "b", "c", "c"]
    mixed = mixed_pseudo_unknowns(vectors, intents, mix=0.6, seed=0, per_query=5)
    assert mixed.shape == (20, 3)
    assert np.linalg.norm(mixed, axis=1) == pytest.approx(np.ones(20))
    # each is 0.6 of one query and 0.4 of a query of another intent: never a mix of the two 'c' queries
    weights = np.sort(mixed * np.linalg.norm([0.6, 0.4]), axis=1)[:, -2:]
    assert weights == pytest.approx(np.tile([0.4, 0.6], (20, 1)))
    assert mixed_pseudo_unknowns(vectors[2:], intents[2:], mix=0.6, seed=0).shape[0] == 0  # one intent: none
    assert (mixed == mixed_pseudo_unknowns(vectors, intents, mix=0.6, seed=0, per_query=5)).all()  # seeded


def test_pseudo_unknown_threshold_separates_kept_from_pseudo_unknown() -> None:
    in_scope = np.array([0.9, 0.85, 0.8, 0.6])
    correct = np.array([True, True, True, False])
    pseudo = np.array([0.5, 0.55, 0.7, 0.3])
    threshold, achieved = pseudo_unknown_threshold(in_scope, correct, pseudo)
    # at 0.8: 3 of 4 kept and right, 4 of 4 pseudo-unknowns rejected; any other threshold does worse
    assert threshold == 0.8
    assert achieved == {"in_scope_rejection": 0.25, "in_scope_kept_and_correct": 0.75,
                        "pseudo_unknown_rejection": 1.0}
    # ties go to the lowest threshold: fewest in-scope queries rejected
    assert pseudo_unknown_threshold(np.array([0.9, 0.8]), np.array([True, True]), np.array([0.1]))[0] == 0.8


@pytest.fixture(scope="module")
def enough_validation(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> Any:
    return trained_without_oos(tmp_path_factory.mktemp("pseudo-unknown"), tiny_backbone, 10, seed=5)


def test_without_out_of_scope_examples_enough_evidence_calibrates_on_pseudo_unknowns(enough_validation: Any) -> None:
    predictor, validation, directory = enough_validation
    t = predictor.info.state["thresholds"]
    assert t["objective"] == "pseudo_unknown" and t["score"] == "similarity"
    assert t["calibration_per_intent"] == 10.0
    # recomputed by hand from the validation records: the same threshold
    task = predictor.task
    o = task.outcomes(task.read(validation))
    assert len(o.pseudo_unknown) == 4 * 30
    assert t["threshold"] == pseudo_unknown_threshold(o.nearest, o.classifier_correct, o.pseudo_unknown)[0]
    # what calibration promised is what evaluate measures on the same records
    metrics = predictor.evaluate(validation).metrics
    assert metrics["fallback_rate"] == pytest.approx(t["achieved"]["in_scope_rejection"])
    loaded = api.load(directory / "bundle")
    assert loaded.task.thresholds_ == task.thresholds_
    records = loaded.task.read(validation)
    assert [p.out_of_scope for p in loaded.task.predict(records)] == [p.out_of_scope for p in task.predict(records)]


def test_pseudo_unknown_needs_the_similarity_score(enough_validation: Any) -> None:
    from verticals.errors import ConfigError

    task = enough_validation[0].task
    task.options.oos_score, task.options.objective = "softmax", "pseudo_unknown"
    try:
        with pytest.raises(ConfigError, match="oos_score=similarity"):
            task.calibrate(task.read(enough_validation[1]))
    finally:
        task.options.oos_score, task.options.objective = "auto", "auto"
