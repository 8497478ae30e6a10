"""The default trainer: ``transformers.Trainer`` does the loop, AMP, DDP, checkpoints and resume."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..bundles.checkpoints import last_complete_checkpoint, prepare_checkpoint_dir, remove_incomplete_checkpoints
from ..bundles.outputs import write_failure
from ..console import TrainingConsole
from ..errors import ConfigError, option
from ..runtime import resolve_precision, training_threads
from .base import MetricsFn, Trainer

logger = logging.getLogger("verticals")


def _split_logits(predictions: Any, features: Sequence[dict[str, Any]]) -> list[np.ndarray]:
    """transformers concatenates eval logits (token logits padded with -100); cut them per example."""
    array = predictions[0] if isinstance(predictions, tuple) else predictions
    array = np.asarray(array, dtype=np.float32)
    if array.ndim == 3:
        return [array[i, : len(f["input_ids"])] for i, f in enumerate(features)]
    return [array[i] for i in range(len(features))]


def _hf_trainer_class() -> type:
    from torch.utils.data import SequentialSampler
    from transformers import Trainer as HFTrainer

    from .selection import record_best  # imports transformers' callbacks: only when training

    class _Trainer(HFTrainer):
        """transformers' Trainer, except that evaluation keeps dataset order even with length-grouped
        training batches (transformers 5 also length-groups eval batches, which would misalign our
        per-record decoding). Under DDP accelerate shards the sequential batches across ranks and
        ``gather_for_metrics`` puts them back in order, so every rank scores the full validation set."""

        def _get_eval_sampler(self, eval_dataset):  # type: ignore[no-untyped-def]
            if eval_dataset is not None:
                return SequentialSampler(eval_dataset)
            return super()._get_eval_sampler(eval_dataset)

        def _determine_best_metric(self, metrics, trial):  # type: ignore[no-untyped-def]
            # ties on the primary metric go to the lower validation loss (selection.py says why)
            return record_best(self.args, self.state, metrics)

    return _Trainer


def _console_callback(console: TrainingConsole, *, has_eval: bool) -> Any:
    from transformers import TrainerCallback

    from .selection import is_new_best

    class _Console(TrainerCallback):
        """Replaces transformers' ProgressCallback/PrinterCallback (nested bars, raw log dicts with floats
        rounded to 4 decimals): one bar per epoch and one line per epoch, through :class:`TrainingConsole`."""

        def __init__(self) -> None:
            self.pending: dict[str, float] = {}

        def _epoch(self, state: Any) -> int:
            return max(1, math.ceil(round(state.epoch or 0, 6)))

        def on_epoch_begin(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
            if state.is_world_process_zero:
                epochs = max(1, math.ceil(state.num_train_epochs or 1))
                steps = math.ceil(state.max_steps / epochs) if state.max_steps else 0
                console.begin_epoch(int(state.epoch or 0) + 1, steps, epochs=epochs)

        def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
            if state.is_world_process_zero:
                console.step()

        def on_log(self, args, state, control, logs=None, **kwargs):  # type: ignore[no-untyped-def]
            # Epoch logs carry the epoch's mean loss and the learning rate; the final summary (runtime,
            # total_flos...) and eval logs are left to the trackers.
            if not state.is_world_process_zero or not logs or "loss" not in logs:
                return
            self.pending = {"train_loss": logs["loss"], "learning_rate": logs.get("learning_rate")}
            if not has_eval:
                self._report(state, {})

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):  # type: ignore[no-untyped-def]
            if state.is_world_process_zero:
                metrics = dict(metrics or {})
                # the trainer's own verdict (ties broken by validation loss), taken before it records it
                improved = is_new_best(args, state, metrics) if args.metric_for_best_model else None
                self._report(state, metrics, improved)

        def _report(self, state: Any, metrics: dict[str, Any], improved: bool | None = None) -> None:
            validation_loss = metrics.pop("eval_loss", None)
            shown = {k[len("eval_"):]: v for k, v in metrics.items() if k.startswith("eval_")
                     and not k.endswith(("_runtime", "_per_second")) and isinstance(v, (int, float))}
            console.end_epoch(self._epoch(state), train_loss=self.pending.get("train_loss"), metrics=shown,
                              learning_rate=self.pending.get("learning_rate"), validation_loss=validation_loss,
                              epochs=max(1, math.ceil(state.num_train_epochs or 1)), improved=improved)
            self.pending = {}

    return _Console()


def check_report_to(names: Sequence[str]) -> None:
    """Fail before training when a tracker is unknown to transformers or not installed."""
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    for name in names:
        if name == "all":
            continue
        if name not in INTEGRATION_TO_CALLBACK:
            raise ConfigError(f"training.report_to: '{name}' is not a transformers integration; expected one of: "
                              f"{', '.join(sorted(INTEGRATION_TO_CALLBACK))} (or none/all)")
        try:
            INTEGRATION_TO_CALLBACK[name]()
        except (RuntimeError, ImportError) as exc:
            hint = " (pip install 'verticals[tracking]')" if name in ("tensorboard", "mlflow") else ""
            raise ConfigError(f"training.report_to: {name} cannot start: {exc}{hint}") from None


MAX_STRETCHED_EPOCHS = 50
"""training.min_steps never stretches the epoch budget beyond this (a handful of rows would otherwise mean
hundreds of epochs, each evaluated and checkpointed)."""


def epoch_budget(cfg: Any, n_train: int, batch_size: int) -> float:
    """``training.epochs``, raised on small data sets so training makes at least ``training.min_steps``
    optimizer steps: three epochs of 616 few-shot utterances are 60 updates, too few for a fresh 77-way head
    (Banking77 8-shot: 0.57 test accuracy at 3 epochs)."""
    if not cfg.min_steps or n_train <= 0:
        return float(cfg.epochs)
    steps_per_epoch = math.ceil(n_train / batch_size)
    needed = min(math.ceil(cfg.min_steps / steps_per_epoch), MAX_STRETCHED_EPOCHS)
    if needed <= cfg.epochs:
        return float(cfg.epochs)
    logger.info("%s", stretch_note(n_train, steps_per_epoch, needed, cfg.epochs, cfg.min_steps))
    return float(needed)


def stretch_note(n_train: int, steps_per_epoch: int, epochs: int, configured: float, min_steps: int) -> str:
    """The log line of :func:`epoch_budget`: rows, steps per epoch, the epochs and the steps they make, and
    whether that reaches ``min_steps`` or stops at :data:`MAX_STRETCHED_EPOCHS` below it."""
    steps = epochs * steps_per_epoch
    reach = (f"reaching training.min_steps={min_steps}" if steps >= min_steps else
             f"capped at {MAX_STRETCHED_EPOCHS} epochs, below training.min_steps={min_steps}")
    return (f"small training set: {n_train} rows make {steps_per_epoch} step{'s' * (steps_per_epoch != 1)} per "
            f"epoch, so up to {epochs} epochs ({steps} steps, {reach}) are run instead of {configured:g}; set "
            f"training.epochs alone to have exactly that many")


class TransformersTrainer(Trainer):
    """AdamW with decoupled weight decay, warmup + schedule, clipping, seeded, bf16 autocast where fast,
    length-grouped batches, early stopping on the primary metric with the best checkpoint restored,
    per-epoch checkpoints and resume."""

    def fit(self, model: nn.Module, train, validation, *, collator, compute_metrics: MetricsFn | None,  # type: ignore[no-untyped-def,override]
            primary_metric: str, greater_is_better: bool = True, checkpoint_dir: Path, resume: bool = False,
            param_groups: list[dict[str, Any]] | None = None, callbacks: Sequence[Any] = (),
            logging_dir: Path | None = None, metrics_on: str = "validation", metrics_note: str | None = None):
        from transformers import TrainerCallback, TrainingArguments
        from transformers.integrations.integration_utils import TensorBoardCallback
        from transformers.trainer_callback import PrinterCallback, ProgressCallback

        from .selection import EarlyStopping

        cfg = self.config
        check_report_to(cfg.report_to)
        for callback in callbacks:
            if not (isinstance(callback, TrainerCallback)
                    or (isinstance(callback, type) and issubclass(callback, TrainerCallback))):
                raise ConfigError(f"callbacks: expected transformers.TrainerCallback instances, got "
                                  f"{type(callback).__name__} {callback!r}")
        precision = resolve_precision(cfg.precision)
        on_gpu = torch.cuda.is_available()
        has_eval = bool(validation) and compute_metrics is not None
        checkpoint_dir = Path(checkpoint_dir)
        # Under torchrun/DDP training.batch_size stays the global batch: each of WORLD_SIZE processes takes
        # its share, so steps, learning-rate schedule and results match a single-process run.
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if cfg.batch_size % world_size:
            import warnings

            warnings.warn(f"training.batch_size={cfg.batch_size} is not divisible by the {world_size} processes; "
                          f"the effective batch is {max(1, cfg.batch_size // world_size) * world_size}",
                          UserWarning, stacklevel=2)
        train = list(train)
        epochs = epoch_budget(cfg, len(train), max(1, cfg.batch_size // world_size) * world_size)
        args = TrainingArguments(
            output_dir=str(checkpoint_dir),
            per_device_train_batch_size=max(1, cfg.batch_size // world_size),
            per_device_eval_batch_size=cfg.eval_batch_size,
            num_train_epochs=epochs,
            learning_rate=cfg.learning_rate,
            weight_decay=cfg.weight_decay,
            warmup_steps=cfg.warmup_ratio,  # a float in [0, 1) is a ratio of total steps in transformers 5
            lr_scheduler_type=cfg.scheduler,
            max_grad_norm=cfg.max_grad_norm,
            seed=cfg.seed,
            data_seed=cfg.seed,
            bf16=precision == "bf16",
            use_cpu=not on_gpu,
            eval_strategy="epoch" if has_eval else "no",
            save_strategy="epoch",
            save_total_limit=2,
            load_best_model_at_end=has_eval,
            metric_for_best_model=primary_metric if has_eval else None,
            greater_is_better=greater_is_better,
            train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
            logging_strategy="epoch",
            report_to=list(cfg.report_to) or "none",
            remove_unused_columns=False,
            dataloader_pin_memory=on_gpu,
            dataloader_num_workers=0,
            torch_compile=cfg.torch_compile,
            disable_tqdm=True,  # our console callback draws the bars and prints the epoch lines
        )
        with args.main_process_first(local=False, desc="clean checkpoints"):  # one rank deletes; the others wait
            if args.process_index == 0:
                # only our own checkpoint folder, only checkpoint-N in it: old ones, or incomplete ones on resume
                prepare_checkpoint_dir(checkpoint_dir, resume)
        optimizer = None
        if param_groups is not None:
            optimizer = torch.optim.AdamW(param_groups, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        console = TrainingConsole(total_epochs=math.ceil(epochs),
                                  primary_metric=primary_metric if has_eval else None,
                                  greater_is_better=greater_is_better, metrics_on=metrics_on, note=metrics_note)
        extra: list[Any] = [_console_callback(console, has_eval=has_eval), *callbacks]
        if has_eval and cfg.early_stopping_patience:
            extra.append(EarlyStopping(cfg.early_stopping_patience))

        def metrics(eval_prediction: Any) -> dict[str, float]:
            assert compute_metrics is not None and validation is not None
            return compute_metrics(_split_logits(eval_prediction.predictions, validation))

        # Our heads return the batch-mean loss and ignore `num_items_in_batch`; left to introspection (forward
        # takes **kwargs), transformers would multiply that mean by the world size under DDP.
        for module in (model, getattr(model, "get_base_model", lambda: model)()):
            module.accepts_loss_kwargs = False
        trainer = _hf_trainer_class()(
            model=model,
            args=args,
            data_collator=collator,
            train_dataset=list(train),
            eval_dataset=list(validation) if has_eval else None,
            compute_metrics=metrics if has_eval else None,
            callbacks=extra,
            optimizers=(optimizer, None),
        )
        for default in (PrinterCallback, ProgressCallback):
            trainer.remove_callback(default)
        for callback in trainer.callback_handler.callbacks:
            # transformers' default is OUTPUT_DIR/runs, i.e. inside the checkpoints deleted after training;
            # training.logging_dir wins over TENSORBOARD_LOGGING_DIR (read by the callback), which wins over ours
            if isinstance(callback, TensorBoardCallback) and (cfg.logging_dir or callback.logging_dir is None):
                callback.logging_dir = str(cfg.logging_dir or logging_dir or checkpoint_dir / "runs")
        # transformers' get_last_checkpoint would pick a checkpoint a kill left half-written
        last = last_complete_checkpoint(checkpoint_dir) if resume else None
        if resume and last is None:
            import warnings

            warnings.warn(f"{option('resume', True)}: no complete checkpoint in {checkpoint_dir}; training from the "
                          f"start",
                          UserWarning, stacklevel=2)
        # Processes sharing a machine share its cores (torchrun sets LOCAL_WORLD_SIZE).
        local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        torch.set_num_threads(training_threads(cfg.num_threads, local_processes))
        try:
            trainer.train(resume_from_checkpoint=str(last) if last else None)
        except Exception as exc:  # a full disk while saving a checkpoint: one line, no half-written checkpoint
            failure = write_failure(exc, checkpoint_dir)
            if failure is None:
                raise
            remove_incomplete_checkpoints(checkpoint_dir)
            raise failure from None
        finally:
            console.close_bar()
        console.finish(restored=has_eval)
        self.history_ = console.history
        self.log_history_ = [dict(entry) for entry in trainer.state.log_history]
        self.best_metric_ = trainer.state.best_metric
        self.epochs_run_ = trainer.state.epoch
        model.eval()
        return self
