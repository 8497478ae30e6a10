"""The 95% intervals of a model's scores on one split, from its records and predictions.

Training stores them in ``bundle.json`` (``intervals``: split -> intervals) for the validation and test
splits, so ``verticals card`` can show how far each stored score may be from the model's true one without
the data; ``verticals report`` computes them for the data it evaluates on. Single-label tasks (a record's
gold ``label_field`` against the prediction's ``label`` or ``intent``) get Wilson for accuracy and bootstrap
for macro scores and each label's F1; tagging tasks get bootstrap over sentences for entity P/R/F1 and
token accuracy. Other tasks (ranking, regression, a pack's own score) get none: ``None``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel

from ..metrics import significance as sig
from .base import Evaluation, TaskType

PREDICTED_LABEL_FIELDS = ("label", "intent")


def _entity_counts(records: Sequence[BaseModel], predictions: Sequence[BaseModel]) -> np.ndarray:
    """Per sentence: entities right, predicted, gold (exact match, as seqeval reads BIO); tokens right, tokens."""
    from seqeval.metrics.sequence_labeling import get_entities

    counts = np.zeros((len(records), 5), dtype=np.int64)
    for i, (record, prediction) in enumerate(zip(records, predictions)):
        gold_tags, found_tags = list(record.tags), list(prediction.tags)  # type: ignore[attr-defined]
        gold, found = set(get_entities(gold_tags)), set(get_entities(found_tags))
        counts[i] = (len(gold & found), len(found), len(gold), sum(t == p for t, p in zip(gold_tags, found_tags)),
                     len(gold_tags))
    return counts


def evaluation_intervals(task: TaskType, records: Sequence[BaseModel], predictions: Sequence[BaseModel],
                         evaluation: Evaluation, *, resamples: int = sig.DEFAULT_RESAMPLES,
                         seed: int = sig.DEFAULT_SEED) -> dict[str, Any] | None:
    """Intervals of ``evaluation``'s headline scores (see the module docstring), seeded: the same records and
    predictions give the same intervals. ``None`` when the task's predictions are not labels or tags."""
    if not records or len(records) != len(predictions):
        return None
    first, prediction = records[0], predictions[0]
    if isinstance(getattr(first, "tags", None), list) and isinstance(getattr(prediction, "tags", None), list):
        return sig.entity_intervals(_entity_counts(records, predictions), evaluation.metrics,
                                    resamples=resamples, seed=seed)
    field = next((f for f in PREDICTED_LABEL_FIELDS if getattr(prediction, f, None) is not None), None)
    gold_field = task.label_field
    if field is None or gold_field is None or getattr(first, gold_field, None) is None:
        return None
    y_true = [str(getattr(r, gold_field)) for r in records]
    y_pred = [str(getattr(p, field)) for p in predictions]
    labels = [str(label) for label in getattr(task, "labels_", None) or []]
    return sig.label_intervals(y_true, y_pred, labels, evaluation.metrics, evaluation.per_label,
                               resamples=resamples, seed=seed)
