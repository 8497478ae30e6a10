"""Configuration models and the layering rule: pack defaults < config file < ``--set key=value``.

Each option is documented once, in its ``Field(description=...)``. User-written sections forbid unknown
keys so a typo fails loudly; sections that a task type extends (``data``, ``task``) are validated by the
task type's own models.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import ConfigError

DEFAULT_BACKBONE = "all-MiniLM-L6-v2"
ENGINES = ("auto", "torch", "onnx", "onnx-int8")
"""Inference engines for a loaded bundle (see verticals.engines); chosen at load/serve time, not training."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class HeadConfig(_Strict):
    """Options of the head put on top of the backbone."""

    pooling: Literal["mean", "cls", "max"] = Field(
        "mean", description="How token states become one vector (sequence heads only)."
    )
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="Dropout before the classifier layer.")


class TrainingConfig(_Strict):
    """Fine-tuning options shared by every transformer task."""

    backbone: str = Field(
        DEFAULT_BACKBONE, description="A registered backbone name or a local Hugging Face model directory."
    )
    strategy: Literal["full", "head-only", "lora"] = Field(
        "full", description="Train every weight, only the head (frozen backbone), or LoRA adapters (peft)."
    )
    learning_rate: float = Field(
        1e-4, gt=0, description="Peak AdamW learning rate (1e-4 suits the small default MiniLM backbone)."
    )
    head_learning_rate: float | None = Field(
        None, gt=0, description="Learning rate for the freshly initialised head; defaults to learning_rate."
    )
    epochs: float = Field(3.0, gt=0, description="Maximum number of passes over the training data.")
    batch_size: int = Field(32, ge=1, description="Training batch size.")
    eval_batch_size: int = Field(128, ge=1, description="Batch size for evaluation and prediction.")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay (not applied to biases/norms).")
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="Fraction of steps with linear LR warmup.")
    scheduler: Literal["linear", "cosine", "constant_with_warmup"] = Field(
        "linear", description="Learning-rate schedule after warmup."
    )
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="Label smoothing of the cross-entropy loss.")
    max_length: int = Field(128, ge=8, description="Maximum tokens per input (longer inputs are truncated).")
    seed: int = Field(42, description="Seed for initialisation, shuffling and data splits.")
    early_stopping_patience: int | None = Field(
        2, ge=1, description="Stop after this many epochs without improving the primary metric; null = off."
    )
    precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto", description="auto = bf16 autocast where the hardware runs it fast (AMX/AVX512-BF16, CUDA bf16)."
    )
    group_by_length: bool = Field(
        True, description="Batch examples of similar length together so dynamic padding wastes less."
    )
    lora_r: int = Field(8, ge=1, description="LoRA rank (strategy=lora).")
    lora_alpha: int = Field(16, ge=1, description="LoRA scaling (strategy=lora).")
    lora_dropout: float = Field(0.1, ge=0, lt=1, description="LoRA dropout (strategy=lora).")
    num_threads: int | None = Field(
        None, ge=1, description="CPU threads for torch; default is the number of physical cores available."
    )
    torch_compile: bool = Field(False, description="Compile the model with torch.compile (measure first).")
    trainer: str = Field("transformers", description="Registered trainer that runs fit/evaluate/predict.")
    checkpoint_dir: str | None = Field(
        None, description="Where per-epoch checkpoints go; default OUTPUT.checkpoints beside the bundle."
    )
    keep_checkpoints: bool = Field(False, description="Keep the checkpoint directory after training.")
    report_to: list[str] = Field(default_factory=list, description=(
        "Experiment trackers that receive the training logs, passed to transformers' integrations: "
        "tensorboard, mlflow, wandb, ... ('none' = off, 'all' = every installed one); a list or a "
        "comma-separated string. Configure them as usual (MLFLOW_TRACKING_URI, ...); tasks not trained by "
        "transformers.Trainer reject it."))
    logging_dir: str | None = Field(
        None, description="Where TensorBoard writes event files (report_to=tensorboard); default OUTPUT.runs "
                          "beside the bundle, or TENSORBOARD_LOGGING_DIR when set.")
    head: HeadConfig = Field(default_factory=HeadConfig, description="Head options.")

    @field_validator("report_to", mode="before")
    @classmethod
    def _report_to_list(cls, value: Any) -> Any:
        """'tensorboard,mlflow' and 'none' as on transformers' command lines; a list as in a config file."""
        if value is None:
            return []
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list) and [v for v in value if v != "none"] != value:
            value = [v for v in value if v != "none"]
        return value


