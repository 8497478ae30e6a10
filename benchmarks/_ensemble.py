"""The ensemble teacher of ``benchmarks/teacher_student.py`` as a model of its own: the argmax of its members'
averaged probabilities (what its students learn from), scored on one labelled file with the pack's metrics.
Members are aligned to the first one's label order by label name, as ``verticals.distill`` aligns them."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np


def sentence_metrics(predictors: list[Any], path: Path, overrides: list[str]) -> dict[str, float]:
    """Accuracy and macro-F1 of the averaged class probabilities (finance.sentiment's CSV files, which need no
    ``overrides``; the argument keeps one signature for both scorers)."""
    from sklearn.metrics import accuracy_score, f1_score

    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    texts, gold = [row["text"] for row in rows], [row["label"] for row in rows]
    answers = [predictor.predict(texts) for predictor in predictors]
    labels = sorted(answers[0][0].scores)
    mean = [[sum(a[i].scores[label] for a in answers) / len(answers) for label in labels]
            for i in range(len(texts))]
    predicted = [labels[max(range(len(labels)), key=row.__getitem__)] for row in mean]
    return {"accuracy": accuracy_score(gold, predicted), "macro_f1": f1_score(gold, predicted, average="macro")}


def entity_metrics(predictors: list[Any], path: Path, overrides: list[str]) -> dict[str, float]:
    """Strict entity precision/recall/F1 of the averaged per-word probabilities (medical.ner: each member's
    probabilities merged over its own sliding windows, then averaged, argmax, BIO repair, spans)."""
    from verticals.tasks.distillation import label_order

    tasks = [(predictor.with_overrides(overrides) if overrides else predictor).task for predictor in predictors]
    first = tasks[0]
    records = first.read(path)
    total: list[np.ndarray] | None = None
    for task in tasks:
        order = label_order(list(task.labels_), list(first.labels_))  # distill's alignment; other sets refused
        words = task.merged_word_probabilities(records, *task.predict_logits(records))
        aligned = [probs[:, order] for probs in words]
        total = aligned if total is None else [t + a for t, a in zip(total, aligned, strict=True)]
    assert total is not None
    predictions = [first.decode_words(record.tokens, probs / len(tasks))
                   for record, probs in zip(records, total, strict=True)]
    metrics = first.score(records, predictions).metrics
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float))}


SCORERS = {"phrasebank": sentence_metrics, "ncbi": entity_metrics}
