"""Paired statistics for comparing two models on the same records (``verticals compare``).

Everything here is pure numpy/scipy on arrays; nothing knows about bundles or tasks.

- :func:`wilson_interval`: the Wilson score interval of a proportion (accuracy of one model).
- :func:`mcnemar`: McNemar's test on the discordant pairs of two models' right/wrong outcomes, computed as
  the exact conditional binomial test (``scipy.stats.binomtest``) at every sample size: exact where the
  chi-square approximation is poor (few discordant pairs), and merely slightly conservative where it is
  good. The continuity-corrected chi-square statistic is returned too, for reference (textbooks quote it).
- :func:`paired_bootstrap`: B resamples of the record indices (with replacement, seeded), the same rows
  for both models, so each resample gives a paired difference. Percentile intervals and the one-sided
  p-value of "NEW worse" come from those differences (Koehn 2004; Berg-Kirkpatrick et al. 2012).
- Vectorised metric statistics over a ``[B, n]`` index matrix: single-label metrics from per-resample
  confusion matrices (:func:`label_scores`, the same definitions as ``verticals.metrics``) and entity
  micro precision/recall/F1 from per-sentence counts (:func:`entity_scores`, as seqeval/conlleval).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

DEFAULT_RESAMPLES = 1000
"""Bootstrap resamples: the percentile bounds of a 95% interval then rest on 25 resamples each side."""
DEFAULT_SEED = 0
CHUNK_CELLS = 4_000_000
"""Most index cells materialised at once (B x n int64: 32 MB), so 1000 resamples of 100k records fit."""


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of ``successes`` out of ``n`` (sensible at 0 or n, unlike the normal one)."""
    from scipy.stats import binomtest

    if n <= 0:
        return float("nan"), float("nan")
    ci = binomtest(int(successes), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


@dataclass(frozen=True)
class McNemar:
    """McNemar's test of two models' right/wrong outcomes on the same records."""

    old_only: int
    """Discordant pairs where OLD is right and NEW wrong (b)."""
    new_only: int
    """Discordant pairs where NEW is right and OLD wrong (c)."""
    statistic: float
    """(|b - c| - 1)^2 / (b + c), the continuity-corrected chi-square statistic (0 when b + c = 0)."""
    p_value: float
    """Two-sided exact p-value: Binomial(b + c, 1/2)."""
    p_worse: float
    """One-sided exact p-value of "NEW is worse" (b larger than chance would make it)."""
    method: str = "exact conditional binomial test on the discordant pairs"


def mcnemar(old_correct: np.ndarray, new_correct: np.ndarray) -> McNemar:
    """McNemar's test from two boolean arrays (one entry per record, same order)."""
    old_correct, new_correct = np.asarray(old_correct, bool), np.asarray(new_correct, bool)
    if old_correct.shape != new_correct.shape:
        raise ValueError(f"outcome arrays differ in length: {old_correct.shape} vs {new_correct.shape}")
    b = int((old_correct & ~new_correct).sum())
    c = int((~old_correct & new_correct).sum())
    return mcnemar_counts(b, c)


def mcnemar_counts(b: int, c: int) -> McNemar:
    """McNemar's test from the discordant counts: ``b`` OLD-only right, ``c`` NEW-only right."""
    from scipy.stats import binomtest

    if b + c == 0:  # the models agree on every record: no evidence either way
        return McNemar(0, 0, 0.0, 1.0, 1.0)
    statistic = (abs(b - c) - 1) ** 2 / (b + c) if abs(b - c) >= 1 else 0.0
    return McNemar(b, c, float(statistic), float(binomtest(b, b + c, 0.5).pvalue),
                   float(binomtest(b, b + c, 0.5, alternative="greater").pvalue))


def bootstrap_indices(n: int, resamples: int, seed: int) -> Iterator[np.ndarray]:
    """``resamples`` rows of ``n`` record indices drawn with replacement, in ``[rows, n]`` chunks; the same
    ``seed`` gives the same rows, so two models scored on one stream of chunks are paired."""
    if n <= 0 or resamples <= 0:
        raise ValueError("bootstrap needs at least one record and one resample")
    rng = np.random.default_rng(seed)
    rows = max(1, CHUNK_CELLS // n)
    for start in range(0, resamples, rows):
        yield rng.integers(0, n, size=(min(rows, resamples - start), n))


def paired_bootstrap(statistic: Callable[[np.ndarray], np.ndarray], n: int, resamples: int = DEFAULT_RESAMPLES,
                     seed: int = DEFAULT_SEED) -> np.ndarray:
    """``statistic(index_rows) -> [rows, k]`` evaluated on every resample: a ``[resamples, k]`` array."""
    return np.concatenate([np.asarray(statistic(idx), dtype=float).reshape(len(idx), -1)
                           for idx in bootstrap_indices(n, resamples, seed)])


def percentile_interval(samples: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided percentile interval of bootstrap ``samples`` (resamples where a metric is undefined,
    NaN, are left out; all undefined gives NaN)."""
    samples = np.asarray(samples, dtype=float)
    samples = samples[np.isfinite(samples)]
    if not samples.size:
        return float("nan"), float("nan")
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(samples, [tail, 1.0 - tail])
    return float(low), float(high)


def p_worse(improvements: np.ndarray, margin: float = 0.0) -> float:
    """One-sided bootstrap p-value of "NEW is worse than OLD by more than ``margin``".

    ``improvements`` are the paired resampled differences oriented so that positive means NEW is better
    (NEW - OLD for a metric where higher is better). The p-value is the share of resamples in which NEW is
    not worse by more than the margin, (1 + #{d >= -margin}) / (1 + B): below alpha exactly when the
    one-sided (1 - alpha) percentile upper bound of the difference lies below -margin."""
    improvements = np.asarray(improvements, dtype=float)
    improvements = improvements[np.isfinite(improvements)]
    return float((1 + np.count_nonzero(improvements >= -margin)) / (1 + improvements.size))


def _safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with 0 where den is 0 (scikit-learn's and seqeval's ``zero_division=0``)."""
    out = np.zeros(np.broadcast(num, den).shape, dtype=float)
    np.divide(num, den, out=out, where=den != 0)
    return out


LABEL_METRICS = ("accuracy", "macro_f1", "macro_precision", "macro_recall", "weighted_f1")


def label_scores(y_true: np.ndarray, y_pred: np.ndarray, counted: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``[rows, 5]``: :data:`LABEL_METRICS` of the records ``idx`` (``[rows, n]``) selects.

    ``y_true``/``y_pred`` are label codes in ``[0, L)``; ``counted`` (``[L]`` bool) marks the labels macro
    and weighted averages may include. As ``verticals.metrics.classification_metrics``: the averages run
    over counted labels present (true or predicted) in the resample; accuracy over every record."""
    labels = len(counted)
    rows, n = idx.shape
    cells = (np.arange(rows)[:, None] * labels * labels + y_true[idx] * labels + y_pred[idx]).ravel()
    confusion = np.bincount(cells, minlength=rows * labels * labels).reshape(rows, labels, labels)
    tp = np.diagonal(confusion, axis1=1, axis2=2).astype(float)
    support, predicted = confusion.sum(axis=2).astype(float), confusion.sum(axis=1).astype(float)
    present = ((support > 0) | (predicted > 0)) & counted[None, :]
    precision, recall = _safe_divide(tp, predicted), _safe_divide(tp, support)
    f1 = _safe_divide(2 * tp, support + predicted)
    k = present.sum(axis=1)
    weight = support * present

    def mean(values: np.ndarray) -> np.ndarray:
        return _safe_divide((values * present).sum(axis=1), k)

    weighted = _safe_divide((f1 * weight).sum(axis=1), weight.sum(axis=1))
    return np.stack([tp.sum(axis=1) / n, mean(f1), mean(precision), mean(recall), weighted], axis=1)


ENTITY_METRICS = ("precision", "recall", "f1", "token_accuracy")


def entity_scores(counts: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``[rows, 4]``: :data:`ENTITY_METRICS` (micro, exact match) of the sentences ``idx`` selects.

    ``counts`` is ``[n, 5]`` per sentence: entities right, predicted, gold; tokens right, tokens."""
    sums = counts[idx].sum(axis=1).astype(float)  # [rows, 5]
    precision, recall = _safe_divide(sums[:, 0], sums[:, 1]), _safe_divide(sums[:, 0], sums[:, 2])
    f1 = _safe_divide(2 * precision * recall, precision + recall)
    return np.stack([precision, recall, f1, _safe_divide(sums[:, 3], sums[:, 4])], axis=1)
