"""The optimisation history of a tuned bundle (``bundle.json``'s ``tune`` record) as a figure for ``report``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..delivery.report_plots import _figure, literal_text


def trial_points(record: dict[str, Any]) -> list[tuple[int, float, str]]:
    """(trial number, value, state) of every trial with a value: complete trials at their value, pruned ones
    at their last reported epoch (where the pruner stopped them); failed trials have none."""
    points = []
    for trial in record.get("trials") or []:
        value = trial.get("value")
        if value is None and trial.get("state") == "PRUNED" and trial.get("intermediate"):
            last = max(trial["intermediate"], key=int)
            value = trial["intermediate"][last]
        if value is not None:
            points.append((int(trial["number"]), float(value), str(trial.get("state"))))
    return sorted(points)


@literal_text
def optimisation_history_png(path: Path, record: dict[str, Any]) -> bool:
    """Value per trial (pruned trials marked apart) and the best so far, the chosen trial circled. Returns
    False (and draws nothing) when no trial has a value."""
    points = trial_points(record)
    if not points:
        return False
    maximize = record.get("direction", "maximize") == "maximize"
    figure = _figure(7.5, 4.2)
    ax = figure.subplots()
    for state, marker, colour in (("COMPLETE", "o", "#3b75af"), ("PRUNED", "x", "#999999")):
        chosen = [(n, v) for n, v, s in points if s == state]
        if chosen:
            ax.scatter([n for n, _ in chosen], [v for _, v in chosen], marker=marker, color=colour,
                       label=state.lower())
    complete = [(n, v) for n, v, s in points if s == "COMPLETE"]
    best_so_far, best = [], None
    for number, value in complete:
        best = value if best is None or (value > best if maximize else value < best) else best
        best_so_far.append((number, best))
    if best_so_far:
        ax.step([n for n, _ in best_so_far], [b for _, b in best_so_far], where="post", color="#d62728",
                label="best so far")
    if record.get("best_trial") is not None and record.get("best_value") is not None:
        ax.scatter([record["best_trial"]], [record["best_value"]], s=160, facecolors="none", edgecolors="#d62728")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel(str(record.get("metric", "value")))
    ax.legend(fontsize=7, loc="best")
    figure.savefig(path)
    return True
