"""Model cards: ``verticals card BUNDLE --output FILE`` (from the bundle alone) and the card that
``verticals report`` writes beside its evaluation.

The card states intended use, data fingerprints, metrics (with units), thresholds, limitations and
versions. Built from ``bundle.json`` only, so it needs neither labelled data nor the model's weights;
with the bundle's pack installed it also shows the pack's label names and metric units.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._outputs import check_file_replaceable
from ._version import __version__
from .bundle import BundleInfo, atomic_file, read_info, verify
from .tasks.base import Evaluation

SMALL_SAMPLE = 100
"""Below this many records a score moves by a point or more with each record: reports and cards say so."""


@dataclass
class CardContext:
    """What the pack adds to a bundle's own description (empty when the pack is not installed)."""

    description: str = ""
    pack: str | None = None
    label_names: dict[str, str] = field(default_factory=dict)
    metric_notes: dict[str, str] = field(default_factory=dict)

    def name(self, label: object) -> str:
        return self.label_names.get(str(label), str(label))


def context(info: BundleInfo, task: Any | None = None) -> CardContext:
    """Label names from the pack's task spec; metric notes from the task type (``task``, or one built from
    the bundle's config: constructors store configuration only, so nothing is loaded)."""
    from ._plugins import get_catalog

    ctx = CardContext(pack=info.pack)
    try:
        catalog = get_catalog()
        spec, ctx.pack = catalog.task(info.task)
        ctx.description, ctx.label_names = spec.description, dict(spec.label_names)
        if task is None:
            from .api import _lenient_config

            task = catalog.task_types.get(info.task_type)(_lenient_config(info.config, Path(".")),
                                                          task_name=info.task)
    except Exception:  # noqa: BLE001 - the card is still useful without the pack (names stay as stored)
        pass
    if task is not None:
        ctx.description = ctx.description or task.description
        ctx.metric_notes = dict(task.metric_notes())
    return ctx


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion (sensible at 0 or n successes, unlike the normal one)."""
    from scipy.stats import binomtest

    ci = binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def small_sample_note(n: int, what: str = "records") -> str | None:
    if n >= SMALL_SAMPLE:
        return None
    return (f"Only {n} {what}: with fewer than {SMALL_SAMPLE}, one record more or less right moves a score by "
            f"{100 / max(n, 1):.1f} points; treat these scores as rough and evaluate on more data before relying "
            f"on them.")


def _threshold_lines(state: dict[str, Any], prefix: str = "") -> list[str]:
    """Everything under state keys naming thresholds (values, objectives, targets) for the model card."""
    lines = []
    for key, value in state.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            lines += _threshold_lines(value, f"{path}.")
        elif "threshold" in path.lower():
            shown = f"{value:.4f}" if isinstance(value, float) else json.dumps(value, default=str)
            lines.append(f"- `{path}` = {shown}")
    return lines


def _intended_use(info: BundleInfo, ctx: CardContext) -> str:
    where = f"the '{ctx.pack}' pack" if ctx.pack else "the generic task type"
    labels = ", ".join(f"{label} = {ctx.name(label)}" for label in info.labels if ctx.name(label) != label)
    return (f"{ctx.description} Task `{info.task}` ({where}); predicts one of {len(info.labels)} "
            f"labels for inputs like those it was trained on." + (f" Labels: {labels}." if labels else ""))


def _limitations(info: BundleInfo, ctx: CardContext, evaluation: Evaluation | None) -> list[str]:
    train = info.data.get("train", {})
    names = [ctx.name(label) for label in info.labels]
    lines = [f"Training file: {train.get('records', 'an unknown number of')} records; it can only predict the "
             f"labels seen in training ({', '.join(names[:15])}{' ...' if len(names) > 15 else ''})."]
    max_length = info.config.get("training", {}).get("max_length")
    if max_length:
        lines.append(f"Inputs longer than {max_length} tokens are truncated before prediction.")
    if evaluation is not None:
        weak = [f"{ctx.name(k)} (F1 {v['f1']:.2f})" for k, v in evaluation.per_label.items() if v.get("f1", 1.0) < 0.5]
        if weak:
            lines.append(f"Weak on this data (F1 < 0.5): {', '.join(weak[:10])}.")
        rare = [ctx.name(k) for k, v in evaluation.per_label.items() if 0 < v.get("support", 0) < 10]
        if rare:
            lines.append(f"Fewer than 10 evaluation examples for: {', '.join(rare[:10])}; their scores are noisy.")
        note = small_sample_note(evaluation.n)
        if note:
            lines.append(note)
        lines.append(f"Scores hold for data like the evaluation set ({evaluation.n} records); re-evaluate before "
                     f"using it on another population, language or time period.")
    else:
        for split in info.metrics:
            records = info.data.get(split, {}).get("records")
            note = small_sample_note(records, f"{split} records") if isinstance(records, int) else None
            if note:
                lines.append(note)
        lines.append("Scores hold for data like the validation/test data above; evaluate on the client's own "
                     "labelled data (`verticals report`) before relying on it there.")
    return lines


def model_card(info: BundleInfo, evaluation: Evaluation | None = None, data_print: Mapping[str, Any] | None = None,
               extras: Mapping[str, Any] | None = None, ctx: CardContext | None = None) -> str:
    """The Markdown model card. Without ``evaluation`` it holds the metrics stored in the bundle only."""
    ctx = ctx or context(info)
    data = list(info.data.items())
    rows = list(info.metrics.items())
    if evaluation is not None:
        data.append(("evaluation (this report)", dict(data_print or {})))
        rows.append(("evaluation (this report)", evaluation.metrics | dict(extras or {})))
        names = list(evaluation.metrics)
    else:
        names = list(dict.fromkeys(k for _, metrics in rows for k in metrics))
    out = [f"# Model card: {info.task}", "", "## Intended use", "", _intended_use(info, ctx), "",
           "## Data", "", "| split | file | records | sha256 |", "|---|---|---|---|"]
    for split, fp in data:
        if "sha256" in fp:
            out.append(f"| {split} | {fp.get('file', '')} | {fp.get('records', '')} | `{fp['sha256'][:16]}…` |")
        else:
            out.append(f"| {split} | held out from {fp.get('held_out_from', '?')} | {fp.get('records', '')} | |")
    out += ["", "## Metrics", ""]
    if names:
        out += ["| split | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        out += [f"| {split} | " + " | ".join(f"{m[k]:.4f}" if k in m else "" for k in names) + " |"
                for split, m in rows]
    else:
        out.append("No metrics are stored in this bundle.")
    if extras:
        out += [""] + [f"- {k}: {v:.4f}" for k, v in extras.items()]
    notes = [f"- `{k}`: {v}" for k, v in ctx.metric_notes.items() if k in names]
    if notes:
        out += ["", "Units:", ""] + notes
    out += ["", "## Thresholds", ""]
    out += _threshold_lines(info.state) or ["None: the predicted label is the most probable."]
    out += ["", "## Limitations", ""] + [f"- {line}" for line in _limitations(info, ctx, evaluation)]
    backbone = info.model.get("backbone", {})
    out += ["", "## Versions", "", f"- Verticals SDK (trained): {info.sdk_version}; (card): {__version__}",
            f"- Pack: {info.pack or 'none (generic task)'} {info.pack_version or ''}".rstrip(),
            f"- Backbone: {backbone.get('source', 'n/a')} ({backbone.get('model_type', 'n/a')}), "
            f"precision {info.model.get('precision', 'n/a')}, {info.model.get('parameters', 'n/a')} parameters",
            "- Libraries: " + ", ".join(f"{k} {v}" for k, v in info.versions.items()),
            f"- Bundle created: {info.created_at}", ""]
    return "\n".join(out)


def write_card(bundle: str | Path, output: str | Path, *, overwrite: bool = False) -> Path:
    """Verify ``bundle`` and write its model card to the file ``output`` (complete or not at all)."""
    if str(output).endswith(("/", os.sep)) or Path(output).is_dir():  # a folder: the card goes in it
        output = Path(output) / "model_card.md"
    output = Path(output)
    check_file_replaceable(output, "card", overwrite)  # before verifying: a refused output costs nothing
    verify(bundle)  # a card describes the bundle that was checked, not whatever bundle.json claims
    info = read_info(bundle, verified=True)
    with atomic_file(output, kind="card", overwrite=overwrite) as handle:
        handle.write(model_card(info))
    return output
