"""The PNG plots of ``verticals report`` (matplotlib's Agg canvas; pyplot's global state is never touched)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

Draw = TypeVar("Draw", bound=Callable[..., Any])


def literal_text(draw: Draw) -> Draw:
    """Draw every text as written: labels and titles are data, and matplotlib would read the span between two
    ``$`` as a maths formula ('$x^$' fails to parse; 'from $5 to $10' turns into maths)."""
    @functools.wraps(draw)
    def drawing(*args: Any, **kwargs: Any) -> Any:
        import matplotlib

        with matplotlib.rc_context({"text.parse_math": False}):
            return draw(*args, **kwargs)

    return drawing  # type: ignore[return-value]


def _figure(width: float, height: float):  # type: ignore[no-untyped-def]
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


LABELLED_MAX = 30
"""Above this many labels the confusion matrix is drawn without tick labels (they would overlap) and the
report lists the most confused pairs as a table instead."""
MAX_BARS = 30
"""The per-label F1 chart shows at most this many labels (the worst); the HTML table has every label."""


@literal_text
def confusion_matrix_png(path: Path, y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str],
                         title: str) -> None:
    """Row-normalised confusion matrix (colour = share of the true label). Up to ``LABELLED_MAX`` labels
    the axes are labelled (counts annotated up to 25); above it an unlabelled heatmap of bounded size shows
    where the errors concentrate, and the report's table names the pairs."""
    from sklearn.metrics import confusion_matrix

    labels = list(labels)
    counts = confusion_matrix(y_true, y_pred, labels=labels)
    totals = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, totals, out=np.zeros(counts.shape, dtype=float), where=totals > 0)
    labelled = len(labels) <= LABELLED_MAX
    size = min(9.0, 3.0 + 0.3 * len(labels)) if labelled else 8.0  # at most ~1,000 px a side
    figure = _figure(size + 1.2, size)
    ax = figure.subplots()
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    figure.colorbar(image, ax=ax, shrink=0.8, label="share of true label")
    if labelled:
        ax.set_xticks(range(len(labels)), labels=labels, rotation=45 if len(labels) > 3 else 0, ha="right")
        ax.set_yticks(range(len(labels)), labels=labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
    else:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(f"predicted ({len(labels)} labels in bundle order; the report names the most confused pairs)")
        ax.set_ylabel("true")
    ax.set_title(title)
    if len(labels) <= 25:
        for i in range(len(labels)):
            for j in range(len(labels)):
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if share[i, j] > 0.5 else "black")
    figure.savefig(path)


@literal_text
def per_label_f1_png(path: Path, per_label: dict[str, dict[str, float]], title: str) -> None:
    """Horizontal bars of F1 per label, worst at the top, support in the tick labels; with more than
    ``MAX_BARS`` labels only the worst ``MAX_BARS`` (the title says so)."""
    items = sorted(per_label.items(), key=lambda kv: kv[1].get("f1", 0.0))
    if len(items) > MAX_BARS:
        title = f"{title}: the {MAX_BARS} worst of {len(items)}"
        items = items[:MAX_BARS]
    names = [f"{k} (n={int(v.get('support', 0))})" for k, v in items]
    values = [v.get("f1", 0.0) for _, v in items]
    figure = _figure(7.0, max(2.5, 0.3 * len(items) + 1.2))
    ax = figure.subplots()
    bars = ax.barh(range(len(items)), values, color="#3b75af")
    ax.set_yticks(range(len(items)), labels=names)
    ax.invert_yaxis()  # barh puts the first bar at the bottom; the worst belongs at the top
    ax.set_xlim(0, 1.08)
    ax.set_xlabel("F1")
    ax.set_title(title)
    ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], padding=2, fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    figure.savefig(path)


