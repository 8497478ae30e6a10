"""Which epoch is the best one, and when patience runs out.

transformers keeps the first epoch that reaches the best primary metric and stops after
``early_stopping_patience`` evaluations without a strictly better one. On a small validation set the
metric saturates early (24 rows at accuracy 1.0 after one epoch) while the model keeps improving, so the
earliest, least trained epoch was kept and the run stopped while the validation loss still fell
(issue 29). Here:

* a tie on the primary metric goes to the epoch with the lower validation loss;
* patience counts only evaluations that are not a new best by that rule, and only after the learning-rate
  warmup: an epoch still warming up (``training.min_steps`` can stretch warmup over several epochs) has not
  had its chance to learn yet.
"""

from __future__ import annotations

import math
from typing import Any

from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState

# A loss this much lower (relative) than the best one is progress for patience; a smaller change on a
# saturated metric (float noise, a learning rate near zero) would let a run go on to its full budget.
LOSS_PROGRESS = 1e-3


def metric_key(name: str) -> str:
    return name if name.startswith("eval_") else f"eval_{name}"


def _finite(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def is_better(value: Any, loss: Any, best_value: Any, best_loss: Any, *, greater_is_better: bool,
              loss_progress: float = 0.0) -> bool:
    """True when (``value``, ``loss``) beats the best so far: a better primary metric, or the same one with a
    validation loss lower by more than ``loss_progress`` (relative). A first evaluation always wins unless its
    metric is NaN."""
    value, best_value = _finite(value), _finite(best_value)
    if value is None:
        return False
    if best_value is None:
        return True
    if value != best_value:
        return value > best_value if greater_is_better else value < best_value
    loss, best_loss = _finite(loss), _finite(best_loss)
    if loss is None:
        return False
    if best_loss is None:
        return True
    return loss < best_loss - loss_progress * abs(best_loss)


def best_so_far(state: Any) -> tuple[float | None, float | None]:
    """The kept epoch's primary metric and validation loss, from transformers' state (``best_metric`` and the
    log entry at ``best_global_step``): both survive a resume, as they are saved with each checkpoint."""
    if state.best_metric is None or not state.best_global_step:
        return None, None
    loss = None
    for entry in state.log_history:
        if entry.get("step") == state.best_global_step and "eval_loss" in entry:
            loss = entry["eval_loss"]
    return state.best_metric, loss


def is_new_best(args: Any, state: Any, metrics: dict[str, Any], *, loss_progress: float = 0.0) -> bool:
    """Whether this evaluation (``metrics``, not yet recorded in ``state.best_*``) becomes the kept epoch."""
    best_value, best_loss = best_so_far(state)
    return is_better(metrics.get(metric_key(args.metric_for_best_model)), metrics.get("eval_loss"), best_value,
                     best_loss, greater_is_better=args.greater_is_better, loss_progress=loss_progress)


def record_best(args: Any, state: Any, metrics: dict[str, Any]) -> bool:
    """transformers' ``_determine_best_metric`` with the tie-break: update ``state.best_metric`` and
    ``state.best_global_step`` when this evaluation is the new best; return whether it was."""
    if args.metric_for_best_model is None:
        return False
    key = metric_key(args.metric_for_best_model)
    if key not in metrics:
        raise KeyError(f"metric_for_best_model '{key}' is not among the evaluation metrics {sorted(metrics)}")
    if not is_new_best(args, state, metrics):
        return False
    state.best_metric = metrics[key]
    state.best_global_step = state.global_step
    return True


def warmup_steps(args: Any, state: Any) -> int:
    return int(args.get_warmup_steps(state.max_steps)) if state.max_steps else 0


class EarlyStopping(TrainerCallback, ExportableState):
    """Stop after ``patience`` evaluations past warmup without a new best epoch (see the module's rule).
    Replaces transformers' ``EarlyStoppingCallback``; its counter is saved with each checkpoint."""

    def __init__(self, patience: int, counter: int = 0) -> None:
        self.patience = patience
        self.counter = counter

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):  # type: ignore[no-untyped-def]
        # Runs before the trainer records this evaluation as the best, so state.best_* is the previous best.
        if is_new_best(args, state, dict(metrics or {}), loss_progress=LOSS_PROGRESS):
            self.counter = 0
        elif state.global_step > warmup_steps(args, state):
            self.counter += 1
        if self.counter >= self.patience:
            control.should_training_stop = True

    def state(self) -> dict[str, Any]:
        return {"args": {"patience": self.patience}, "attributes": {"counter": self.counter}}
