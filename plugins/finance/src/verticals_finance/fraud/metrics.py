"""Fraud metrics and the cost-minimising decision threshold."""

from __future__ import annotations

from typing import Any

import numpy as np


def _weights(y: np.ndarray, negative_weight: float) -> np.ndarray:
    return np.where(y == 1, 1.0, negative_weight)


def choose_threshold(y: np.ndarray, p: np.ndarray, cost_fn: float, cost_fp: float,
                     negative_weight: float = 1.0) -> tuple[float, float]:
    """The threshold t (flag when ``p >= t``) minimising ``cost_fn * FN + cost_fp * FP`` on (y, p).

    Returns (threshold, expected cost per record). Every cut between two distinct scores is a candidate
    (the threshold lies midway), plus "flag nothing"; ties in cost go to fewer alarms.
    """
    y = np.asarray(y, dtype=np.int64)
    p = np.asarray(p, dtype=np.float64)
    w = _weights(y, negative_weight)
    order = np.argsort(-p, kind="stable")
    p_sorted, y_sorted, w_sorted = p[order], y[order], w[order]
    # Flagging the top k records: FP = weight of legit among them, FN = frauds outside them.
    fp = np.concatenate([[0.0], np.cumsum(w_sorted * (y_sorted == 0))])
    tp = np.concatenate([[0.0], np.cumsum(y_sorted == 1)])
    fn = y.sum() - tp
    cost = cost_fn * fn + cost_fp * fp
    # Only cuts between distinct scores are realisable by a threshold.
    valid = np.concatenate([[True], np.append(p_sorted[1:] != p_sorted[:-1], True)])
    cost = np.where(valid, cost, np.inf)
    best = int(np.argmin(cost))  # first minimum = fewest flagged records
    if best == 0:
        threshold = float(np.nextafter(p_sorted[0], np.inf))  # flag nothing seen on validation
    elif best == len(p_sorted):
        threshold = float(p_sorted[-1])
    else:  # midway between the last flagged and the first unflagged score, like a tree split
        threshold = float((p_sorted[best - 1] + p_sorted[best]) / 2)
    return threshold, float(cost[best] / w.sum())


def fraud_metrics(y: np.ndarray, p: np.ndarray, threshold: float, cost_fn: float, cost_fp: float,
                  negative_weight: float = 1.0) -> tuple[dict[str, float], dict[str, dict[str, float]], dict[str, Any]]:
    """AUPRC (primary), ROC-AUC, recall at 1% FPR, and precision/recall/F1/expected cost at ``threshold``."""
    from sklearn.metrics import average_precision_score, precision_recall_fscore_support, roc_auc_score, roc_curve

    y = np.asarray(y, dtype=np.int64)
    p = np.asarray(p, dtype=np.float64)
    w = _weights(y, negative_weight)
    flagged = (p >= threshold).astype(np.int64)
    both = len(np.unique(y)) == 2
    if both:
        auprc = float(average_precision_score(y, p, sample_weight=w))
        roc_auc = float(roc_auc_score(y, p))
        fpr, tpr, _ = roc_curve(y, p)
        recall_1pct = float(tpr[fpr <= 0.01].max())
    else:  # undefined with one class; NaN says so instead of a misleading number
        auprc = roc_auc = recall_1pct = float("nan")
    precision, recall, f1, _ = precision_recall_fscore_support(y, flagged, labels=[1], sample_weight=w,
                                                               zero_division=0)
    fn = int(((y == 1) & (flagged == 0)).sum())
    fp = int(((y == 0) & (flagged == 1)).sum())
    tp = int(((y == 1) & (flagged == 1)).sum())
    cost = (cost_fn * fn + cost_fp * negative_weight * fp) / w.sum()
    metrics = {"auprc": auprc, "roc_auc": roc_auc, "recall_at_1pct_fpr": recall_1pct,
               "precision": float(precision[0]), "recall": float(recall[0]), "f1": float(f1[0]),
               "expected_cost": float(cost)}
    per_label = {"1": {"precision": float(precision[0]), "recall": float(recall[0]), "f1": float(f1[0]),
                       "support": float((y == 1).sum())}}
    details = {"threshold": threshold, "confusion": {"tp": tp, "fp": fp, "fn": fn,
                                                     "tn": int(((y == 0) & (flagged == 0)).sum())},
               "costs": {"false_negative": cost_fn, "false_positive": cost_fp, "negative_weight": negative_weight}}
    if not both:
        details["warning"] = "evaluation data holds one class only; ranking metrics are undefined (NaN)"
    return metrics, per_label, details
