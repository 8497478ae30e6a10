"""Metric computations, delegated to scikit-learn and seqeval."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def classification_metrics(
    y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]
) -> tuple[dict[str, float], dict[str, dict[str, float]], dict[str, Any]]:
    """accuracy, macro/weighted F1 and macro precision/recall; per-label P/R/F1/support; confusion."""
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    labels = list(labels)
    present = [label for label in labels if label in set(y_true) | set(y_pred)]
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    macro = precision_recall_fscore_support(y_true, y_pred, labels=present, average="macro", zero_division=0)
    weighted = precision_recall_fscore_support(y_true, y_pred, labels=present, average="weighted",
                                               zero_division=0)
    metrics = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(macro[2]),
        "macro_precision": float(macro[0]),
        "macro_recall": float(macro[1]),
        "weighted_f1": float(weighted[2]),
    }
    per_label = {
        label: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": float(s[i])}
        for i, label in enumerate(labels)
        if s[i] > 0 or label in set(y_pred)
    }
    confusion = confusion_matrix(y_true, y_pred, labels=labels).tolist()
    return metrics, per_label, {"confusion_matrix": {"labels": labels, "matrix": confusion}}


def entity_metrics(
    y_true: Sequence[Sequence[str]], y_pred: Sequence[Sequence[str]]
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Entity-level exact-match P/R/F1 (micro and per type) as conlleval computes them, plus token accuracy."""
    from seqeval.metrics import accuracy_score, classification_report, f1_score, precision_score, recall_score

    true = [list(s) for s in y_true]
    pred = [list(s) for s in y_pred]
    metrics = {
        "precision": float(precision_score(true, pred, zero_division=0)),
        "recall": float(recall_score(true, pred, zero_division=0)),
        "f1": float(f1_score(true, pred, zero_division=0)),
        "token_accuracy": float(accuracy_score(true, pred)),
    }
    report = classification_report(true, pred, output_dict=True, zero_division=0)
    per_type = {
        name: {"precision": float(v["precision"]), "recall": float(v["recall"]), "f1": float(v["f1-score"]),
               "support": float(v["support"])}
        for name, v in report.items()
        if name not in {"micro avg", "macro avg", "weighted avg"}
    }
    return metrics, per_type


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)
