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
- :func:`label_intervals` / :func:`entity_intervals`: the 95% intervals of one model's scores that
  ``bundle.json``, model cards and reports carry (Wilson for accuracy, percentile bootstrap otherwise).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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


def _label_counts(y_true: np.ndarray, y_pred: np.ndarray, labels: int,
                  idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True positives, support and predicted counts per label (each ``[rows, labels]``) of every resample,
    from one bincount over (resample, true, predicted) cells."""
    rows = idx.shape[0]
    cells = (np.arange(rows)[:, None] * labels * labels + y_true[idx] * labels + y_pred[idx]).ravel()
    confusion = np.bincount(cells, minlength=rows * labels * labels).reshape(rows, labels, labels)
    tp = np.diagonal(confusion, axis1=1, axis2=2).astype(float)
    return tp, confusion.sum(axis=2).astype(float), confusion.sum(axis=1).astype(float)


def per_label_f1(y_true: np.ndarray, y_pred: np.ndarray, labels: int, idx: np.ndarray) -> np.ndarray:
    """``[rows, labels]``: F1 of each label in each resample; NaN where a resample holds the label neither as
    gold nor as prediction (its F1 is undefined there, and ``classification_metrics`` leaves it out)."""
    tp, support, predicted = _label_counts(y_true, y_pred, labels, idx)
    f1 = _safe_divide(2 * tp, support + predicted)
    f1[(support + predicted) == 0] = np.nan
    return f1


LABEL_METRICS = ("accuracy", "macro_f1", "macro_precision", "macro_recall", "weighted_f1")


def label_scores(y_true: np.ndarray, y_pred: np.ndarray, counted: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``[rows, 5]``: :data:`LABEL_METRICS` of the records ``idx`` (``[rows, n]``) selects.

    ``y_true``/``y_pred`` are label codes in ``[0, L)``; ``counted`` (``[L]`` bool) marks the labels macro
    and weighted averages may include. As ``verticals.metrics.classification_metrics``: the averages run
    over counted labels present (true or predicted) in the resample; accuracy over every record."""
    n = idx.shape[1]
    tp, support, predicted = _label_counts(y_true, y_pred, len(counted), idx)
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


# ---- intervals of one model's scores (bundle.json, model cards, reports) ---------------------------------
def _interval(value: float, low: float, high: float, method: str) -> dict[str, Any]:
    """One score and its interval as bundle.json stores it (the value too, so a card needs nothing else)."""
    return {"value": value, "low": low, "high": high, "method": method}


def _matches(value: float, reference: float | None) -> bool:
    """A vectorised definition is used only where it reproduces the task's own value on the full data, so an
    interval is always about the number printed beside it (a pack may define a metric differently)."""
    return reference is not None and abs(float(value) - float(reference)) <= 1e-9


def label_intervals(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str],
                    metrics: Mapping[str, float], per_label: Mapping[str, Mapping[str, float]], *,
                    resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
                    confidence: float = 0.95) -> dict[str, Any]:
    """95% intervals of a single-label model's headline scores on ``n`` records: Wilson for accuracy (a
    proportion of independent records), percentile bootstrap (``resamples`` seeded resamples of the records)
    for macro/weighted F1, macro precision/recall and every label's F1. ``labels`` are the model's labels
    (the ones macro averages count); gold or predicted values outside them (an out-of-scope label) are
    resampled too. Metrics whose value this module cannot reproduce from ``metrics``/``per_label`` get no
    interval rather than one about another number."""
    universe = list(dict.fromkeys([*map(str, labels), *map(str, y_true), *map(str, y_pred)]))
    code = {label: i for i, label in enumerate(universe)}
    y = np.array([code[str(t)] for t in y_true], dtype=np.int64)
    p = np.array([code[str(t)] for t in y_pred], dtype=np.int64)
    counted = np.array([label in set(map(str, labels)) for label in universe])
    n = len(y)
    out: dict[str, Any] = {"n": n, "confidence": confidence, "resamples": resamples, "seed": seed,
                           "metrics": {}, "per_label_f1": {}}
    if n == 0:
        return out
    everything = np.arange(n)[None, :]
    full = label_scores(y, p, counted, everything)[0]
    boot = [j for j, name in enumerate(LABEL_METRICS) if name != "accuracy" and _matches(full[j], metrics.get(name))]
    full_f1 = per_label_f1(y, p, len(universe), everything)[0]
    shown = [i for i, label in enumerate(universe)
             if label in per_label and _matches(full_f1[i], per_label[label].get("f1"))]
    samples = [(label_scores(y, p, counted, idx)[:, boot], per_label_f1(y, p, len(universe), idx)[:, shown])
               for idx in bootstrap_indices(n, resamples, seed)]
    macro = np.concatenate([s for s, _ in samples])
    f1 = np.concatenate([s for _, s in samples])
    if _matches(full[0], metrics.get("accuracy")):
        out["metrics"]["accuracy"] = _interval(float(full[0]), *wilson_interval(int((y == p).sum()), n, confidence),
                                               "wilson")
    for k, j in enumerate(boot):
        out["metrics"][LABEL_METRICS[j]] = _interval(float(full[j]), *percentile_interval(macro[:, k], confidence),
                                                     "bootstrap")
    for k, i in enumerate(shown):
        entry = _interval(float(full_f1[i]), *percentile_interval(f1[:, k], confidence), "bootstrap")
        out["per_label_f1"][universe[i]] = entry | {"support": int((y == i).sum())}
    return out


def entity_intervals(counts: np.ndarray, metrics: Mapping[str, float], *, resamples: int = DEFAULT_RESAMPLES,
                     seed: int = DEFAULT_SEED, confidence: float = 0.95) -> dict[str, Any]:
    """Percentile bootstrap intervals of entity micro precision/recall/F1 and token accuracy, resampling
    sentences (``counts`` as :func:`entity_scores` reads them): tokens of one sentence are not independent."""
    counts = np.asarray(counts, dtype=np.int64).reshape(-1, 5)
    n = len(counts)
    out: dict[str, Any] = {"n": n, "confidence": confidence, "resamples": resamples, "seed": seed,
                           "metrics": {}, "per_label_f1": {}}
    if n == 0:
        return out
    full = entity_scores(counts, np.arange(n)[None, :])[0]
    kept = [j for j, name in enumerate(ENTITY_METRICS) if _matches(full[j], metrics.get(name))]
    if not kept:
        return out
    values = paired_bootstrap(lambda idx: entity_scores(counts, idx)[:, kept], n, resamples, seed)
    for k, j in enumerate(kept):
        out["metrics"][ENTITY_METRICS[j]] = _interval(float(full[j]), *percentile_interval(values[:, k], confidence),
                                                      "bootstrap")
    return out
