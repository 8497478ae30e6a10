"""benchmarks/_intervals.py: the share of a teacher's gain a student keeps, with paired-bootstrap intervals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


@pytest.fixture()
def intervals(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import _intervals

    return _intervals


def right_or_wrong(correct: list[int]) -> np.ndarray:
    return np.array(correct, dtype=float)[:, None]


def test_share_is_the_mean_of_the_seeds_over_the_teachers_gain(intervals) -> None:  # type: ignore[no-untyped-def]
    n = 400
    rng = np.random.default_rng(0)
    minilm = (rng.random(n) < 0.70).astype(int)
    teacher = np.where(rng.random(n) < 0.5, 1, minilm)  # right wherever the MiniLM is, and on half the rest
    gain = teacher.mean() - minilm.mean()
    assert gain > 0.1
    # two student seeds: one equals the MiniLM, one the teacher, so their mean keeps half of the gain
    result = intervals.share_intervals("phrasebank", right_or_wrong(minilm), right_or_wrong(teacher),
                                       [right_or_wrong(minilm), right_or_wrong(teacher)], resamples=200)
    assert result["gain"] == pytest.approx(gain)
    assert result["share"] == pytest.approx(0.5)
    assert result["to_target"] == pytest.approx((0.5 - 0.7) * gain)
    low, high = result["gain_ci"]
    assert low < gain < high and low > 0
    # paired resamples: the mean of (MiniLM, teacher) keeps exactly half of every resample's gain
    assert result["share_ci"] == pytest.approx((0.5, 0.5))
    assert result["no_gain"] == 0


def test_entity_f1_and_resamples_without_a_gain(intervals) -> None:  # type: ignore[no-untyped-def]
    # per sentence: entities right, predicted, gold, tokens right, tokens
    minilm = np.array([[1, 2, 2, 9, 10], [0, 1, 1, 9, 10], [1, 1, 1, 10, 10]])
    teacher = np.array([[2, 2, 2, 10, 10], [0, 1, 1, 9, 10], [1, 1, 1, 10, 10]])
    result = intervals.share_intervals("ncbi", minilm, teacher, [teacher], resamples=300)

    def f1(right: int, predicted: int, gold: int) -> float:
        return 2 * right / (predicted + gold)

    assert result["gain"] == pytest.approx(f1(3, 4, 4) - f1(2, 4, 4))
    assert result["share"] == pytest.approx(1.0)
    # resamples without the first sentence show no gain: they have no share, and are counted
    assert 0 < result["no_gain"] < 300
    assert result["share_ci"] == pytest.approx((1.0, 1.0))
    with pytest.raises(ValueError, match="same test records"):
        intervals.share_intervals("ncbi", minilm, teacher[:2], [teacher])
