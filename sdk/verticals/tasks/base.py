"""The task-type interface: records in, typed predictions and metrics out.

A task type follows the scikit-learn estimator contract: the constructor stores configuration only,
``fit`` learns state (attributes ending in ``_``) and returns ``self``, and using a task before
``fit`` (or ``load``) raises :class:`~verticals.errors.NotFittedError`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar, get_origin

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from ..config import DataConfig, RunConfig, validate_section
from ..data.records import RawRecord, check_values, is_in_memory, iter_raw, records_from, source_name
from ..errors import ConfigError, DataError, NotFittedError
from ..plugins.specs import TaskSpec

SelfTask = TypeVar("SelfTask", bound="TaskType")


class Record(BaseModel):
    """Base of every task's record model; remembers the file and line it was read from."""

    # A NaN or infinite number (CSV 'nan', JSON NaN/Infinity) in a record trains silently on garbage.
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    _path: str | None = PrivateAttr(default=None)
    _line: int | None = PrivateAttr(default=None)

    def origin(self) -> tuple[str | None, int | None]:
        return self._path, self._line


class NoOptions(BaseModel):
    """Task types without options of their own."""

    model_config = ConfigDict(extra="forbid")


class Prediction(BaseModel):
    """Base of the task types' prediction models. Where the meaning is the same the field names are too:
    every classification result has ``label`` (the decision) and ``score`` (its probability), whatever
    else a task adds (an intent keeps ``intent``/``confidence`` beside them)."""

    def to_dict(self) -> dict[str, Any]:
        """The prediction as plain JSON values (what ``verticals serve`` and ``predict --json`` give)."""
        return self.model_dump(mode="json")


class Evaluation(BaseModel):
    """What ``evaluate`` returns and ``evaluate --json`` prints."""

    task: str = Field(description="Full task name, e.g. 'finance.sentiment'.")
    n: int = Field(description="Number of evaluated records.")
    metrics: dict[str, float] = Field(description="Metric name -> value.")
    per_label: dict[str, dict[str, float]] = Field(default_factory=dict, description="Per label/type scores.")
    details: dict[str, Any] = Field(default_factory=dict, description="Task-specific extras (e.g. confusion).")