class DataConfig(_Strict):
    """Where fields live in the user's files. Task types subclass this to add their own fields."""

    format: str = Field(
        "auto",
        description="File format: auto (by extension), csv, tsv, jsonl, conll; task types may add more.",
    )
    encoding: str = Field("utf-8", description="Text encoding of the input files.")
    text_column: str = Field("text", description="Column/field holding the input text.")
    label_column: str = Field("label", description="Column/field holding the label.")
    tokens_column: str = Field("tokens", description="Field with the token list (token classification JSONL).")
    tags_column: str = Field("tags", description="Field with the tag list (token classification JSONL).")
    validation_fraction: float = Field(
        0.1, gt=0, lt=0.5, description="Held-out fraction (seeded, stratified) when no --validation is given."
    )


class RunConfig(BaseModel):
    """The fully layered configuration of one training run, as stored in ``bundle.json``."""

    model_config = ConfigDict(extra="forbid")

    training: TrainingConfig = Field(default_factory=TrainingConfig)
    data: dict[str, Any] = Field(default_factory=dict, description="Validated by the task's DataConfig.")
    task: dict[str, Any] = Field(default_factory=dict, description="Validated by the task's Options.")
    labels: list[str] = Field(default_factory=list, description="Label set; empty = learnt from data.")


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Return ``base`` updated recursively by ``override`` (neither is modified)."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def parse_set(assignment: str) -> dict[str, Any]:
    """Turn ``training.learning_rate=3e-5`` into ``{"training": {"learning_rate": 3e-5}}``.

    Values are parsed as JSON when they are valid JSON (numbers, true/false/null, lists), else kept as
    strings, so ``data.text_column=utterance`` needs no quotes.
    """
    key, sep, raw = assignment.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects KEY=VALUE, got '{assignment}'")
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    parts = key.strip().split(".")
    if parts[0] not in RunConfig.model_fields:
        sections = ", ".join(RunConfig.model_fields)
        raise ConfigError(f"--set {key}: unknown section '{parts[0]}'; expected one of: {sections}")
    nested: dict[str, Any] = {parts[-1]: value}
    for part in reversed(parts[:-1]):
        nested = {part: nested}
    return nested


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a JSON (or, when PyYAML is installed, YAML) config file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror})") from None
    if path.suffix in {".yaml", ".yml"}:
        try:
            import yaml  # type: ignore[import-untyped]
        except ImportError:
            raise ConfigError(f"{path}: YAML config needs PyYAML; use a .json file instead") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: config must be a mapping of sections, got {type(data).__name__}")
    return data


def format_validation_error(exc: ValidationError, where: str) -> str:
    """One line per problem, each naming the option path, for the CLI boundary."""
    problems = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        problems.append(f"{loc}: {err['msg']}")
    return f"{where}: " + "; ".join(problems)


def resolve_config(
    defaults: dict[str, Any] | None = None,
    config_file: str | Path | None = None,
    overrides: list[str] | dict[str, Any] | None = None,
) -> RunConfig:
    """Layer pack defaults < config file < overrides into a validated :class:`RunConfig`."""
    layered = copy.deepcopy(defaults or {})
    if config_file is not None:
        layered = deep_merge(layered, read_config_file(config_file))
    if isinstance(overrides, dict):
        layered = deep_merge(layered, overrides)
    else:
        for assignment in overrides or []:
            layered = deep_merge(layered, parse_set(assignment))
    try:
        return RunConfig.model_validate(layered)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, "invalid configuration")) from None


def validate_section(model: type[BaseModel], values: dict[str, Any], section: str) -> Any:
    """Validate a task-specific section (``data`` or ``task``) with the task type's model."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, f"invalid '{section}' configuration")) from None
