"""The trainer interface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from torch import nn

from ..backbones.collate import Collator, predict_logits
from ..config import TrainingConfig
from ..runtime import resolve_precision

MetricsFn = Callable[[list[np.ndarray]], dict[str, float]]
"""Turns per-example validation logits (in validation order) into named metrics."""

SelfTrainer = TypeVar("SelfTrainer", bound="Trainer")


class Trainer(ABC):
    """Runs the optimisation of a model on encoded examples. Stores config only until ``fit``."""

    def __init__(self, config: TrainingConfig) -> None:
        self.config = config

    @abstractmethod
    def fit(
        self: SelfTrainer,
        model: nn.Module,
        train: Sequence[dict[str, Any]],
        validation: Sequence[dict[str, Any]] | None,
        *,
        collator: Collator,
        compute_metrics: MetricsFn | None,
        primary_metric: str,
        greater_is_better: bool = True,
        checkpoint_dir: Path,
        resume: bool = False,
        param_groups: list[dict[str, Any]] | None = None,
        callbacks: Sequence[Any] = (),
        logging_dir: Path | None = None,
        metrics_on: str = "validation",
        metrics_note: str | None = None,
    ) -> SelfTrainer:
        """Train ``model`` in place; restore the best validation checkpoint; return ``self``.

        Report every epoch through :class:`verticals.console.TrainingConsole` and keep its entries in
        ``history_``. ``callbacks`` are the user's (``verticals.train(callbacks=...)``); ``logging_dir`` is
        where file-based trackers (TensorBoard) write; ``metrics_on``/``metrics_note`` say what
        ``compute_metrics`` scores when it is not exactly the final summary's validation metrics."""

    def predict(self, model: nn.Module, features: Sequence[dict[str, Any]], collator: Collator) -> list[np.ndarray]:
        """Per-example logits in input order."""
        return predict_logits(
            model, features, collator, batch_size=self.config.eval_batch_size,
            precision=resolve_precision(self.config.precision),
        )

    def evaluate(
        self, model: nn.Module, features: Sequence[dict[str, Any]], collator: Collator, compute_metrics: MetricsFn
    ) -> dict[str, float]:
        return compute_metrics(self.predict(model, features, collator))