class TaskType(ABC):
    """Base class of every task type (core generic ones and those contributed by packs)."""

    name: ClassVar[str]
    """Registered name, e.g. 'text-classification'."""
    description: ClassVar[str] = ""
    Record: ClassVar[type[Record]]
    """Pydantic model of one input record (with its label, optional at prediction time)."""
    Prediction: ClassVar[type[BaseModel]]
    """Pydantic model of one prediction."""
    DataOptions: ClassVar[type[DataConfig]] = DataConfig
    """Validates the ``data`` config section."""
    Options: ClassVar[type[BaseModel]] = NoOptions
    """Validates the ``task`` config section."""
    metric_names: ClassVar[tuple[str, ...]]
    primary_metric: ClassVar[str]
    greater_is_better: ClassVar[bool] = True
    label_field: ClassVar[str | None] = "label"
    """Record field whose absence makes a record unlabelled (None: the task has no single label field)."""
    default_format: ClassVar[str] = "csv"
    """Format of a file whose extension says none (``data.format=auto``)."""
    supports_trainer_callbacks: ClassVar[bool] = False
    """True when ``fit`` runs ``transformers.Trainer``, so ``callbacks`` and ``training.report_to`` apply."""
    callbacks: Sequence[Any] = ()
    """transformers ``TrainerCallback`` objects given to ``verticals.train``; set before ``fit``."""
    export_unsupported: ClassVar[str] = "its predictions are not computed by one transformer network"
    """Why ``verticals export`` refuses this task type (task types that can export override ``export_extras``)."""

    def __init__(self, config: RunConfig | None = None, *, task_name: str | None = None) -> None:
        self.config = config or RunConfig()
        self.task_name = task_name or self.name
        self.data_options: Any = validate_section(self.DataOptions, self.config.data, "data", self.task_name)
        self.options: Any = validate_section(self.Options, self.config.task, "task", self.task_name)

    # ---- description -------------------------------------------------------------------------
    @classmethod
    def generic_spec(cls) -> TaskSpec:
        """The spec used when the task type is trained directly, without a pack."""
        return TaskSpec(
            name=cls.name,
            task_type=cls.name,
            description=cls.description,
            metrics=list(cls.metric_names),
            primary_metric=cls.primary_metric,
        )

    # ---- data --------------------------------------------------------------------------------
    def field_map(self) -> dict[str, str]:
        """Record field -> column/key in the user's file (from the ``data`` section)."""
        return {}

    def iter_raw(self, path: str | Path, *, progress: Any = None) -> Iterator[RawRecord]:
        """Raw records of a file, one at a time: the one reader behind every verb (task types that read a
        format of their own override this, and streaming, ``read_raw`` and ``read`` all follow)."""
        options = self.data_options
        return iter_raw(path, options.format, options.encoding, default=self.default_format,
                        max_record_bytes=options.max_record_bytes, progress=progress)

    def read_raw(self, path: str | Path) -> list[RawRecord]:
        return list(self.iter_raw(path))

    def read(self, data: Any, *, require_labels: bool = True) -> list[BaseModel]:
        """Validate every record of ``data`` -- a file path, a pandas DataFrame, a ``datasets.Dataset``, a
        list of dicts or records, or (when labels are not required) a list of texts; the first invalid
        record raises :class:`DataError` naming its file and line (or row)."""
        items = records_from(data, self.iter_raw, text=None if require_labels else self.record_from_text,
                             keep=self.Record)
        if not items and require_labels:  # files say so themselves; an empty list or DataFrame here
            raise DataError("no records; expected at least one", path=source_name(data))
        return [self.record_of(item, require_labels=require_labels) for item in items]

    def record_of(self, raw: RawRecord | BaseModel, *, require_labels: bool = True) -> BaseModel:
        """The validated record of one item of :func:`~verticals.data.records.records_from`: file rows through
        ``to_record``, in-memory rows through ``as_record`` (which also takes a task's API field names)."""
        if not isinstance(raw, RawRecord):
            return raw  # an already validated record of this task
        if is_in_memory(raw):
            return self.as_record(raw.data, raw.line, require_labels=require_labels, source=raw.path)
        return self.to_record(raw, require_labels=require_labels)

    def to_record(self, raw: RawRecord, *, require_labels: bool = True) -> BaseModel:
        mapping = self.field_map()
        values: dict[str, Any] = {}
        for field_name in self.Record.model_fields:
            column = mapping.get(field_name, field_name)
            if column in raw.data:
                values[field_name] = raw.data[column]
        for field_name, model_field in self.Record.model_fields.items():
            column = mapping.get(field_name, field_name)
            needed = model_field.is_required() or (require_labels and field_name == self.label_field)
            if needed and column not in raw.data:
                found = ", ".join(map(str, raw.data)) or "none"
                setting = self._setting_for(field_name)
                hint = f"; set {setting}" if setting else ""
                raise DataError(
                    f"missing column '{column}' (found: {found}){hint}", path=raw.path, line=raw.line, field=column
                )
        if require_labels and self.label_field and _is_blank(values.get(self.label_field)):
            raise DataError(
                "empty label; every training/evaluation record needs one",
                path=raw.path,
                line=raw.line,
                field=mapping.get(self.label_field, self.label_field),
            )
        try:
            record = self.Record.model_validate(values)
        except ValidationError as exc:
            err = exc.errors()[0]
            field_name = str(err["loc"][0]) if err["loc"] else None
            column = mapping.get(field_name, field_name) if field_name else None
            raise DataError(_humane(err), path=raw.path, line=raw.line, field=column) from None
        if isinstance(record, Record):
            record._path, record._line = raw.path, raw.line
        return record

    def _setting_for(self, field_name: str) -> str | None:
        for option in self.DataOptions.model_fields:
            if option == f"{field_name}_column":
                return f"data.{option}"
        return None

    def as_record(self, item: Any, index: int = 0, *, require_labels: bool = False,
                  source: str = "<input>") -> BaseModel:
        """Turn API input (a record, a dict, or a raw text string) into a validated record; errors name
        ``source`` and the row ``index`` (from 0). A dict may name a field by its column (``ticket_text`` under
        ``data.text_column=ticket_text``) or by the record's own field name (``text``), the alias that
        ``verticals serve`` documents."""
        if isinstance(item, self.Record):
            return item
        if isinstance(item, str):
            item = self.record_from_text(item)
        if isinstance(item, BaseModel):
            item = item.model_dump()
        if not isinstance(item, dict):
            raise DataError(f"expected a text or an object, got {type(item).__name__}", path=source, line=index)
        item = self._with_columns(item)
        check_values(item, source, index)  # lone surrogates, deep nesting: a DataError here, not a crash later
        return self.to_record(RawRecord(source, index, item), require_labels=require_labels)

    def _with_columns(self, item: dict[str, Any]) -> dict[str, Any]:
        """``item`` with each field given by its own name moved to its column, where the column is absent (a
        name that is some other field's column keeps its meaning)."""
        mapping = self.field_map()
        columns = set(mapping.values())
        renamed = {name: column for name, column in mapping.items()
                   if name != column and name in item and column not in item and name not in columns}
        if not renamed:
            return item
        return {renamed.get(key, key): value for key, value in item.items()}

    def record_from_text(self, text: str) -> dict[str, Any]:
        """How a bare string from the CLI/API becomes a record (text tasks: the text field)."""
        return {self.field_map().get("text", "text"): text}

    def example_record(self) -> dict[str, Any]:
        """One prediction input as the API takes it, without a label: the request example in
        ``verticals serve``'s docs. The default fills the record's required fields (label excluded) with
        placeholders; tasks whose inputs come from configuration or fitted state override it."""
        values: dict[str, Any] = {}
        for name, model_field in self.Record.model_fields.items():
            if name != self.label_field and model_field.is_required():
                values[self.field_map().get(name, name)] = _placeholder(model_field.annotation)
        return values

    def stratify_key(self, record: BaseModel) -> Any | None:
        """Value used to stratify the held-out validation split (None = no stratification)."""
        return getattr(record, self.label_field, None) if self.label_field else None

    def check_split(self, records: Sequence[BaseModel], split: str, raw_path: str | Path | None) -> None:
        """Validate a validation/test split against what ``fit`` learnt (e.g. unseen labels)."""

    # ---- estimator ---------------------------------------------------------------------------
    def prepare(self, train: Sequence[BaseModel]) -> None:
        """Learn cheap vocabulary-like state (e.g. the label set) before validation data is checked."""

    @abstractmethod
    def fit(self: SelfTask, train: Sequence[BaseModel], validation: Sequence[BaseModel]) -> SelfTask:
        """Learn from ``train``, select/early-stop on ``validation``; return ``self``."""

    @abstractmethod
    def predict(self, records: Sequence[BaseModel]) -> list[BaseModel]:
        """Typed predictions, one per record, in input order."""

    @abstractmethod
    def score(self, records: Sequence[BaseModel], predictions: Sequence[BaseModel]) -> Evaluation:
        """Metrics of ``predictions`` against the labels in ``records``."""

    def evaluate(self, records: Sequence[BaseModel]) -> Evaluation:
        return self.score(records, self.predict(records))

    @abstractmethod
    def save(self, directory: Path) -> None:
        """Write learned state as files (safetensors/JSON/faiss; never pickle) into ``directory``."""

    @abstractmethod
    def load_state(self, directory: Path, state: dict[str, Any]) -> None:
        """Restore what ``save`` wrote plus the JSON ``state()`` stored in bundle.json."""

    def state(self) -> dict[str, Any]:
        """JSON-serialisable learned state for bundle.json (labels, thresholds, ...)."""
        return {}

    def majority_baseline(self, train: Sequence[BaseModel],
                          validation: Sequence[BaseModel]) -> tuple[str, dict[str, float]] | None:
        """What always answering the training data's most frequent label scores on ``validation``: a short
        description of that rule and its metrics (None: the task has no such baseline). A model scoring no
        better on its primary metric has learnt nothing a constant would not know."""
        return None

    def metric_notes(self) -> dict[str, str]:
        """Metric name -> its unit or meaning, for metrics that are not a plain share in [0, 1] (e.g.
        ``{'expected_cost': 'EUR per transaction'}``); shown beside the value in reports and model cards.
        Built from configuration only, so it works on an unfitted task."""
        return {}

    def summary(self) -> dict[str, Any]:
        """Extra fields for bundle.json that describe the trained model (precision, parameters...)."""
        return {}

    def export_extras(self, directory: Path) -> dict[str, Any]:
        """Write into ``directory`` what a prediction needs besides the ONNX graph (a retrieval index, a
        knowledge base) and return every decision parameter with its value, plus ``kind``: how the
        exported reference implementation (``verticals/onnx_reference.py``) decodes the graph's outputs.
        Stored as ``decision`` in ``export.json``. Task types that cannot be exported raise, saying why."""
        raise self.export_error()

    def export_error(self) -> ConfigError:
        """The one-line refusal of ``verticals export`` for this task: which task, why, what to do instead."""
        return ConfigError(f"task '{self.task_name}' (task type {self.name}) cannot be exported to ONNX: "
                           f"{self.export_unsupported}; deliver the bundle and serve it with `verticals serve`")

    def embed(self, texts: Sequence[str]) -> Any:
        """``[len(texts), hidden]`` float32 numpy sentence embeddings from the task's fine-tuned encoder."""
        raise ConfigError(f"task '{self.task_name}' (task type {self.name}) has no fine-tuned sentence encoder "
                          f"to embed texts with")

    def use_engine(self, engine: str) -> None:
        """Run inference on ``engine`` ('torch', 'onnx', 'onnx-int8'; see :mod:`verticals.backbones.engines`).
        Tasks whose network is a plain transformer encoder support all three; others only 'torch'."""
        if engine != "torch":
            raise ConfigError(f"task type '{type(self).__name__}' runs on the torch engine only, not '{engine}'")

    @classmethod
    def load(cls: type[SelfTask], directory: Path, config: RunConfig, state: dict[str, Any],
             task_name: str | None = None) -> SelfTask:
        task = cls(config, task_name=task_name)
        task.load_state(directory, state)
        return task

    def check_is_fitted(self, attribute: str = "labels_") -> None:
        if not hasattr(self, attribute):
            raise NotFittedError(
                f"{type(self).__name__} is not fitted yet; call fit() or load a bundle with verticals.load()"
            )


def _is_blank(value: Any) -> bool:
    """A missing label: null or blank text. 0, 0.0 and false are labels (JSON files spell classes that way)."""
    return value is None or (isinstance(value, str) and not value.strip())


EXAMPLE_TEXT = "The parcel arrived two days late and the box was damaged"


def _placeholder(annotation: Any) -> Any:
    """An example value of a record field's type (texts and word lists from one example sentence)."""
    if annotation in (int, float, bool):
        return annotation(1)
    if get_origin(annotation) is list:
        return EXAMPLE_TEXT.split()
    return EXAMPLE_TEXT


def _humane(err: dict[str, Any]) -> str:
    found = err.get("input")
    shown = repr(found) if not isinstance(found, str) or len(found) < 40 else f"{found[:37]!r}..."
    return f"{err['msg']} (found {shown})"
