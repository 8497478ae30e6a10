"""Negative sampling and ranking metrics, checked against hand-computed values."""

import math

import numpy as np
from verticals_recommendation.ranking import (
    case_rng,
    full_ranking_metrics,
    rank_against,
    sample_negatives,
    sampled_metrics,
    top_k_excluding,
)


def test_negative_sampling_is_deterministic_per_case() -> None:
    excluded = {0, 5, 7}
    a = sample_negatives(1000, excluded, 99, case_rng(42, "u1", "i9"))
    b = sample_negatives(1000, excluded, 99, case_rng(42, "u1", "i9"))
    assert np.array_equal(a, b)
    # another seed, user or item gives other negatives
    assert not np.array_equal(a, sample_negatives(1000, excluded, 99, case_rng(43, "u1", "i9")))
    assert not np.array_equal(a, sample_negatives(1000, excluded, 99, case_rng(42, "u2", "i9")))
    assert not np.array_equal(a, sample_negatives(1000, excluded, 99, case_rng(42, "u1", "i8")))


def test_negatives_are_distinct_and_avoid_excluded_items() -> None:
    for n_items, excluded in ((1000, set(range(0, 1000, 3))), (120, set(range(15)))):  # sparse and dense paths
        neg = sample_negatives(n_items, excluded, 99, case_rng(0, "u", "i"))
        assert len(neg) == 99 == len(set(neg.tolist()))
        assert not set(neg.tolist()) & excluded
        assert neg.min() >= 0 and neg.max() < n_items


def test_fewer_negatives_when_the_catalogue_is_small() -> None:
    neg = sample_negatives(10, {0, 1}, 99, case_rng(0, "u", "i"))
    assert sorted(neg.tolist()) == list(range(2, 10))


def test_ties_count_against_the_positive() -> None:
    assert rank_against(0.5, np.array([0.1, 0.5, 0.9])) == 2
    assert rank_against(1.0, np.array([0.1, 0.5, 0.9])) == 0


def test_sampled_metrics_by_hand() -> None:
    m = sampled_metrics([0, 3, 12])
    assert math.isclose(m["hr@10"], 2 / 3)
    assert math.isclose(m["ndcg@10"], (1.0 + 1 / math.log2(5)) / 3)
    assert math.isclose(m["mrr"], (1 + 1 / 4 + 1 / 13) / 3)


def test_full_ranking_metrics_by_hand() -> None:
    m = full_ranking_metrics([[5, 1, 2], [7, 8, 9]], [{1, 9}, {3}], k=3)
    assert math.isclose(m["recall@3_full"], (1 / 2 + 0) / 2)
    ideal = 1 + 1 / math.log2(3)
    assert math.isclose(m["ndcg@3_full"], (1 / math.log2(3)) / ideal / 2)


def test_top_k_skips_excluded_items() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    assert top_k_excluding(scores, {0, 2}, k=2) == [1, 3]
    assert top_k_excluding(scores, set(range(5)), k=2) == []
