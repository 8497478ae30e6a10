"""Choosing the two fallback thresholds on validation data.

The decision rule at prediction time is::

    confidence >= confidence_threshold            -> the classifier's intent
    else similarity >= similarity_threshold       -> the intent of the nearest indexed entries (retrieval)
    else                                          -> out of scope

Both thresholds are searched jointly over a grid of observed values (vectorised with numpy) and the pair
that maximises a stated objective wins:

- ``accuracy_at_oos_recall`` (default with out-of-scope examples): the highest in-scope accuracy among
  pairs whose out-of-scope recall reaches ``oos_recall_target``; when no pair reaches it, the highest
  recall (then accuracy). This is the operating point a support team asks for: "catch at least 80 % of
  what we cannot answer, and lose as little as possible on what we can".
- ``balanced``: the harmonic mean (F1) of in-scope accuracy and out-of-scope recall.
- ``precision`` (default without out-of-scope examples): the largest share of answered queries whose
  answered intent is correct at least ``precision_target`` of the time; when unreachable, the most
  precise pair.

Ties go to the pair with the lower fallback rate (fewer detours for users).

Which **score** decides "out of scope" is chosen too (``choose_score``):

- ``retrieval``: the two-threshold rule above (max softmax routes to retrieval, retrieval similarity
  decides);
- ``similarity``: the similarity of the nearest *training utterance* alone (FAISS top-1); above the
  threshold the classifier answers, below it the query is out of scope;
- ``softmax``: the classifier's max probability alone (the classic baseline).

With out-of-scope examples in the calibration data each score gets its best threshold(s) for the objective and
the best score wins (ties: the simpler rule). Without them nothing shows how real out-of-scope queries score,
so the known intents stand in for them (``pseudo_unknown``): pairs of in-scope calibration queries of
different intents are mixed into queries that lie between two intents (``mixed_pseudo_unknowns``), and the
nearest-utterance similarity threshold is the one that best separates queries the classifier keeps and answers
right from these pseudo-unknowns (``pseudo_unknown_threshold``). That needs a few calibration queries per
intent; with fewer (few-shot data) the ``in_scope_rejection`` rule sets the threshold at the lowest ``rate``
share of in-scope calibration queries (``rejection_threshold``), so the fallback costs about that share of
in-scope traffic and never more than the evidence supports (below ``1 / rate`` calibration queries it rejects
only what is less similar than every one of them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

OBJECTIVES = ("accuracy_at_oos_recall", "balanced", "precision")
SCORES = ("retrieval", "similarity", "softmax")
NEEDS_OOS = ("accuracy_at_oos_recall", "balanced")

# Bounds outside the observed ranges: confidence is a probability (<= 1) and similarity a cosine (>= -1),
# so a confidence threshold above 1 sends every query to retrieval and a similarity threshold above 1
# turns every fallback into "out of scope". Finite, so they survive JSON.
ALWAYS = 1.0 + 1e-6
NEVER_CONF = 0.0
NEVER_SIM = -1.0 - 1e-6


@dataclass(frozen=True)
class Outcomes:
    """Per validation query: what the classifier and the retrieval would answer, and the truth."""

    confidence: np.ndarray  # max softmax probability
    classifier_correct: np.ndarray  # bool: argmax intent == gold (False for out-of-scope gold)
    similarity: np.ndarray  # similarity of the retrieval's answer
    retrieval_correct: np.ndarray  # bool: retrieved intent == gold (False for out-of-scope gold)
    is_oos: np.ndarray  # bool: gold is the out-of-scope label
    nearest: np.ndarray | None = None  # similarity of the nearest indexed entry (FAISS top-1)
    # Not per query: the nearest-entry similarity of each pseudo-unknown (see mixed_pseudo_unknowns).
    pseudo_unknown: np.ndarray | None = None


@dataclass(frozen=True)
class Thresholds:
    confidence: float
    similarity: float
    objective: str
    target: float | None
    achieved: dict[str, float]
    target_met: bool

    def as_state(self) -> dict[str, Any]:
        return {"confidence": self.confidence, "similarity": self.similarity, "objective": self.objective,
                "target": self.target, "target_met": self.target_met, "achieved": self.achieved}


def _candidates(values: np.ndarray, lower: float, upper: float, size: int = 120) -> np.ndarray:
    """Thresholds at the observed values (quantiles when many), plus the two 'never/always' bounds."""
    finite = values[np.isfinite(values)]
    grid = np.quantile(finite, np.linspace(0.0, 1.0, size)) if len(finite) else np.zeros(0)
    return np.unique(np.concatenate([[lower], grid, [upper]]))


def rates(outcomes: Outcomes, conf_t: np.ndarray, sim_t: np.ndarray) -> dict[str, np.ndarray]:
    """Metrics for every (confidence, similarity) threshold pair: arrays of shape [len(conf_t), len(sim_t)]."""
    o = outcomes
    by_clf = o.confidence[None, None, :] >= conf_t[:, None, None]
    by_ret = ~by_clf & (o.similarity[None, None, :] >= sim_t[None, :, None])
    flagged = ~by_clf & ~by_ret
    correct = (by_clf & o.classifier_correct) | (by_ret & o.retrieval_correct)
    in_scope, oos = ~o.is_oos, o.is_oos
    n_in, n_oos = max(int(in_scope.sum()), 1), max(int(oos.sum()), 1)
    answered = (~flagged).sum(-1)
    n_flagged = flagged.sum(-1)
    return {
        "in_scope_accuracy": (correct & in_scope).sum(-1) / n_in,
        "oos_recall": (flagged & oos).sum(-1) / n_oos,
        "oos_precision": np.where(n_flagged > 0, (flagged & oos).sum(-1) / np.maximum(n_flagged, 1), 0.0),
        "answered_precision": np.where(answered > 0, correct.sum(-1) / np.maximum(answered, 1), 0.0),
        "coverage": answered / len(o.confidence),
        "fallback_rate": np.broadcast_to((~by_clf).mean(-1), flagged.shape[:2]),
    }


def calibrate(outcomes: Outcomes, objective: str = "auto", *, oos_recall_target: float = 0.8,
              precision_target: float = 0.95, use_retrieval: bool = True) -> Thresholds:
    """Pick the threshold pair that maximises ``objective`` on ``outcomes`` (see the module docstring).

    ``objective='auto'`` means ``accuracy_at_oos_recall`` when out-of-scope examples are present, else
    ``precision``. ``use_retrieval=False`` searches the confidence threshold alone (low confidence means
    out of scope), the classic single-threshold baseline.
    """
    has_oos = bool(outcomes.is_oos.any())
    if objective == "auto":
        objective = "accuracy_at_oos_recall" if has_oos else "precision"
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective '{objective}'; expected auto or one of {', '.join(OBJECTIVES)}")
    if objective in NEEDS_OOS and not has_oos:
        raise ValueError(f"objective '{objective}' needs out-of-scope examples in the calibration data")
    conf_t = _candidates(outcomes.confidence, NEVER_CONF, ALWAYS)
    sim_t = _candidates(outcomes.similarity, NEVER_SIM, ALWAYS) if use_retrieval else np.array([ALWAYS])
    r = rates(outcomes, conf_t, sim_t)
    # Lexicographic choice: primary score, then a secondary score, then fewer fallbacks.
    if objective == "accuracy_at_oos_recall":
        target: float | None = oos_recall_target
        met = r["oos_recall"] >= target - 1e-12
        primary = np.where(met, 1.0, 0.0)
        secondary = np.where(met, r["in_scope_accuracy"], r["oos_recall"])
        tertiary = np.where(met, r["oos_recall"], r["in_scope_accuracy"])
    elif objective == "balanced":
        target = None
        acc, rec = r["in_scope_accuracy"], r["oos_recall"]
        met = np.ones_like(acc, dtype=bool)
        primary = np.where(acc + rec > 0, 2 * acc * rec / np.maximum(acc + rec, 1e-12), 0.0)
        secondary, tertiary = acc, rec
    else:
        target = precision_target
        met = r["answered_precision"] >= target - 1e-12
        primary = np.where(met, 1.0, 0.0)
        secondary = np.where(met, r["coverage"], r["answered_precision"])
        tertiary = np.where(met, r["answered_precision"], r["coverage"])
    keys = (-r["fallback_rate"].ravel(), tertiary.ravel(), secondary.ravel(), primary.ravel())
    best = int(np.lexsort(keys)[-1])
    i, j = np.unravel_index(best, primary.shape)
    achieved = {name: float(values[i, j]) for name, values in r.items()}
    if not has_oos:
        for name in ("oos_recall", "oos_precision"):
            achieved.pop(name)
    return Thresholds(confidence=float(conf_t[i]), similarity=float(sim_t[j]), objective=objective,
                      target=target, achieved=achieved, target_met=bool(met[i, j]))


def single_score(outcomes: Outcomes, score: np.ndarray) -> Outcomes:
    """Outcomes for a one-threshold rule on ``score`` (high = in scope, classifier answers; low = out of
    scope): the confidence slot carries the score and retrieval never answers."""
    return Outcomes(confidence=np.asarray(score, dtype=np.float64), classifier_correct=outcomes.classifier_correct,
                    similarity=np.full(len(score), NEVER_SIM), retrieval_correct=np.zeros(len(score), dtype=bool),
                    is_oos=outcomes.is_oos)


def rejection_threshold(in_scope_scores: np.ndarray, rate: float) -> float:
    """The score below which about ``rate`` of in-scope queries fall: the ``rate`` quantile of the observed
    in-scope scores, but never above the lowest one when there are fewer than ``1 / rate`` of them (a
    quantile of two points per intent is noise; the minimum is the conservative estimate)."""
    values = np.sort(np.asarray(in_scope_scores, dtype=np.float64))
    values = values[np.isfinite(values)]
    if not len(values):
        return NEVER_SIM
    if len(values) * rate < 1.0:
        return float(values[0])
    # 'lower': an observed value, so exactly floor(rate * n) calibration queries would be rejected.
    return float(np.quantile(values, rate, method="lower"))


def mixed_pseudo_unknowns(vectors: np.ndarray, intents: Sequence[str], mix: float, seed: int,
                          per_query: int = 4) -> np.ndarray:
    """Pseudo-unknown query embeddings: ``mix * a + (1 - mix) * b`` (unit length) for random pairs of
    calibration queries ``a``, ``b`` of *different* intents, ``per_query`` pairs per query. A query that
    lies between two known intents, close to neither, is what an unseen intent looks like to the fine-tuned
    encoder (convex combinations of in-scope representations as pseudo outliers: Zhan et al., ACL 2021).
    Empty with fewer than two intents."""
    vectors = np.asarray(vectors, dtype=np.float32)
    codes = np.unique(np.asarray(intents, dtype=object), return_inverse=True)[1]
    if len(vectors) < 2 or codes.max(initial=0) == 0:
        return np.zeros((0, vectors.shape[1] if vectors.ndim == 2 else 0), dtype=np.float32)
    rng = np.random.default_rng(seed)
    first = np.repeat(np.arange(len(vectors)), per_query)
    second = rng.integers(0, len(vectors), len(first))
    while (same := codes[first] == codes[second]).any():  # redraw partners of the same intent
        second[same] = rng.integers(0, len(vectors), int(same.sum()))
    mixed = mix * vectors[first] + (1.0 - mix) * vectors[second]
    return mixed / np.maximum(np.linalg.norm(mixed, axis=1, keepdims=True), 1e-12)


def pseudo_unknown_threshold(in_scope: np.ndarray, correct: np.ndarray,
                             pseudo: np.ndarray) -> tuple[float, dict[str, float]]:
    """The score threshold that best separates in-scope queries the classifier answers correctly from
    pseudo-unknowns (:func:`mixed_pseudo_unknowns`): it maximises
    the mean of the share of in-scope queries kept and answered correctly and the share of pseudo-unknowns
    rejected (each weighted equally, because how much out-of-scope traffic a deployment sees is unknown).
    Ties go to the lowest threshold (fewest in-scope queries rejected)."""
    in_scope = np.asarray(in_scope, dtype=np.float64)
    pseudo = np.asarray(pseudo, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    if not len(in_scope) or not len(pseudo):
        return NEVER_SIM, {}
    candidates = np.unique(np.concatenate([[NEVER_SIM], in_scope, pseudo]))
    kept_right = np.sort(in_scope[correct])
    kept_right_share = (len(kept_right) - np.searchsorted(kept_right, candidates, "left")) / len(in_scope)
    rejected_share = np.searchsorted(np.sort(pseudo), candidates, "left") / len(pseudo)
    balance = (kept_right_share + rejected_share) / 2
    best = int(np.flatnonzero(balance >= balance.max() - 1e-12)[0])
    threshold = float(candidates[best])
    achieved = {"in_scope_rejection": float((in_scope < threshold).mean()),
                "in_scope_kept_and_correct": float(kept_right_share[best]),
                "pseudo_unknown_rejection": float(rejected_share[best])}
    return threshold, achieved


def choose_score(candidates: dict[str, Thresholds]) -> str:
    """The score whose calibrated thresholds serve the (shared) objective best; ties go to the simpler rule
    (softmax, then similarity, then retrieval) and then to fewer fallbacks."""
    simplicity = {"softmax": 2, "similarity": 1, "retrieval": 0}

    def key(name: str) -> tuple[float, ...]:
        t, a = candidates[name], candidates[name].achieved
        if t.objective == "accuracy_at_oos_recall":
            main = (a["in_scope_accuracy"], a["oos_recall"]) if t.target_met else (-1.0 + a["oos_recall"], 0.0)
        elif t.objective == "balanced":
            acc, rec = a["in_scope_accuracy"], a.get("oos_recall", 0.0)
            main = (2 * acc * rec / (acc + rec) if acc + rec else 0.0, acc)
        else:
            main = (a["coverage"], a["answered_precision"]) if t.target_met else (-1.0 + a["answered_precision"], 0.0)
        return (float(t.target_met), *(round(m, 12) for m in main), simplicity[name], -a["fallback_rate"])

    return max(candidates, key=key)
