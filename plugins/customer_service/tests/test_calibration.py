"""Threshold calibration on tiny hand-made outcome sets (no model involved)."""

from __future__ import annotations

import numpy as np
import pytest
from verticals_customer_service.calibration import ALWAYS, Outcomes, calibrate, rates


def outcomes(rows: list[tuple[float, bool, float, bool, bool]]) -> Outcomes:
    conf, clf_ok, sim, ret_ok, oos = map(np.array, zip(*rows))
    return Outcomes(conf.astype(float), clf_ok.astype(bool), sim.astype(float), ret_ok.astype(bool),
                    oos.astype(bool))


# (confidence, classifier right, similarity, retrieval right, out of scope)
TINY = outcomes([
    (0.95, True, 0.90, True, False),
    (0.90, True, 0.85, True, False),
    (0.80, True, 0.80, True, False),
    (0.45, False, 0.75, True, False),   # unsure classifier, retrieval rescues it
    (0.40, True, 0.70, True, False),
    (0.97, False, 0.88, False, True),   # confidently wrong and close to an intent: costly to catch
    (0.35, False, 0.40, False, True),
    (0.30, False, 0.35, False, True),
    (0.25, False, 0.60, False, True),
    (0.20, False, 0.20, False, True),
])


def test_accuracy_at_recall_target_finds_best_pair() -> None:
    t = calibrate(TINY, "accuracy_at_oos_recall", oos_recall_target=0.8)
    # 4 of 5 out-of-scope queries are caught while every in-scope query is still answered correctly: the
    # wrong 0.45-confident one must go to retrieval (threshold above 0.45, at most 0.80 to keep the right
    # 0.80 one), and retrieval must answer from similarity 0.70 but not 0.60.
    assert t.target_met
    assert t.achieved["oos_recall"] == pytest.approx(0.8)
    assert t.achieved["in_scope_accuracy"] == pytest.approx(1.0)
    assert t.achieved["fallback_rate"] == pytest.approx(0.6)
    assert 0.45 < t.confidence <= 0.80
    assert 0.60 < t.similarity <= 0.70


def test_strict_recall_target_costs_accuracy() -> None:
    t = calibrate(TINY, "accuracy_at_oos_recall", oos_recall_target=1.0)
    # Catching the 0.97-confident query sends everything to retrieval and needs similarity > 0.88:
    # only the 0.90-similar in-scope query is still answered.
    assert t.target_met
    assert t.achieved["oos_recall"] == pytest.approx(1.0)
    assert t.achieved["in_scope_accuracy"] == pytest.approx(0.2)


def test_balanced_objective_is_f1_of_accuracy_and_recall() -> None:
    t = calibrate(TINY, "balanced")
    acc, rec = t.achieved["in_scope_accuracy"], t.achieved["oos_recall"]
    assert 2 * acc * rec / (acc + rec) == pytest.approx(2 * 1.0 * 0.8 / 1.8)


def test_without_oos_auto_hits_precision_target() -> None:
    no_oos = outcomes([(c, ok, s, rok, False) for c, ok, s, rok in [
        (0.95, True, 0.9, True), (0.9, True, 0.9, True), (0.6, False, 0.5, False), (0.5, True, 0.8, True),
        (0.3, False, 0.4, False)]])
    t = calibrate(no_oos, "auto", precision_target=0.99)
    # Precision 1.0 needs both wrong ones withheld: confidence threshold above 0.6 (or retrieval
    # rejecting them), while the 0.5-confident right one is rescued by retrieval (similarity 0.8).
    assert t.objective == "precision" and t.target_met
    assert t.achieved["answered_precision"] == pytest.approx(1.0)
    assert t.achieved["coverage"] == pytest.approx(0.6)
    assert "oos_recall" not in t.achieved


def test_confidence_only_baseline_never_uses_retrieval() -> None:
    t = calibrate(TINY, "accuracy_at_oos_recall", use_retrieval=False)
    assert t.similarity == ALWAYS
    assert t.achieved["in_scope_accuracy"] < 1.0  # the 0.45 query can no longer be rescued


def test_rates_match_a_direct_count() -> None:
    r = rates(TINY, np.array([0.5]), np.array([0.65]))
    # conf < 0.5: in-scope rows 4, 5 go to retrieval (sim 0.75, 0.70 >= 0.65, both right); out-of-scope
    # rows 7-10 fall back and all have sim < 0.65 -> flagged; row 6 (0.97) stays with the classifier.
    assert r["in_scope_accuracy"][0, 0] == pytest.approx(1.0)
    assert r["oos_recall"][0, 0] == pytest.approx(0.8)
    assert r["fallback_rate"][0, 0] == pytest.approx(0.6)


def test_objective_needing_oos_refuses_data_without_it() -> None:
    no_oos = outcomes([(0.9, True, 0.9, True, False)])
    with pytest.raises(ValueError, match="out-of-scope"):
        calibrate(no_oos, "balanced")
