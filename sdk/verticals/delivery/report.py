"""Evaluation reports a client can read: ``verticals report BUNDLE --data PATH --output DIR``.

The report directory holds ``index.html`` (metrics with units, a small-sample warning, the most confused
pairs, per-label table, plots), the PNG plots (confusion matrix, per-label F1, a precision-recall curve for
binary tasks, the fallback threshold trade-off when the bundle has confidence thresholds),
``model_card.md`` (:mod:`verticals.delivery.card`) and ``report.json``. Labels carry the pack's names
(``TaskSpec.label_names``), metrics the task's units (``TaskType.metric_notes``). It is
written to a temporary directory and renamed into place, so a failed run leaves nothing half-written.
Needs matplotlib (``pip install 'verticals[report]'``).
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from .._version import __version__
from ..bundles.bundle import atomic_directory, check_output
from ..data.records import fingerprint
from ..errors import ConfigError
from ..metrics.significance import wilson_interval
from ..predictor import Predictor
from ..tasks.base import Evaluation
from ..tasks.intervals import evaluation_intervals
from .card import CardContext, context, model_card, small_sample_note, training_summary

LABEL_FIELDS = ("label", "intent")
CONFIDENCE_FIELDS = ("confidence", "score")


class ReportResult(BaseModel):
    path: str
    files: list[str]
    metrics: dict[str, float]
    n: int


@dataclass
class _Outcomes:
    """Gold vs predicted labels at the level the task decides (record, or token for tagging)."""

    level: str
    y_true: list[str]
    y_pred: list[str]
    labels: list[str]
    positive_scores: np.ndarray | None = None
    confidence: np.ndarray | None = None


def _first(obj: Any, names: Sequence[str]) -> Any:
    for name in names:
        value = getattr(obj, name, None)
        if value is not None:
            return value
    return None


def find_thresholds(state: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric values under keys naming a threshold, anywhere in the bundle state ('a.b' paths)."""
    found: dict[str, float] = {}
    for key, value in state.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            found.update(find_thresholds(value, f"{path}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and "threshold" in path.lower():
            found[path] = float(value)
    return found


def _outcomes(predictor: Predictor, records: Sequence[BaseModel], predictions: Sequence[BaseModel]) -> _Outcomes | None:
    labels = [str(label) for label in predictor.info.labels]
    if records and isinstance(getattr(records[0], "tags", None), list) and hasattr(predictions[0], "tags"):
        y_true = [t for r in records for t in r.tags]  # type: ignore[attr-defined]
        y_pred = [t for p in predictions for t in p.tags]  # type: ignore[attr-defined]
        return _Outcomes("token", y_true, y_pred, labels)
    if not records or _first(predictions[0], LABEL_FIELDS) is None:
        return None
    y_true = [str(_first(r, LABEL_FIELDS)) for r in records]
    y_pred = [str(_first(p, LABEL_FIELDS)) for p in predictions]
    extra = sorted((set(y_true) | set(y_pred)) - set(labels))  # e.g. an out-of-scope label
    outcomes = _Outcomes("record", y_true, y_pred, labels + extra)
    conf = [_first(p, CONFIDENCE_FIELDS) for p in predictions]
    if all(isinstance(c, (int, float)) for c in conf):
        outcomes.confidence = np.asarray(conf, dtype=float)
    if len(labels) == 2:
        outcomes.positive_scores = _positive_scores(predictor, predictions, y_pred)
    return outcomes


def positive_label(predictor: Predictor) -> str:
    """The label a binary PR curve is drawn for: the state's ``positive_label``, else the last label."""
    return str(predictor.info.state.get("positive_label", predictor.info.labels[-1]))


def _positive_scores(predictor: Predictor, predictions: Sequence[BaseModel], y_pred: list[str]) -> np.ndarray | None:
    positive = positive_label(predictor)
    if all(isinstance(getattr(p, "scores", None), dict) for p in predictions):
        return np.asarray([p.scores.get(positive, 0.0) for p in predictions], dtype=float)  # type: ignore[attr-defined]
    scores = [getattr(p, "score", None) for p in predictions]
    if not all(isinstance(s, (int, float)) for s in scores):
        return None
    if isinstance(predictor.info.state.get("threshold"), (int, float)):
        return np.asarray(scores, dtype=float)  # thresholded tasks report P(positive) itself
    # Otherwise score is the probability of the predicted label; with two labels P(pos) follows.
    return np.asarray([s if y == positive else 1.0 - s for s, y in zip(scores, y_pred)], dtype=float)


def _fallback_thresholds(predictor: Predictor) -> dict[str, float]:
    """Classifier-confidence thresholds in [0, 1] in the bundle state (e.g. ``thresholds.confidence`` of a
    customer-service fallback); retrieval-similarity thresholds and calibration targets are left out."""
    return {name: value for name, value in find_thresholds(predictor.info.state).items()
            if 0.0 <= value <= 1.0 and _is_confidence_threshold(name.lower())}


def _is_confidence_threshold(path: str) -> bool:
    last = path.rsplit(".", 1)[-1]
    return "confidence" in last or ("fallback" in last and "threshold" in last)


def _out_of_scope_label(predictor: Predictor) -> str:
    for section in (predictor.info.state, predictor.info.config.get("task", {})):
        for key, value in section.items():
            if ("out_of_scope" in key or "oos" in key) and isinstance(value, str):
                return value
    return "out_of_scope"


def confused_pairs(y_true: Sequence[str], y_pred: Sequence[str], limit: int = 15) -> list[tuple[str, str, int, float]]:
    """The most frequent (true, predicted, count, share of the true label's records) mistakes, most first:
    what a many-label confusion matrix shows only as colour."""
    from collections import Counter

    support = Counter(y_true)
    mistakes = Counter((t, p) for t, p in zip(y_true, y_pred) if t != p)
    ranked = sorted(mistakes.items(), key=lambda kv: (-kv[1], -kv[1] / support[kv[0][0]], kv[0]))
    return [(t, p, n, n / support[t]) for (t, p), n in ranked[:limit]]


def write_report(bundle: str | Path | Predictor, data: str | Path, output: str | Path, *,
                 overwrite: bool = False, overrides: Sequence[str] | None = None) -> ReportResult:
    """Evaluate ``bundle`` (a bundle directory or a loaded predictor) on the labelled ``data`` and write the
    report directory ``output``; ``overrides`` are ``data.*`` options, e.g. ``["data.text_column=utterance"]``."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ConfigError("reports need matplotlib: pip install 'verticals[report]'") from None
    from . import report_plots as plots
    check_output(output, overwrite, kind="report")  # before any work: refuse what is not ours
    from ..api import load

    predictor = bundle if isinstance(bundle, Predictor) else load(bundle)
    predictor = predictor.with_overrides(overrides) if overrides else predictor
    bundle = predictor.path or bundle
    task = predictor.task
    records = task.read(data)
    task.check_split(records, "evaluation", data)
    predictions = task.predict(records)
    evaluation = task.score(records, predictions)
    intervals = evaluation_intervals(task, records, predictions, evaluation) or {}
    # the digest `inspect --expect` checks: the report and its card are about that bundle (none in memory only)
    bundle_digest = predictor.digest
    ctx = context(predictor.info, task)
    outcomes = _outcomes(predictor, records, predictions)
    if outcomes is not None:  # the pack's names for labels (e.g. 1 -> fraud) from here on
        outcomes.y_true, outcomes.y_pred = list(map(ctx.name, outcomes.y_true)), list(map(ctx.name, outcomes.y_pred))
        outcomes.labels = list(map(ctx.name, outcomes.labels))
    per_label = {ctx.name(k): v for k, v in evaluation.per_label.items()}
    figures: list[tuple[str, str, str]] = []  # (file, title, caption)
    extras: dict[str, Any] = {}

    with atomic_directory(output, overwrite, kind="report") as tmp:
        if outcomes is not None:
            level = "tag" if outcomes.level == "token" else "label"
            plots.confusion_matrix_png(tmp / "confusion_matrix.png", outcomes.y_true, outcomes.y_pred,
                                       outcomes.labels, f"Confusion matrix ({level} level, n={len(outcomes.y_true)})")
            unlabelled = "" if len(outcomes.labels) <= plots.LABELLED_MAX else (
                f" {len(outcomes.labels)} {level}s are too many to name on the axes: the most confused pairs "
                f"table names the off-diagonal cells.")
            figures.append(("confusion_matrix.png", "Confusion matrix",
                            f"Rows are true {level}s, columns predicted; colour is the share of the row.{unlabelled}"))
        if per_label:
            kind = "entity type" if outcomes is not None and outcomes.level == "token" else "label"
            plots.per_label_f1_png(tmp / "per_label_f1.png", per_label, f"F1 per {kind}")
            shown = "" if len(per_label) <= plots.MAX_BARS else f" (the {plots.MAX_BARS} worst; the table has all)"
            figures.append(("per_label_f1.png", f"F1 per {kind}",
                            f"Worst at the top{shown}; n is the support in this data."))
        if outcomes is not None and outcomes.positive_scores is not None:
            positive = ctx.name(positive_label(predictor))
            y = np.asarray([t == positive for t in outcomes.y_true], dtype=int)
            if 0 < y.sum() < len(y):
                threshold = predictor.info.state.get("threshold")
                ap = plots.pr_curve_png(tmp / "pr_curve.png", y, outcomes.positive_scores, positive,
                                        float(threshold) if isinstance(threshold, (int, float)) else None)
                if not {"auprc", "average_precision"} & set(evaluation.metrics):  # one name for one number
                    extras["average_precision"] = ap
                figures.append(("pr_curve.png", "Precision-recall curve",
                                f"Binary task; positive label '{positive}'."))
        fallback = _fallback_thresholds(predictor)
        if outcomes is not None and outcomes.confidence is not None and fallback and outcomes.level == "record":
            oos_label = ctx.name(_out_of_scope_label(predictor))
            oos = np.asarray([t == oos_label for t in outcomes.y_true])
            # The classifier's own top label (before any fallback) is what the threshold gates.
            top = [ctx.name(max(p.scores, key=p.scores.get)) if getattr(p, "scores", None) else y  # type: ignore[attr-defined]
                   for p, y in zip(predictions, outcomes.y_pred)]
            correct = np.asarray([t == p for t, p in zip(outcomes.y_true, top)])
            plots.threshold_tradeoff_png(tmp / "threshold_tradeoff.png", outcomes.confidence, correct,
                                         oos if oos.any() else None, fallback)
            figures.append(("threshold_tradeoff.png", "Fallback threshold trade-off",
                            "Dashed lines: the thresholds stored in the bundle."))
        if plots.learning_curve(tmp / "learning_curve.png", predictor.info.history, task.primary_metric):
            figures.append(("learning_curve.png", "Learning curve", "Per training epoch, from bundle.json's history."))
        tuned = (predictor.info.model_extra or {}).get("tune")
        if tuned:  # a bundle `verticals tune` wrote: how the search got to its parameters
            from ..workshop.tune_history import optimisation_history_png

            if optimisation_history_png(tmp / "tune_history.png", tuned):
                figures.append(("tune_history.png", "Optimisation history",
                                f"verticals tune, study '{tuned.get('study')}': {tuned.get('metric')} per trial "
                                f"(pruned trials at their last epoch), best so far; trial {tuned.get('best_trial')} "
                                f"was chosen."))
        data_print = fingerprint(data, len(records))
        card = model_card(predictor.info, evaluation, data_print, extras, ctx, bundle_digest=bundle_digest,
                          intervals=intervals)
        (tmp / "model_card.md").write_text(card, encoding="utf-8")
        from ..tasks.explain import explained_errors_html

        explained = explained_errors_html(task, predictor.engine, records, predictions, ctx.name)
        page = _html(predictor, evaluation, per_label, outcomes, ctx, data_print, figures, extras, bundle, explained,
                     bundle_digest, intervals)
        (tmp / "index.html").write_text(page, encoding="utf-8")
        summary = {"bundle": str(bundle), "bundle_digest": bundle_digest, "data": data_print,
                   "training": training_summary(predictor.info), "evaluation": evaluation.model_dump(),
                   "intervals": intervals, "extra_metrics": extras, "figures": [f for f, _, _ in figures],
                   "sdk_version": __version__}
        (tmp / "report.json").write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
        files = sorted(p.name for p in tmp.iterdir())
    return ReportResult(path=str(output), files=files, metrics=evaluation.metrics | extras, n=evaluation.n)


def _accuracy_interval(outcomes: _Outcomes | None) -> tuple[int, int, float, float] | None:
    """Records labelled right, records, and the 95% Wilson interval of that share (record-level tasks only:
    tokens of one sentence are not independent draws)."""
    if outcomes is None or outcomes.level != "record" or not outcomes.y_true:
        return None
    right = sum(t == p for t, p in zip(outcomes.y_true, outcomes.y_pred))
    return (right, len(outcomes.y_true), *wilson_interval(right, len(outcomes.y_true)))


def _html(predictor: Predictor, evaluation: Evaluation, per_label: dict[str, dict[str, float]],
          outcomes: _Outcomes | None, ctx: CardContext, data_print: dict[str, Any],
          figures: list[tuple[str, str, str]], extras: dict[str, Any], bundle: str | Path,
          explained: str = "", bundle_digest: str | None = None, intervals: dict[str, Any] | None = None) -> str:
    e = html.escape
    info = predictor.info
    interval = _accuracy_interval(outcomes)
    notes = dict(ctx.metric_notes)
    found = (intervals or {}).get("metrics", {})

    def span(entry: dict[str, Any] | None) -> str:
        return f"{entry['low']:.3f}–{entry['high']:.3f} ({entry['method']})" if entry else ""

    metric_rows = "".join(f"<tr><td>{e(k)}</td><td>{v:.4f}</td><td>{e(span(found.get(k)))}</td>"
                          f"<td class='note'>{e(notes.get(k, ''))}</td></tr>"
                          for k, v in (evaluation.metrics | extras).items())
    f1_found = {ctx.name(k): v for k, v in (intervals or {}).get("per_label_f1", {}).items()}
    label_rows = "".join(
        f"<tr><td>{e(k)}</td>" + "".join(f"<td>{v.get(m, 0):.3f}</td>" for m in ("precision", "recall", "f1"))
        + f"<td>{e(span(f1_found.get(k)))}</td><td>{int(v.get('support', 0))}</td></tr>"
        for k, v in sorted(per_label.items(), key=lambda kv: kv[1].get("f1", 0.0)))
    training = "".join(f"<tr><td>{e(k)}</td><td class='t'><code>{e(str(v))}</code></td></tr>"
                       for k, v in training_summary(info).items() if v is not None)
    warning = ""
    note = small_sample_note(evaluation.n)
    if note:
        if interval:
            right, n, low, high = interval
            note += (f" Here {right} of {n} records are labelled right ({right / n:.3f}); "
                     f"95% interval {low:.3f}–{high:.3f} (Wilson).")
        warning = f'<p class="warning"><strong>Small sample.</strong> {e(note)}</p>'
    named = ", ".join(f"{label} = {ctx.name(label)}" for label in info.labels if ctx.name(label) != label)
    pairs = confused_pairs(outcomes.y_true, outcomes.y_pred) if outcomes is not None else []
    pair_rows = "".join(f"<tr><td>{e(t)}</td><td class='t'>{e(p)}</td><td>{n}</td><td>{share:.0%}</td></tr>"
                        for t, p, n, share in pairs)
    confused = (f"<h2>Most confused pairs</h2><table><tr><th>true</th><th class='t'>predicted</th><th>count</th>"
                f"<th>share of true</th></tr>{pair_rows}</table>" if pairs else "")
    pack = f"{info.pack} {info.pack_version or ''}".strip() if info.pack else "none"
    images = "".join(f"<figure><h3>{e(title)}</h3><img src=\"{e(name)}\" alt=\"{e(title)}\">"
                     f"<figcaption>{e(caption)}</figcaption></figure>" for name, title, caption in figures)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Evaluation report: {e(info.task)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}
td:first-child,th:first-child,.t,.note{{text-align:left}}td.note{{color:#555}}summary{{cursor:pointer}}
img{{max-width:100%}}figure{{margin:2em 0}}.meta{{color:#555}}
.warning{{background:#fff4e5;border-left:4px solid #e67e00;padding:.6em 1em}}</style></head><body>
<h1>Evaluation report: {e(info.task)}</h1>
<p class="meta">Bundle <code>{e(str(bundle))}</code> ({e(info.task_type)}, pack {e(pack)},
created {e(info.created_at)}); data <code>{e(str(data_print['file']))}</code>,
{evaluation.n} records, sha256 <code>{e(data_print['sha256'])}</code>.{f' Labels: {e(named)}.' if named else ''}
See also <a href="model_card.md">model_card.md</a>.</p>
<p class="meta">Bundle digest <code>{e(bundle_digest or 'none: the predictor was not loaded from a bundle')}</code>
(check a copy with <code>verticals inspect BUNDLE --expect DIGEST</code>).</p>
{warning}
<h2>Metrics</h2><table><tr><th>metric</th><th>value</th><th>95% interval</th><th class="note">unit / note</th></tr>
{metric_rows}</table>
<p class="meta">Intervals: Wilson for accuracy; percentile bootstrap ({(intervals or {}).get('resamples', 0)} resamples,
seed {(intervals or {}).get('seed', '')}) over records (sentences for tagging) otherwise.</p>
{confused}
<h2>Per label (worst first)</h2>
<details{' open' if len(per_label) <= 30 else ''}><summary>{len(per_label)} labels</summary>
<table><tr><th>label</th><th>precision</th><th>recall</th><th>F1</th><th>F1 95% interval</th><th>support</th></tr>
{label_rows}</table></details>
{explained}
<h2>Training</h2><table>{training}</table>
<h2>Plots</h2>{images or '<p>No plots apply to this task type.</p>'}
<p class="meta">Generated by Verticals {e(__version__)}.</p></body></html>
"""
