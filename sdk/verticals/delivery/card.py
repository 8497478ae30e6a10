"""Model cards: ``verticals card BUNDLE --output FILE`` (from the bundle alone) and the card that
``verticals report`` writes beside its evaluation.

The card holds what a model-risk review (SR 11-7 style) asks for, each item tied to the exact bundle: the
bundle digest (the one ``verticals inspect --expect`` checks), intended use, data (full sha256 of every file),
the training options that matter (backbone and its digest, strategy, learning rate, epochs run and the best
epoch, batch size, seed), metrics with 95% intervals (Wilson for accuracy, bootstrap for macro scores and
per-label F1: ``bundle.json``'s ``intervals``, or the report's own for its data), thresholds, limitations and
versions. Built from ``bundle.json`` and ``manifest.json`` only, so it needs neither labelled data nor the
model's weights; with the bundle's pack installed it also shows the pack's label names and metric units.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._version import __version__
from ..bundles.bundle import BundleInfo, atomic_file, digest, pinned_manifest, read_info, verify
from ..bundles.outputs import check_file_replaceable
from ..tasks.base import Evaluation

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
    from ..plugins.manager import get_catalog

    ctx = CardContext(pack=info.pack)
    try:
        catalog = get_catalog()
        spec, ctx.pack = catalog.task(info.task)
        ctx.description, ctx.label_names = spec.description, dict(spec.label_names)
        if task is None:
            from ..api import _lenient_config

            task = catalog.task_types.get(info.task_type)(_lenient_config(info.config, Path(".")),
                                                          task_name=info.task)
    except Exception:  # noqa: BLE001 - the card is still useful without the pack (names stay as stored)
        pass
    if task is not None:
        ctx.description = ctx.description or task.description
        ctx.metric_notes = dict(task.metric_notes())
    return ctx


def small_sample_note(n: int, what: str = "records") -> str | None:
    if n >= SMALL_SAMPLE:
        return None
    return (f"Only {n} {what}: with fewer than {SMALL_SAMPLE}, one record more or less right moves a score by "
            f"{100 / max(n, 1):.1f} points; treat these scores as rough and evaluate on more data before relying "
            f"on them.")


def _md(text: object) -> str:
    """Text from a bundle or a data file (labels, task and file names) in Markdown prose or a table cell: shown
    as written, never as markup (raw HTML, which many Markdown viewers render; a table column; a link)."""
    flat = html.escape(" ".join(str(text).split()), quote=False)
    return "".join("\\" + c if c in "|`*[]" else c for c in flat)


def _code(text: object) -> str:
    """``text`` as a Markdown code span (HTML inside one is shown, not rendered); a backtick cannot end it."""
    return "`" + " ".join(str(text).split()).replace("`", "'") + "`"


def _threshold_lines(state: dict[str, Any], prefix: str = "") -> list[str]:
    """Everything under state keys naming thresholds (values, objectives, targets) for the model card."""
    lines = []
    for key, value in state.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            lines += _threshold_lines(value, f"{path}.")
        elif "threshold" in path.lower():
            shown = f"{value:.4f}" if isinstance(value, float) else json.dumps(value, default=str)
            lines.append(f"- {_code(path)} = {_md(shown)}")
    return lines


def _intended_use(info: BundleInfo, ctx: CardContext) -> str:
    where = f"the '{ctx.pack}' pack" if ctx.pack else "the generic task type"
    labels = ", ".join(f"{_md(label)} = {_md(ctx.name(label))}" for label in info.labels if ctx.name(label) != label)
    return (f"{ctx.description} Task {_code(info.task)} ({where}); predicts one of {len(info.labels)} "
            f"labels for inputs like those it was trained on." + (f" Labels: {labels}." if labels else ""))


def _limitations(info: BundleInfo, ctx: CardContext, evaluation: Evaluation | None) -> list[str]:
    train = info.data.get("train", {})
    names = [_md(ctx.name(label)) for label in info.labels]
    lines = [f"Training file: {train.get('records', 'an unknown number of')} records; it can only predict the "
             f"labels seen in training ({', '.join(names[:15])}{' ...' if len(names) > 15 else ''})."]
    max_length = info.config.get("training", {}).get("max_length")
    if max_length:
        lines.append(f"Inputs longer than {max_length} tokens are truncated before prediction.")
    if evaluation is not None:
        weak = [f"{_md(ctx.name(k))} (F1 {v['f1']:.2f})" for k, v in evaluation.per_label.items()
                if v.get("f1", 1.0) < 0.5]
        if weak:
            lines.append(f"Weak on this data (F1 < 0.5): {', '.join(weak[:10])}.")
        rare = [_md(ctx.name(k)) for k, v in evaluation.per_label.items() if 0 < v.get("support", 0) < 10]
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


def training_summary(info: BundleInfo) -> dict[str, Any]:
    """The options that decide what a training produced and what the run did (``report.json``'s
    ``training``; the card's Training section). None where a bundle does not record it."""
    training = info.config.get("training", {})
    backbone = info.model.get("backbone", {})
    epochs = sorted(e["epoch"] for e in info.history if isinstance(e.get("epoch"), (int, float)))
    return {"backbone": backbone.get("source", training.get("backbone")), "backbone_type": backbone.get("model_type"),
            "backbone_digest": backbone.get("digest"), "strategy": training.get("strategy"),
            "learning_rate": training.get("learning_rate"), "head_learning_rate": training.get("head_learning_rate"),
            "batch_size": training.get("batch_size"), "seed": training.get("seed"),
            "epochs_configured": training.get("epochs"), "epochs_run": epochs[-1] if epochs else None,
            "best_epoch": next((e["epoch"] for e in info.history if e.get("best")), None),
            "early_stopping_patience": training.get("early_stopping_patience"),
            "max_length": training.get("max_length"), "warmup_ratio": training.get("warmup_ratio"),
            "weight_decay": training.get("weight_decay"), "scheduler": training.get("scheduler"),
            **({"lora_r": training.get("lora_r"), "lora_alpha": training.get("lora_alpha")}
               if training.get("strategy") == "lora" else {})}


def _training_lines(info: BundleInfo) -> list[str]:
    t = {k: ("n/a" if v is None else v) for k, v in training_summary(info).items()}
    digest_shown = t["backbone_digest"] if t["backbone_digest"] != "n/a" else \
        "not recorded (bundle written before Verticals kept it)"
    strategy = f"{t['strategy']} (r={t['lora_r']}, alpha={t['lora_alpha']})" if "lora_r" in t else t["strategy"]
    head = f" (head {t['head_learning_rate']})" if t["head_learning_rate"] != "n/a" else ""
    best = f", best epoch {t['best_epoch']:g} (its weights are the bundle's)" if t["best_epoch"] != "n/a" else ""
    configured = f"{t['epochs_configured']:g}" if isinstance(t["epochs_configured"], (int, float)) else "n/a"
    ran = f"{t['epochs_run']:g}" if isinstance(t["epochs_run"], (int, float)) else "not recorded"
    return [f"- Backbone: `{t['backbone']}` ({t['backbone_type']}); digest `{digest_shown}`",
            f"- Strategy: {strategy}; learning rate {t['learning_rate']}{head}; batch size {t['batch_size']}; "
            f"seed {t['seed']}",
            f"- Epochs: {configured} configured, {ran} run{best}; early-stopping patience "
            f"{t['early_stopping_patience']}",
            f"- Max length {t['max_length']} tokens; warmup ratio {t['warmup_ratio']}; weight decay "
            f"{t['weight_decay']}; scheduler {t['scheduler']}"]


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else ""


def _metric_table(rows: list[tuple[str, Mapping[str, float], Mapping[str, Any] | None]]) -> list[str]:
    """One row per (split, metric): the value and its 95% interval, or why there is none."""
    out = ["| split | metric | value | 95% interval | method |", "|---|---|---|---|---|"]
    for split, metrics, found in rows:
        intervals = (found or {}).get("metrics", {})
        for name, value in metrics.items():
            interval = intervals.get(name)
            if interval:
                span = f"{_fmt(interval['low'])} – {_fmt(interval['high'])}"
                how = interval["method"] + (f", n={found['n']}" if found and "n" in found else "")
            else:
                span, how = "", ("not stored (older bundle)" if found is None else "none for this metric")
            out.append(f"| {split} | {name} | {_fmt(value)} | {span} | {how} |")
    return out


def _per_label_table(split: str, found: Mapping[str, Any] | None, ctx: CardContext) -> list[str]:
    if not found or not found.get("per_label_f1"):
        return []
    per_label = found["per_label_f1"]
    out = ["", f"Per-label F1 on {split} (worst first; 95% bootstrap intervals, {found.get('resamples')} "
           f"resamples, seed {found.get('seed')}):", "",
           "| label | F1 | 95% interval | support |", "|---|---|---|---|"]
    for label, entry in sorted(per_label.items(), key=lambda kv: kv[1].get("value", 0.0)):
        out.append(f"| {_md(ctx.name(label))} | {_fmt(entry.get('value'))} | {_fmt(entry['low'])} – "
                   f"{_fmt(entry['high'])} | {entry.get('support', '')} |")
    return out


def model_card(info: BundleInfo, evaluation: Evaluation | None = None, data_print: Mapping[str, Any] | None = None,
               extras: Mapping[str, Any] | None = None, ctx: CardContext | None = None, *,
               bundle_digest: str | None = None, intervals: Mapping[str, Any] | None = None) -> str:
    """The Markdown model card. Without ``evaluation`` it holds the metrics stored in the bundle only;
    ``intervals`` are the evaluation's (:func:`verticals.tasks.intervals.evaluation_intervals`);
    ``bundle_digest`` is :func:`verticals.bundles.bundle.digest` of the bundle described."""
    ctx = ctx or context(info)
    data = list(info.data.items())
    stored = info.intervals if "intervals" in info.model_fields_set else None  # None: written before they were kept
    rows: list[tuple[str, Mapping[str, float], Mapping[str, Any] | None]] = [
        (split, metrics, (stored or {}).get(split, {} if stored else None)) for split, metrics in info.metrics.items()]
    if evaluation is not None:
        data.append(("evaluation (this report)", dict(data_print or {})))
        rows.append(("evaluation (this report)", evaluation.metrics | dict(extras or {}), intervals or {}))
    names = list(dict.fromkeys(k for _, metrics, _ in rows for k in metrics))
    out = [f"# Model card: {_md(info.task)}", ""]
    if bundle_digest:
        out += [f"Bundle digest (sha256 of manifest.json): `{bundle_digest}`. Check a received copy with "
                f"`verticals inspect BUNDLE --expect {bundle_digest}`: every statement below is about that bundle.", ""]
    out += ["## Intended use", "", _intended_use(info, ctx), "",
            "## Data", "", "| split | file | records | sha256 |", "|---|---|---|---|"]
    for split, fp in data:
        if "sha256" in fp:
            out.append(f"| {split} | {_md(fp.get('file', ''))} | {fp.get('records', '')} | `{fp['sha256']}` |")
        else:
            out.append(f"| {split} | held out from {_md(fp.get('held_out_from', '?'))} | {fp.get('records', '')} | |")
    out += ["", "## Training", ""] + _training_lines(info)
    out += ["", "## Metrics", ""]
    if names:
        out += _metric_table(rows)
        for split, _, found in rows:
            out += _per_label_table(split, found, ctx)
    else:
        out.append("No metrics are stored in this bundle.")
    notes = [f"- `{k}`: {v}" for k, v in ctx.metric_notes.items() if k in names]
    if notes:
        out += ["", "Units:", ""] + notes
    out += ["", "Intervals: 95%; Wilson score interval for accuracy (records are independent draws), percentile "
            "bootstrap over records (sentences for tagging) for the other scores; a wide interval means the data "
            "cannot tell the model's score more precisely."]
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


def bundle_card(bundle: str | Path) -> str:
    """Verify ``bundle`` and return its model card (the digest is the one ``inspect --expect`` checks)."""
    with pinned_manifest(bundle):  # a card describes the bundle that was checked, not whatever bundle.json claims
        verify(bundle)
        return model_card(read_info(bundle, verified=True), bundle_digest=digest(bundle))


def write_card(bundle: str | Path, output: str | Path, *, overwrite: bool = False) -> Path:
    """Verify ``bundle`` and write its model card to the file ``output`` (complete or not at all)."""
    if str(output).endswith(("/", os.sep)) or Path(output).is_dir():  # a folder: the card goes in it
        output = Path(output) / "model_card.md"
    output = Path(output)
    check_file_replaceable(output, "card", overwrite)  # before verifying: a refused output costs nothing
    card = bundle_card(bundle)
    with atomic_file(output, kind="card", overwrite=overwrite) as handle:
        handle.write(card)
    return output
