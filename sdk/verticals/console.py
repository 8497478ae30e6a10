"""The training console: one progress bar per epoch, one log line per epoch, and the per-epoch history.

Every trainer (``transformers.Trainer`` through a callback, the packs' own loops directly) reports through
:class:`TrainingConsole`, so all tasks print the same way and store the same history in ``bundle.json``.

Lines go to the ``verticals`` logger at INFO: the CLI shows them on stderr (``--quiet`` / ``--log-level``);
so does ``verticals.train`` from Python while it runs, unless logging is configured for that logger or
``quiet=True`` (:func:`training_output`). Progress bars (tqdm, on stderr) appear only
where someone can watch them: stderr is a terminal, the ``verticals`` logger shows INFO, and
``TQDM_DISABLE`` is not set.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

logger = logging.getLogger("verticals")


def fmt(value: Any) -> str:
    """A float with 6 significant digits (5e-05 stays 5e-05, never 0.0001 or 0.0); others as str()."""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def duration(seconds: float) -> str:
    """12s, 3m05s, 1h02m."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def progress_enabled() -> bool:
    """Bars only where someone watches: TQDM_DISABLE unset, INFO shown, stderr a terminal."""
    if os.environ.get("TQDM_DISABLE", "").strip().lower() not in ("", "0", "false", "no"):
        return False
    if not logger.isEnabledFor(logging.INFO):
        return False
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


