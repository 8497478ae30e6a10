"""verticals.metrics.drift: PSI, the validation profile, and reading each pack's predictions generically."""

from __future__ import annotations

import math

import numpy as np
import pytest
from verticals.metrics.drift import (
    INVESTIGATE,
    NO_ENTITY,
    build_profile,
    decision_fields,
    expected_psi,
    histogram,
    label_psi,
    psi,
    read_outcome,
    score_edges,
)
from verticals.tasks.text_classification import TextPrediction
from verticals.tasks.token_classification import Entity, TokenPrediction


def test_psi_known_values() -> None:
    assert psi([50, 50], [50, 50]) == 0.0
    assert psi([0.5, 0.5], [10, 10]) == 0.0  # counts or shares alike
    # (0.7-0.5) ln(0.7/0.5) + (0.3-0.5) ln(0.3/0.5)
    assert psi([50, 50], [70, 30]) == pytest.approx(0.2 * math.log(1.4) - 0.2 * math.log(0.6))
    assert psi([50, 50], [70, 30]) == pytest.approx(psi([70, 30], [50, 50]))  # symmetric
    assert math.isfinite(psi([100, 0], [0, 100])) and psi([100, 0], [0, 100]) > 5  # an empty bin is floored
    with pytest.raises(ValueError):
        psi([1, 2], [1, 2, 3])
    with pytest.raises(ValueError):
        psi([0, 0], [1, 1])


def test_label_psi_compares_over_both_label_sets() -> None:
    value, bins = label_psi({"a": 50, "b": 50}, {"a": 50, "b": 40, "new": 10})
    assert bins == 3 and value > 0.5  # a label never seen in validation is a shift, not ignored
    assert label_psi({"a": 10}, {"a": 3})[0] == 0.0


def test_expected_psi_matches_sampling_noise() -> None:
    """Two samples of one distribution: mean PSI is close to the (k-1)(1/n+1/m) floor, far below 0.2."""
    rng = np.random.default_rng(0)
    shares = np.full(10, 0.1)
    values = [psi(rng.multinomial(300, shares), rng.multinomial(300, shares)) for _ in range(400)]
    assert np.mean(values) == pytest.approx(expected_psi(10, 300, 300), rel=0.25)
    assert np.quantile(values, 0.99) < INVESTIGATE


def test_score_bins_are_validation_quantiles() -> None:
    scores = np.linspace(0.0, 1.0, 101)
    edges = score_edges(scores)
    assert len(edges) == 9 and edges[0] == pytest.approx(0.1)
    counts = histogram(scores, edges)
    assert sum(counts) == 101 and max(counts) - min(counts) <= 1
    assert histogram([-5.0, 0.1, 7.0], edges) == [2, 0, 0, 0, 0, 0, 0, 0, 0, 1]  # outer bins are open-ended
    assert score_edges([0.9] * 50) == []  # one value: no bins to compare
    assert score_edges([0.1, 0.2]) == []  # too few to place ten bins


def test_profile_of_text_predictions() -> None:
    predictions = [TextPrediction(label=lab, score=s, scores={}) for lab, s in
                   [("pos", 0.9), ("neg", 0.6), ("pos", 0.7)] * 10]
    profile = build_profile(predictions)
    assert profile is not None
    assert profile["labels"] == {"neg": 10, "pos": 20} and profile["records"] == 30
    assert sum(profile["score"]["counts"]) == 30
    outcome = read_outcome(TextPrediction(label="neg", score=0.4, scores={}))
    assert outcome.decisions == [("neg", 0.4)] and outcome.confidences == [0.4] and outcome.flagged is None


def test_token_predictions_decide_per_entity() -> None:
    entity = Entity(type="Disease", text="flu", start=0, end=1, score=0.8)
    found = TokenPrediction(tokens=["flu", "again"], tags=["B-Disease", "O"], entities=[entity, entity])
    none = TokenPrediction(tokens=["hello"], tags=["O"], entities=[])
    assert read_outcome(found).decisions == [("Disease", 0.8), ("Disease", 0.8)]
    assert read_outcome(none).decisions == [(NO_ENTITY, None)]
    assert build_profile([found, none] * 3)["labels"] == {"Disease": 6, NO_ENTITY: 3}  # type: ignore[index]
    assert "entities" in decision_fields(TokenPrediction)


def test_pack_predictions_are_read_without_importing_packs_in_the_core() -> None:
    """The reader works on every pack's real prediction model (packs imported here, by the test only)."""
    intent = pytest.importorskip("verticals_customer_service.task")
    fraud = pytest.importorskip("verticals_finance.fraud.task")
    medical = pytest.importorskip("verticals_medical.ner")
    recommendation = pytest.importorskip("verticals_recommendation.schema")

    oos = read_outcome(intent.IntentPrediction(intent="oos", confidence=0.2, out_of_scope=True, fallback=True,
                                               reason="below threshold"))
    assert oos.decisions == [("oos", 0.2)] and oos.out_of_scope and oos.fallback and oos.confidences == [0.2]
    flagged = read_outcome(fraud.FraudPrediction(label=1, score=0.3, threshold=0.25))
    assert flagged.flagged is True and flagged.decisions == [("1", 0.3)]
    assert flagged.confidences == []  # a fraud probability is not the confidence of the decision
    assert read_outcome(fraud.FraudPrediction(label=0, score=0.1, threshold=0.25)).flagged is False
    entity = medical.MedicalEntity(type="Disease", text="flu", start=0, end=3, score=0.9, token_start=0,
                                   token_end=1)
    ner = read_outcome(medical.MedicalPrediction(tokens=["flu"], tags=["B-Disease"], entities=[entity]))
    assert ner.decisions == [("Disease", 0.9)]
    assert decision_fields(recommendation.Recommendations) == set()  # nothing to profile: no profile
    assert build_profile([recommendation.Recommendations(user="u", items=[])]) is None
