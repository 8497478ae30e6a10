"""The default trainer: ``transformers.Trainer`` does the loop, AMP, DDP, checkpoints and resume."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._outputs import last_complete_checkpoint, prepare_checkpoint_dir
from ..runtime import available_cores, resolve_precision
from .base import MetricsFn, Trainer


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

    class _Trainer(HFTrainer):
        """transformers' Trainer, except that evaluation keeps dataset order even with length-grouped
        training batches (transformers 5 also length-groups eval batches, which would misalign our
        per-record decoding). Under DDP accelerate shards the sequential batches across ranks and
        ``gather_for_metrics`` puts them back in order, so every rank scores the full validation set."""

        def _get_eval_sampler(self, eval_dataset):  # type: ignore[no-untyped-def]
            if eval_dataset is not None:
                return SequentialSampler(eval_dataset)
            return super()._get_eval_sampler(eval_dataset)

    return _Trainer


def _stderr_progress() -> Any:
    import sys

    from transformers.trainer_callback import ProgressCallback

    class _Progress(ProgressCallback):
        """Progress bars as usual, but epoch logs go to stderr so `--json` stdout stays parseable."""

        def on_log(self, args, state, control, logs=None, **kwargs):  # type: ignore[no-untyped-def]
            if state.is_world_process_zero and logs:
                shown = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in logs.items()
                         if not k.endswith(("_runtime", "_per_second"))}
                print(shown, file=sys.stderr, flush=True)

    return _Progress


class TransformersTrainer(Trainer):
    """AdamW with decoupled weight decay, warmup + schedule, clipping, seeded, bf16 autocast where fast,
    length-grouped batches, early stopping on the primary metric with the best checkpoint restored,
    per-epoch checkpoints and resume."""

    def fit(self, model: nn.Module, train, validation, *, collator, compute_metrics: MetricsFn | None,  # type: ignore[no-untyped-def,override]
            primary_metric: str, greater_is_better: bool = True, checkpoint_dir: Path, resume: bool = False,
            param_groups: list[dict[str, Any]] | None = None):
        from transformers import EarlyStoppingCallback, TrainingArguments
        from transformers.trainer_callback import ProgressCallback

        cfg = self.config
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
        args = TrainingArguments(
            output_dir=str(checkpoint_dir),
            per_device_train_batch_size=max(1, cfg.batch_size // world_size),
            per_device_eval_batch_size=cfg.eval_batch_size,
            num_train_epochs=cfg.epochs,
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
            report_to="none",
            remove_unused_columns=False,
            dataloader_pin_memory=on_gpu,
            dataloader_num_workers=0,
            torch_compile=cfg.torch_compile,
            disable_tqdm=False,
        )
        with args.main_process_first(local=False, desc="clean checkpoints"):  # one rank deletes; the others wait
            if args.process_index == 0:
                # only our own checkpoint folder, only checkpoint-N in it: old ones, or incomplete ones on resume
                prepare_checkpoint_dir(checkpoint_dir, resume)
        optimizer = None
        if param_groups is not None:
            optimizer = torch.optim.AdamW(param_groups, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        callbacks = []
        if has_eval and cfg.early_stopping_patience:
            callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping_patience))

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
            callbacks=callbacks,
            optimizers=(optimizer, None),
        )
        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(_stderr_progress())
        # transformers' get_last_checkpoint would pick a checkpoint a kill left half-written
        last = last_complete_checkpoint(checkpoint_dir) if resume else None
        if resume and last is None:
            import warnings

            warnings.warn(f"--resume: no complete checkpoint in {checkpoint_dir}; training from the start",
                          UserWarning, stacklevel=2)
        # Processes sharing a machine share its cores (torchrun sets LOCAL_WORLD_SIZE).
        local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        torch.set_num_threads(cfg.num_threads or max(1, available_cores() // local_processes))
        trainer.train(resume_from_checkpoint=str(last) if last else None)
        self.history_ = [dict(entry) for entry in trainer.state.log_history]
        self.best_metric_ = trainer.state.best_metric
        self.epochs_run_ = trainer.state.epoch
        model.eval()
        return self