class TrainingConsole:
    """Reports epochs as they end and keeps them as history entries.

    ``total_epochs`` counts every epoch the run may do (an ensemble of 3 heads x 20 epochs = 60), so the
    remaining time is ``elapsed / epochs done * epochs left``: an upper estimate when early stopping may
    end a run sooner. ``metrics_on`` names what the per-epoch metrics are computed on; it is
    'validation' when they are the metrics of the final summary on the same rows, and says how they
    differ otherwise (``note`` explains it once, at the start)."""

    def __init__(self, *, total_epochs: int, primary_metric: str | None = None, greater_is_better: bool = True,
                 metrics_on: str = "validation", note: str | None = None, unit: str = "batch") -> None:
        self.total_epochs = max(1, int(total_epochs))
        self.primary_metric = primary_metric
        self.greater_is_better = greater_is_better
        self.metrics_on = metrics_on
        self.note = note
        self.unit = unit
        self.history: list[dict[str, Any]] = []
        self._started: float | None = None
        self._done = 0
        self._bar: Any = None
        self._best: dict[Any, tuple[float, int]] = {}  # run -> (best value, index in history)

    # ---- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        if self._started is None:
            self._started = time.perf_counter()
            if self.note:
                logger.info("per-epoch metrics: %s", self.note)

    def elapsed(self) -> float:
        return 0.0 if self._started is None else time.perf_counter() - self._started

    def begin_epoch(self, epoch: int, steps: int, *, run: str | None = None, epochs: int | None = None) -> None:
        """Open this epoch's progress bar (when bars are enabled)."""
        self.start()
        self.close_bar()
        if steps > 0 and progress_enabled():
            from tqdm.auto import tqdm

            label = f"{run} " if run else ""
            self._bar = tqdm(total=steps, desc=f"{label}epoch {epoch}/{epochs or self.total_epochs}",
                             unit=self.unit, leave=False, file=sys.stderr, dynamic_ncols=True)

    def step(self, n: int = 1, loss: float | None = None) -> None:
        if self._bar is not None:
            self._bar.update(n)
            if loss is not None:
                self._bar.set_postfix_str(f"loss={fmt(float(loss))}", refresh=False)

    def close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def end_epoch(self, epoch: int, *, train_loss: float | None, metrics: dict[str, float] | None = None,
                  learning_rate: float | None = None, validation_loss: float | None = None,
                  run: str | None = None, epochs: int | None = None, improved: bool | None = None) -> dict[str, Any]:
        """Log the epoch's line and append its history entry (returned). ``improved`` is the trainer's own
        verdict when it selects on more than the primary metric (e.g. a tie-breaker); else it is derived."""
        self.start()
        self.close_bar()
        self._done += 1
        elapsed = self.elapsed()
        metrics = {k: float(v) for k, v in (metrics or {}).items()}
        entry: dict[str, Any] = {"epoch": epoch}
        if run is not None:
            entry["run"] = run
        entry.update({"train_loss": _float(train_loss), "validation_loss": _float(validation_loss),
                      "metrics": metrics, "metrics_on": self.metrics_on if metrics else None,
                      "learning_rate": _float(learning_rate), "elapsed_s": round(elapsed, 3), "best": False})
        improved = self._track_best(entry, run, improved)
        self.history.append(entry)

        parts = [f"{run} " if run else "", f"epoch {epoch}/{epochs or self.total_epochs}"]
        if train_loss is not None:
            parts.append(f"  loss={fmt(float(train_loss))}")
        if validation_loss is not None:
            parts.append(f"  val_loss={fmt(float(validation_loss))}")
        if learning_rate is not None:
            parts.append(f"  lr={fmt(float(learning_rate))}")
        left = elapsed / self._done * (self.total_epochs - self._done) if self._done < self.total_epochs else 0.0
        parts.append(f"  {duration(elapsed)}" + (f" (~{duration(left)} left)" if left else ""))
        if metrics:  # last: the one part whose length varies by task
            shown = " ".join(f"{k}={fmt(v)}" for k, v in metrics.items())
            parts.append(f"  {self.metrics_on}: {shown}")
        if improved:
            parts.append("  * best")
        logger.info("%s", "".join(parts))
        return entry

    def finish(self, *, restored: bool = True) -> None:
        """Mark the best epoch of each run in the history and say which one the model keeps."""
        self.close_bar()
        if 0 < self._done < self.total_epochs and self.primary_metric:
            logger.info("early stopping: %d of %d epochs run, %s stopped improving (training.early_stopping_patience)",
                        self._done, self.total_epochs, self.primary_metric)
        for run, (value, index) in self._best.items():
            self.history[index]["best"] = True
            if restored and self.primary_metric:
                where = f"{run} " if run else ""
                logger.info("%sbest epoch %s: %s=%s (%s; these weights are kept)", where,
                            self.history[index]["epoch"], self.primary_metric, fmt(value), self.metrics_on)

    # ---- internals ---------------------------------------------------------------------------
    def _track_best(self, entry: dict[str, Any], run: str | None, verdict: bool | None = None) -> bool:
        value = entry["metrics"].get(self.primary_metric) if self.primary_metric else None
        if verdict is not None:
            if verdict:
                self._best[run] = (math.nan if value is None else value, len(self.history))
            return verdict
        if value is None or math.isnan(value):
            return False
        previous = self._best.get(run)
        better = previous is None or (value > previous[0] if self.greater_is_better else value < previous[0])
        if better:
            self._best[run] = (value, len(self.history))
        return better


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def history_lines(history: list[dict[str, Any]]) -> list[str]:
    """One line per stored epoch (``verticals inspect``): exact floats, the kept epoch marked."""
    lines = []
    for entry in history:
        run = f"{entry['run']} " if entry.get("run") else ""
        parts = [f"{run}epoch {entry.get('epoch')}"]
        if entry.get("train_loss") is not None:
            parts.append(f"loss {fmt(entry['train_loss'])}")
        if entry.get("metrics"):
            parts.append(f"{entry.get('metrics_on') or 'validation'}: "
                         + " ".join(f"{k} {fmt(v)}" for k, v in entry["metrics"].items()))
        if entry.get("learning_rate") is not None:
            parts.append(f"lr {fmt(entry['learning_rate'])}")
        if entry.get("elapsed_s") is not None:
            parts.append(f"at {duration(float(entry['elapsed_s']))}")
        lines.append(", ".join(parts) + ("  * best" if entry.get("best") else ""))
    return lines


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the time (the CLI may run again in-process with another one)."""

    @property  # type: ignore[override]
    def stream(self):  # type: ignore[no-untyped-def]
        return sys.stderr

    @stream.setter
    def stream(self, value):  # type: ignore[no-untyped-def]
        pass


@contextmanager
def training_output(quiet: bool = False) -> Iterator[None]:
    """While Python code trains, show the epoch lines on stderr as the CLI does (and as transformers'
    Trainer shows its progress in a notebook), unless the 'verticals' logger is already set up: a handler
    of its own (the CLI's), or logging configured to show its INFO lines. ``quiet`` keeps it to warnings and
    errors. Whatever it changes on the logger is restored when training ends."""
    saved = (logger.level, logger.propagate)
    handler: logging.Handler | None = None
    if quiet:
        logger.setLevel(logging.WARNING)
    elif not logger.handlers and not (logger.isEnabledFor(logging.INFO) and logger.hasHandlers()):
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False  # a root handler set to WARNING would otherwise print each line again
    try:
        yield
    finally:
        if handler is not None:
            logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def log_to_stderr(level: str) -> None:
    """What the CLI does, and only the CLI: show the 'verticals' logger on stderr at ``level`` (bare
    messages; stdout stays for results and --json). The library itself never configures logging."""
    if not any(isinstance(h, _Stderr) for h in logger.handlers):
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level.upper())
