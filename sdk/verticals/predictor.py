"""The trained-model object users hold: ``verticals.train(...)`` and ``verticals.load(path)`` return it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
from pydantic import BaseModel

from .bundle import BundleInfo
from .tasks.base import Evaluation, TaskType

PredictionT = TypeVar("PredictionT", bound=BaseModel)


class Predictor(Generic[PredictionT]):
    """A fitted task plus its bundle description. ``predict`` takes a list and returns typed predictions.

    Generic over the prediction model, so a type checker knows its fields:
    ``verticals.load(path, prediction=TextPrediction)`` is a ``Predictor[TextPrediction]``."""

    def __init__(self, task: TaskType, info: BundleInfo, path: Path | None = None, engine: str = "torch") -> None:
        self.task = task
        self.info = info
        self.path = path
        self.engine = engine
        """Where the encoder runs at inference: 'torch', 'onnx' or 'onnx-int8' (see verticals.engines)."""

    @property
    def labels(self) -> list[str]:
        return list(self.info.labels)

    @property
    def task_name(self) -> str:
        return self.info.task

    def predict(self, inputs: Sequence[str | dict[str, Any] | BaseModel]) -> list[PredictionT]:
        """Predict a batch: raw texts, dicts with the task's fields, or record objects."""
        if isinstance(inputs, (str, dict, BaseModel)):
            raise TypeError("predict() takes a list; use predict_one() for a single input")
        records = [self.task.as_record(item, i) for i, item in enumerate(inputs)]
        return self.task.predict(records)

    def predict_one(self, item: str | dict[str, Any] | BaseModel) -> PredictionT:
        return self.predict([item])[0]

    def evaluate(self, data: str | Path | Sequence[BaseModel]) -> Evaluation:
        """Score labelled data (a file path in any supported format, or records)."""
        if isinstance(data, (str, Path)):
            records = self.task.read(data)
            self.task.check_split(records, "evaluation", data)
        else:
            records = list(data)
        return self.task.evaluate(records)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Sentence embeddings of ``texts`` from the fine-tuned encoder: ``[len(texts), hidden]`` float32,
        unit length, pooled as the task pools (mean for customer-service retrieval, the head's pooling for
        text classification). Transformer tasks only; others raise :class:`~verticals.ConfigError`."""
        if isinstance(texts, str):
            raise TypeError("embed() takes a list of texts")
        return np.asarray(self.task.embed(list(texts)))

    def __repr__(self) -> str:
        return (f"Predictor(task={self.info.task!r}, labels={len(self.info.labels)}, path={self.path}, "
                f"engine={self.engine!r})")
