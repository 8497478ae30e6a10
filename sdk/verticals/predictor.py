"""The trained-model object users hold: ``verticals.train(...)`` and ``verticals.load(path)`` return it."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar, overload

import numpy as np
from pydantic import BaseModel

from .bundles.bundle import BundleInfo
from .config import deep_merge, parse_set, validate_section
from .data.records import source_name
from .errors import ConfigError, DataError, option
from .tasks.base import Evaluation, TaskType

Overrides = Sequence[str] | Mapping[str, Any] | None
"""``data.*`` options for a trained bundle: ``["data.text_column=utterance"]`` (as ``--set`` on the CLI)
or ``{"data": {"text_column": "utterance"}}``."""
_SETTABLE = ("format", "encoding", "max_record_bytes")


def data_overrides(overrides: Overrides) -> dict[str, Any]:
    """The ``data`` section of ``overrides``, refusing what was fixed at training time (``training.*``,
    ``task.*``, and data options that define the model's features, e.g. fraud's column lists)."""
    if isinstance(overrides, Mapping):
        layered: dict[str, Any] = dict(overrides)
    else:
        layered = {}
        for assignment in overrides or []:
            layered = deep_merge(layered, parse_set(assignment))
    given = option("overrides", cli="--set")
    for section in layered:
        if section != "data":
            raise ConfigError(f"{given} {section}.*: only data.* options (column names, format, encoding) can be "
                              f"set on a trained bundle; {section} options were fixed when it was trained")
    data = layered.get("data") or {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{given} data: expected data.OPTION=VALUE, e.g. data.text_column=utterance")
    for key in data:
        if not (str(key).endswith("_column") or key in _SETTABLE):
            raise ConfigError(f"{given} data.{key}: fixed when the bundle was trained; only data.*_column (one "
                              f"column name each), data.format, data.encoding and data.max_record_bytes can change "
                              f"(rename the columns of your data instead)")
    return dict(data)


PredictionT = TypeVar("PredictionT", bound=BaseModel)


class Predictor(Generic[PredictionT]):
    """A fitted task plus its bundle description.

    ``predict``, ``evaluate`` (and ``verticals.train``) take data in any form: a file path, a pandas
    DataFrame, a ``datasets.Dataset``, a list of dicts, or (``predict`` only) a list of texts.

    Generic over the prediction model, so a type checker knows its fields:
    ``verticals.load(path, prediction=TextPrediction)`` is a ``Predictor[TextPrediction]``."""

    def __init__(self, task: TaskType, info: BundleInfo, path: Path | None = None, engine: str = "torch",
                 digest: str | None = None) -> None:
        self.task = task
        self.info = info
        self.path = path
        self.engine = engine
        """Where the encoder runs at inference: 'torch', 'onnx' or 'onnx-int8' (see verticals.backbones.engines)."""
        self._digest = digest

    @property
    def digest(self) -> str | None:
        """The digest of the bundle this predictor was loaded from (``verticals inspect`` shows the same); None
        for a predictor built in memory. ``load`` and ``train`` set it from the manifest they read or wrote (the
        path may hold another bundle later); a predictor constructed by hand with a path reads it once."""
        if self._digest is None and self.path is not None:
            from .bundles.bundle import digest

            self._digest = digest(self.path)
        return self._digest

    @property
    def labels(self) -> list[str]:
        return list(self.info.labels)

    @property
    def task_name(self) -> str:
        return self.info.task

    def with_overrides(self, overrides: Overrides) -> Predictor[PredictionT]:
        """A predictor sharing this one's model that reads data with other ``data.*`` options, e.g. a
        client's ``utterance`` column: ``predictor.with_overrides(["data.text_column=utterance"])``."""
        data = data_overrides(overrides)
        if not data:
            return self
        for key, value in data.items():
            before = getattr(self.task.data_options, str(key), None)
            if str(key).endswith("_column") and (before is None) != (value is None):
                # an optional input column (customer service's data.context_column) defines the model's input:
                # a column option may rename it, never switch it on or off after training
                raise ConfigError(f"--set data.{key}: the bundle was trained "
                                  f"{'without' if before is None else 'with'} data.{key}; a column option can "
                                  f"rename a column, not switch an input {'on' if before is None else 'off'} "
                                  f"(train another bundle)")
        task = copy.copy(self.task)  # shares the fitted model; only how records are read changes
        task.config = self.task.config.model_copy(update={"data": deep_merge(self.task.config.data, data)})
        task.data_options = validate_section(task.DataOptions, task.config.data, "data")
        return Predictor(task, self.info, self.path, engine=self.engine,  # type: ignore[return-value]
                         digest=self._digest)

    def predict(self, inputs: Any, *, overrides: Overrides = None) -> list[PredictionT]:
        """Predict a batch: a list of texts, dicts with the task's fields, or records; a pandas DataFrame; a
        ``datasets.Dataset``; or a file path (a ``str`` must name an existing file, else it is refused)."""
        predictor = self.with_overrides(overrides) if overrides else self
        if isinstance(inputs, (dict, BaseModel)):
            raise TypeError("predict() takes a list (or a DataFrame, Dataset or file path); use predict_one() for a "
                            "single input")
        if isinstance(inputs, str) and not Path(inputs).is_file():
            raise TypeError(f"predict() takes a list of texts or records, a DataFrame, a Dataset or a file path; the "
                            f"string {inputs[:40]!r} is not an existing file: use predict_one(text) for one text")
        records = predictor.task.read(inputs, require_labels=False)
        return predictor.task.predict(records) if records else []

    def predict_one(self, item: str | dict[str, Any] | BaseModel, *, overrides: Overrides = None) -> PredictionT:
        return self.predict([item], overrides=overrides)[0]

    @overload
    def __call__(self, inputs: str | dict[str, Any] | BaseModel, *, overrides: Overrides = None) -> PredictionT: ...

    @overload
    def __call__(self, inputs: Sequence[Any], *, overrides: Overrides = None) -> list[PredictionT]: ...

    def __call__(self, inputs: Any, *, overrides: Overrides = None) -> PredictionT | list[PredictionT]:
        """Like a transformers pipeline: one text (or record) gives one prediction, a list gives a list.
        A string is always a text here; ``predict(path)`` reads a file."""
        if isinstance(inputs, (str, dict, BaseModel)):
            return self.predict_one(inputs, overrides=overrides)
        return self.predict(inputs, overrides=overrides)

    def evaluate(self, data: Any, *, overrides: Overrides = None) -> Evaluation:
        """Score labelled data: a file path in any supported format, a pandas DataFrame, a
        ``datasets.Dataset``, or a list of dicts or records."""
        predictor = self.with_overrides(overrides) if overrides else self
        records = predictor.task.read(data)
        if not records:
            raise DataError("no records to evaluate; expected at least one", path=source_name(data))
        predictor.task.check_split(records, "evaluation", source_name(data))
        return predictor.task.evaluate(records)

    def explain(self, inputs: Any, *, method: str | None = None, overrides: Overrides = None) -> list[Any]:
        """Why the model answered as it did, one explanation per input (same inputs as ``predict``): for text
        classification a ``TextExplanation`` (the top label and every word's attribution towards it, with
        character offsets); for token classification an ``EntitiesExplanation`` (per predicted entity, the
        words that drove its type). ``method``: 'occlusion' (default) or 'integrated-gradients' (Captum, see
        :mod:`verticals.tasks.explain`). Torch engine only: an ONNX predictor raises
        :class:`~verticals.ConfigError` (load with ``engine='torch'``)."""
        from .tasks.explain import DEFAULT_METHOD, check_explainable, explain_records

        predictor = self.with_overrides(overrides) if overrides else self
        check_explainable(predictor.task, predictor.engine, method or DEFAULT_METHOD)  # before reading any data
        if isinstance(inputs, (dict, BaseModel)):
            raise TypeError("explain() takes a list (or a DataFrame, Dataset or file path), like predict()")
        if isinstance(inputs, str) and not Path(inputs).is_file():
            raise TypeError(f"explain() takes a list of texts or records, a DataFrame, a Dataset or a file path; "
                            f"the string {inputs[:40]!r} is not an existing file: pass [text]")
        records = predictor.task.read(inputs, require_labels=False)
        return explain_records(predictor.task, records, engine=predictor.engine, method=method or DEFAULT_METHOD)

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
