"""The majority-class baseline a trained model must beat.

A run whose warmup outlasted its patience (issue 29) wrote a bundle with validation accuracy 0 and exit 0.
Any model whose validation primary metric is no better than answering the most frequent training label
for everything has learnt nothing usable; training says so loudly (a warning) and records it in
``bundle.json`` (``baseline``), which ``verticals inspect`` shows.
"""

from __future__ import annotations

import math
from typing import Any


def baseline_check(rule: str, baseline_metrics: dict[str, float], validation_metrics: dict[str, float], *,
                   primary_metric: str, greater_is_better: bool = True) -> dict[str, Any] | None:
    """``bundle.json``'s ``baseline`` entry: the rule, the metric, both values and ``at_or_below`` (True when
    the model's validation score is not better than the baseline's). None when the primary metric is
    missing from either side (nothing to compare)."""
    model = validation_metrics.get(primary_metric)
    baseline = baseline_metrics.get(primary_metric)
    if model is None or baseline is None:
        return None
    model, baseline = float(model), float(baseline)
    if math.isnan(model):
        at_or_below = True  # no score at all is no better than a constant
    else:
        at_or_below = model <= baseline if greater_is_better else model >= baseline
    return {"rule": rule, "metric": primary_metric, "baseline": baseline, "validation": model,
            "at_or_below": bool(at_or_below)}


def baseline_warning(entry: dict[str, Any]) -> str | None:
    """The one-line warning for a model at or below its baseline (None when it beats it)."""
    if not isinstance(entry, dict) or entry.get("at_or_below") is not True or not _complete(entry):
        return None
    return (f"validation {entry['metric']} {entry['validation']:.4f} is no better than the majority-class "
            f"baseline {entry['baseline']:.4f} ({entry['rule']}): this model has learnt nothing usable; "
            f"check the labels, train longer or with another learning rate (verticals inspect shows the "
            f"training history)")


def _complete(entry: dict[str, Any]) -> bool:
    return (isinstance(entry.get("rule"), str) and isinstance(entry.get("metric"), str)
            and all(isinstance(entry.get(k), (int, float)) for k in ("baseline", "validation")))


def baseline_lines(entry: Any) -> list[str]:
    """What ``verticals inspect`` prints about a bundle's ``baseline`` entry (nothing for an old bundle or a
    malformed entry: inspect describes, it does not crash)."""
    if not isinstance(entry, dict) or not _complete(entry):
        return []
    flag = baseline_warning(entry)
    line = (f"{entry['rule']}: validation {entry['metric']} {entry['baseline']:.4f}"
            + ("" if flag else f", the model's {entry['validation']:.4f} beats it"))
    return [f"baseline {line}"] + ([f"WARNING  {flag}"] if flag else [])