@literal_text
def pr_curve_png(path: Path, y_true: Sequence[int], scores: Sequence[float], positive: str,
                 threshold: float | None) -> float:
    """Precision-recall curve of the positive label; marks the bundle's decision threshold if any.
    Returns the average precision."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    precision, recall, _ = precision_recall_curve(y_true, scores)
    ap = float(average_precision_score(y_true, scores))
    figure = _figure(6.0, 4.8)
    ax = figure.subplots()
    ax.step(recall, precision, where="post", color="#3b75af", label=f"AP = {ap:.3f}")
    base = float(np.mean(y_true))
    ax.axhline(base, color="grey", linestyle=":", label=f"chance (prevalence {base:.2f})")
    at = threshold if threshold is not None else 0.5
    flagged = np.asarray(scores) >= at
    hits = int((flagged & (np.asarray(y_true) == 1)).sum())
    p_at = hits / flagged.sum() if flagged.any() else float("nan")
    r_at = hits / max(1, int(np.sum(y_true)))
    name = "bundle threshold" if threshold is not None else "decision at 0.5"
    ax.plot(r_at, p_at if flagged.any() else 0.0, "o", color="#d62728",
            label=f"{name} {at:.2f}: P={p_at:.2f} R={r_at:.2f}")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel(f"recall of '{positive}'")
    ax.set_ylabel(f"precision of '{positive}'")
    ax.set_title(f"Precision-recall, positive label '{positive}'")
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(alpha=0.3)
    figure.savefig(path)
    return ap


@literal_text
def threshold_tradeoff_png(path: Path, confidence: np.ndarray, correct: np.ndarray, out_of_scope: np.ndarray | None,
                           thresholds: dict[str, float]) -> None:
    """What a confidence threshold below which the model falls back costs and buys: fallback rate,
    accuracy of the answered in-scope queries, and (with out-of-scope data) out-of-scope recall."""
    cuts = np.linspace(0.0, 1.0, 201)
    in_scope = ~out_of_scope if out_of_scope is not None else np.ones_like(correct, dtype=bool)
    fallback = np.array([(confidence < t).mean() for t in cuts])
    answered_acc = []
    for t in cuts:
        answered = (confidence >= t) & in_scope
        answered_acc.append(correct[answered].mean() if answered.any() else np.nan)
    figure = _figure(7.0, 4.8)
    ax = figure.subplots()
    ax.plot(cuts, fallback, color="#ff7f0e", label="fallback rate (all queries)")
    ax.plot(cuts, answered_acc, color="#3b75af", label="accuracy of answered in-scope queries")
    if out_of_scope is not None and out_of_scope.any():
        oos_recall = np.array([(confidence[out_of_scope] < t).mean() for t in cuts])
        ax.plot(cuts, oos_recall, color="#2ca02c", label="out-of-scope recall")
    for name, value in thresholds.items():
        ax.axvline(value, color="#d62728", linestyle="--", linewidth=1)
        ax.annotate(f"{name} = {value:.2f}", (value, 0.02), rotation=90, fontsize=8, color="#d62728",
                    xytext=(3, 0), textcoords="offset points")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("confidence threshold (below it the model falls back)")
    ax.set_ylabel("rate")
    ax.set_title("Fallback threshold trade-off")
    ax.legend(loc="center left", fontsize=8)
    ax.grid(alpha=0.3)
    figure.savefig(path)


@literal_text
def learning_curve(path: Path, history: Sequence[dict], primary_metric: str | None) -> bool:
    """Two panels over the same epochs: train (and validation) loss on top, the validation metrics below (their
    scales differ, and one shared panel with two y axes hides which line reads on which), the best epoch
    marked on both; each panel's legend sits to its right, off the lines. One line style per ensemble
    member/run. Returns False (and draws nothing) without history."""
    if not history:
        return False
    figure = _figure(8.0, 6.4)
    loss_ax, metric_ax = figure.subplots(2, 1, sharex=True)
    runs = list(dict.fromkeys(entry.get("run") for entry in history))
    metric_names = list(dict.fromkeys(name for entry in history for name in entry.get("metrics") or {}))
    if primary_metric in metric_names:  # the primary metric first, so it gets the first colour
        metric_names.remove(primary_metric)
        metric_names.insert(0, primary_metric)
    colours = ["#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"]
    for r, run in enumerate(runs):
        entries = [e for e in history if e.get("run") == run]
        epochs = [e["epoch"] for e in entries]
        style = ["-", "--", ":", "-."][r % 4]
        suffix = f" ({run})" if run else ""
        for key, colour, name in (("train_loss", "#3b75af", "train loss"), ("validation_loss", "#ff7f0e", "val loss")):
            values = [e.get(key) for e in entries]
            if any(v is not None for v in values):
                loss_ax.plot(epochs, [np.nan if v is None else v for v in values], style, marker="o", markersize=3,
                             color=colour, label=name + suffix)
        for name, colour in zip(metric_names[:len(colours)], colours):
            values = [(e.get("metrics") or {}).get(name) for e in entries]
            if any(v is not None for v in values):
                metric_ax.plot(epochs, [np.nan if v is None else v for v in values], style, marker="s", markersize=3,
                               color=colour, label=name + suffix)
        best = [e for e in entries if e.get("best")]
        if best:
            for ax in (loss_ax, metric_ax):
                ax.axvline(best[0]["epoch"], color="#d62728", linestyle=":", linewidth=1,
                           label=f"best epoch {best[0]['epoch']}{suffix}" if ax is metric_ax else None)
    from matplotlib.ticker import MaxNLocator

    metric_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    metric_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("loss")
    metric_ax.set_ylabel(f"{history[0].get('metrics_on') or 'validation'} metrics")
    for ax in (loss_ax, metric_ax):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
        ax.grid(alpha=0.3)
    loss_ax.set_title("Learning curve (dotted red line: best epoch, the weights kept)")
    figure.savefig(path)
    return True
