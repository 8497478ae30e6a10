"""Drift of served traffic against the validation set: what a model decided, profiled and compared.

At training time :func:`build_profile` summarises the model's own predictions on its validation set
(``profile`` in bundle.json): how often it chose each label and how its decision scores were spread,
as histogram bins. While serving, the same summary of a sliding window of recent traffic is compared
with it by the **population stability index** (:func:`psi`).

Why PSI: one statistic for both comparisons (a categorical label distribution and a binned score
distribution); it measures how far apart two distributions are rather than whether a difference is
significant (a p-value from a chi-square or Kolmogorov-Smirnov test goes to 0 for any trivial shift once
the window is large, and says nothing of its size); and it has thresholds operations teams already use,
from credit-risk model monitoring: below 0.1 stable, 0.1-0.2 watch, above 0.2 investigate
(:data:`INVESTIGATE`). PSI is the symmetrised Kullback-Leibler divergence of the two binned distributions,
``sum((a - e) * ln(a / e))``.

Sampling noise: two samples of one distribution give on average a PSI of about ``(k - 1) * (1/n + 1/m)``
(k bins, n and m records; :func:`expected_psi`), so with many labels and a small validation set the
statistic starts above 0; the server exposes this floor beside each PSI.

Predictions are read generically (no pack is imported here), by field name:

- decisions: ``entities`` (token tasks: one decision per entity, its ``type`` and ``score``; a record
  without entities is one ``(none)`` decision), else ``label`` (or ``intent``) with ``score`` (or
  ``confidence``);
- ``confidence`` (else ``score`` when the prediction has no ``threshold``): the probability of the chosen
  decision, compared with the low-confidence threshold;
- ``out_of_scope``, ``fallback``: booleans as the customer-service task sets them;
- ``flagged``, else ``score >= threshold`` when the prediction carries its decision ``threshold`` (fraud).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

PROFILE_VERSION = 1
INVESTIGATE = 0.2  # PSI above this: the traffic no longer looks like the validation set
WATCH = 0.1  # PSI 0.1-0.2: a moderate shift, worth watching
SCORE_BINS = 10  # deciles of the validation scores: each bin holds ~10 % of the reference
NO_ENTITY = "(none)"  # the decision of a token task that found no entity in a record
_FLOOR = 1e-4  # share given to an empty bin: without it one empty bin makes PSI infinite
DECISION_FIELDS = ("label", "intent", "score", "confidence", "entities", "out_of_scope", "fallback", "flagged",
                   "threshold")


@dataclass(slots=True)
class Outcome:
    """What one prediction decided, read from its fields (see the module docstring)."""

    decisions: list[tuple[str, float | None]] = field(default_factory=list)
    confidences: list[float] = field(default_factory=list)
    out_of_scope: bool | None = None
    fallback: bool | None = None
    flagged: bool | None = None


def decision_fields(prediction_type: type) -> set[str]:
    """The decision fields a task's ``Prediction`` model declares (empty: nothing to monitor or profile)."""
    fields = getattr(prediction_type, "model_fields", {})
    return {name for name in DECISION_FIELDS if name in fields}


def read_outcome(prediction: Any) -> Outcome:
    """The decisions of one prediction object."""
    outcome = Outcome()
    entities = getattr(prediction, "entities", None)
    threshold = getattr(prediction, "threshold", None)
    score: float | None = None
    if isinstance(entities, list):
        for entity in entities:
            entity_score = _number(getattr(entity, "score", None))
            outcome.decisions.append((str(getattr(entity, "type", "?")), entity_score))
            if entity_score is not None:
                outcome.confidences.append(entity_score)
        if not entities:
            outcome.decisions.append((NO_ENTITY, None))
    else:
        label = getattr(prediction, "label", None)
        if label is None:
            label = getattr(prediction, "intent", None)
        confidence = _number(getattr(prediction, "confidence", None))
        score = _number(getattr(prediction, "score", None))
        if score is None:
            score = confidence
        elif confidence is None and threshold is None:
            confidence = score  # a classifier's score is the probability of its label
        if label is not None or score is not None:
            outcome.decisions.append((str(label) if label is not None else "", score))
        if confidence is not None:
            outcome.confidences.append(confidence)
    for name in ("out_of_scope", "fallback", "flagged"):
        value = getattr(prediction, name, None)
        if isinstance(value, bool):
            setattr(outcome, name, value)
    limit = _number(threshold)
    if outcome.flagged is None and score is not None and limit is not None:
        outcome.flagged = score >= limit
    return outcome


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def score_edges(scores: Sequence[float], bins: int = SCORE_BINS) -> list[float]:
    """Inner bin edges at the quantiles of ``scores`` (equal-frequency bins, the usual PSI binning: each
    bin holds enough reference records to compare). Tied quantiles merge bins; [] when fewer than two
    bins remain or there are too few scores to place ``bins`` edges."""
    values = np.asarray(scores, dtype=np.float64)
    values = values[np.isfinite(values)]
    if len(values) < 2 * bins:
        return []
    edges = np.unique(np.quantile(values, np.arange(1, bins) / bins))
    # a top edge equal to the maximum would leave the last bin empty (scores are placed x <= edge)
    edges = edges[edges < values.max()]
    return [float(e) for e in edges]


def histogram(scores: Iterable[float], edges: Sequence[float]) -> list[int]:
    """Counts per bin: bin i holds ``edges[i-1] < x <= edges[i]`` (outer bins open-ended)."""
    values = np.asarray(list(scores), dtype=np.float64)
    index = np.searchsorted(np.asarray(edges, dtype=np.float64), values[np.isfinite(values)], side="left")
    return [int(c) for c in np.bincount(index, minlength=len(edges) + 1)]


def build_profile(predictions: Sequence[Any], split: str = "validation") -> dict[str, Any] | None:
    """The profile bundle.json keeps: label counts and score histogram of ``predictions`` (None when the
    predictions carry no decision, e.g. recommendations)."""
    labels: Counter[str] = Counter()
    scores: list[float] = []
    for prediction in predictions:
        for label, score in read_outcome(prediction).decisions:
            labels[label] += 1
            if score is not None:
                scores.append(score)
    if not labels:
        return None
    profile: dict[str, Any] = {"version": PROFILE_VERSION, "split": split, "records": len(predictions),
                               "labels": dict(sorted(labels.items()))}
    edges = score_edges(scores)
    if edges:
        profile["score"] = {"edges": edges, "counts": histogram(scores, edges)}
    return profile


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Population stability index of two binned distributions given as counts (or shares) per bin."""
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if e.shape != a.shape or e.sum() <= 0 or a.sum() <= 0:
        raise ValueError("psi needs two non-empty count vectors of the same length")
    e = np.clip(e / e.sum(), _FLOOR, None)
    a = np.clip(a / a.sum(), _FLOOR, None)
    return float(np.sum((a - e) * np.log(a / e)))


def expected_psi(bins: int, n: int, m: int) -> float:
    """Mean PSI of two samples of one distribution (n and m records, ``bins`` bins): the noise floor
    (the chi-square approximation of the Jeffreys divergence)."""
    return (bins - 1) * (1 / max(n, 1) + 1 / max(m, 1))


def label_psi(reference: Mapping[str, int], window: Mapping[str, int]) -> tuple[float, int]:
    """PSI of the label counts of a window against the profile's, over the labels either one holds; and
    the number of bins compared."""
    names = sorted(set(reference) | set(window))
    return psi([reference.get(n, 0) for n in names], [window.get(n, 0) for n in names]), len(names)
