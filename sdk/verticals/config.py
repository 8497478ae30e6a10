"""Configuration models and the layering rule: pack defaults < config file < ``--set key=value``.

Each option is documented once, in its ``Field(description=...)``. User-written sections forbid unknown
keys so a typo fails loudly; sections that a task type extends (``data``, ``task``) are validated by the
task type's own models.
"""

from __future__ import annotations

import copy
import difflib
import json
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError, option

DEFAULT_BACKBONE = "all-MiniLM-L6-v2"
MAX_THREADS = 1024
"""Upper bound of ``training.num_threads``: far more threads than cores only exhausts memory (100,000 ran out
of memory and panicked in a Rust thread pool)."""
ENGINES = ("auto", "torch", "onnx", "onnx-int8")
"""Inference engines for a loaded bundle (see verticals.backbones.engines); chosen at load/serve time, not training."""


class _Strict(BaseModel):
    # allow_inf_nan=False: `epochs=Infinity` or `learning_rate=NaN` (JSON and YAML both spell them) would
    # train a model whose bundle cannot be used; refuse them where they are written.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class HeadConfig(_Strict):
    """Options of the head put on top of the backbone."""

    pooling: Literal["mean", "cls", "max"] = Field(
        "mean", description="How token states become one vector (sequence heads only)."
    )
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="Dropout before the classifier layer.")


class TrainingConfig(_Strict):
    """Fine-tuning options shared by every transformer task."""

    backbone: str = Field(
        DEFAULT_BACKBONE, description="A registered backbone name, a local Hugging Face model directory, "
        "or a Hub id (org/name) found in the Hugging Face cache (downloaded only when HF_HUB_OFFLINE is unset)."
    )
    strategy: Literal["full", "head-only", "lora"] = Field(
        "full", description="Train every weight, only the head (frozen backbone), or LoRA adapters (peft)."
    )
    learning_rate: float = Field(
        1e-4, gt=0, le=1, description="Peak AdamW learning rate (1e-4 suits the small default MiniLM backbone)."
    )
    head_learning_rate: float | None = Field(
        None, gt=0, le=1, description="Learning rate for the freshly initialised head; defaults to learning_rate."
    )
    epochs: float = Field(3.0, gt=0, le=10_000, description="Maximum number of passes over the training data.")
    min_steps: int | None = Field(
        300, ge=1, le=1_000_000, description=(
            "Small data sets: raise the epoch budget (up to 50 epochs) so training makes at least this many "
            "optimizer steps; early stopping still ends it when validation stops improving. Off (null) when "
            "training.epochs is set by you or by the pack's defaults, which are then taken literally."))
    batch_size: int = Field(32, ge=1, le=65_536, description="Training batch size.")
    eval_batch_size: int = Field(128, ge=1, le=65_536, description="Batch size for evaluation and prediction.")
    weight_decay: float = Field(0.01, ge=0, le=1, description="AdamW weight decay (not applied to biases/norms).")
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="Fraction of steps with linear LR warmup.")
    scheduler: Literal["linear", "cosine", "constant_with_warmup"] = Field(
        "linear", description="Learning-rate schedule after warmup."
    )
    max_grad_norm: float = Field(1.0, gt=0, le=1e6, description="Gradient clipping norm.")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="Label smoothing of the cross-entropy loss.")
    max_length: int = Field(
        128, ge=8, le=32_768,
        description="Maximum tokens per input (longer inputs are truncated); at most the backbone's position "
        "limit (512 for BERT-style models), checked when training starts.",
    )
    seed: int = Field(42, ge=0, le=2**32 - 1, description="Seed for initialisation, shuffling and data splits.")
    early_stopping_patience: int | None = Field(
        2, ge=1, le=10_000, description="Stop after this many epochs without a new best one (a better primary "
        "metric, or the same with a validation loss at least 0.1 % lower); warmup epochs do not count; null = off."
    )
    precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto", description="auto = bf16 autocast where the hardware runs it fast (AMX/AVX512-BF16, CUDA bf16)."
    )
    group_by_length: bool = Field(
        True, description="Batch examples of similar length together so dynamic padding wastes less."
    )
    lora_r: int = Field(8, ge=1, le=4096, description="LoRA rank (strategy=lora).")
    lora_alpha: int = Field(16, ge=1, le=65_536, description="LoRA scaling (strategy=lora).")
    lora_dropout: float = Field(0.1, ge=0, lt=1, description="LoRA dropout (strategy=lora).")
    num_threads: int | None = Field(
        None, ge=1, le=MAX_THREADS,
        description="CPU threads for torch; default: OMP_NUM_THREADS when set (Ray sets it to an actor's CPUs), "
                    "else the number of cores this process may use.",
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
        description="File format: auto (by extension), csv, tsv, jsonl (JSON Lines or a JSON array), conll, "
        "parquet; task types may add more.",
    )
    encoding: str = Field("utf-8", description="Text encoding of the input files.")
    text_column: str = Field("text", description="Column/field holding the input text.")
    label_column: str = Field("label", description="Column/field holding the label.")
    tokens_column: str = Field("tokens", description="Field with the token list (token classification JSONL).")
    tags_column: str = Field("tags", description="Field with the tag list (token classification JSONL).")
    validation_fraction: float = Field(
        0.1, gt=0, lt=0.5, description="Held-out fraction (seeded, stratified) when no --validation is given."
    )
    max_record_bytes: int = Field(
        1 << 20, ge=1024, description="Longest line (one record, or one CoNLL token line) a reader accepts, in "
        "bytes; longer lines are an error, so a binary file or a device such as /dev/zero cannot exhaust memory."
    )

    @model_validator(mode="after")
    def _text_is_not_the_label(self) -> DataConfig:
        if self.text_column == self.label_column:
            raise ValueError(f"data.text_column and data.label_column are both {self.text_column!r}: the model "
                             f"would read its answer as its input; set one of them to the other column")
        return self


class TextAugmentConfig(_Strict):
    """``data.augment`` of text classification: EDA (Wei & Zou, 2019) on the training split only."""

    copies: int = Field(0, ge=0, le=50, description=(
        "Augmented variants added per training record (0 = off); validation and test data are never augmented. "
        "Each variant applies one of data.augment.operations and keeps its source's label."))
    operations: list[Literal["swap", "delete", "insert", "neighbour"]] = Field(
        default_factory=lambda: ["swap", "delete", "insert", "neighbour"], min_length=1, description=(
            "EDA operations to draw from: swap words, delete words, insert in-domain words (from the training "
            "texts), replace words by their nearest neighbours in the backbone's input-embedding space."))
    rate: float = Field(0.1, gt=0, le=0.5, description="Share of a text's words one operation changes (EDA's alpha).")


class TokenAugmentConfig(_Strict):
    """``data.augment`` of token classification: Dai & Adel (2020) on the training split only."""

    copies: int = Field(0, ge=0, le=50, description=(
        "Augmented variants added per training sentence (0 = off); validation and test data are never augmented. "
        "Tags stay aligned with the tokens."))
    operations: list[Literal["mention", "token", "neighbour", "shuffle"]] = Field(
        default_factory=lambda: ["mention", "token"], min_length=1, description=(
            "Operations to draw from: replace a mention by a training mention of the same type, replace a token "
            "by a training token with the same tag, replace a token by an input-embedding neighbour (tag kept), "
            "shuffle tokens inside a mention or a run of O."))
    rate: float = Field(0.3, gt=0, le=1, description="Probability that an operation changes each token (mention).")


class TextDataConfig(DataConfig):
    """The data options of text classification and the packs built on it."""

    augment: TextAugmentConfig = Field(default_factory=TextAugmentConfig, description="Training-data augmentation.")


class TokenDataConfig(DataConfig):
    """The data options of token classification and the packs built on it."""

    augment: TokenAugmentConfig = Field(default_factory=TokenAugmentConfig, description="Training-data augmentation.")


class RunConfig(BaseModel):
    """The fully layered configuration of one training run, as stored in ``bundle.json``."""

    model_config = ConfigDict(extra="forbid")

    training: TrainingConfig = Field(default_factory=TrainingConfig, description="Fine-tuning options.")
    data: dict[str, Any] = Field(default_factory=dict, description="Validated by the task's DataConfig.")
    task: dict[str, Any] = Field(default_factory=dict, description="Validated by the task's Options.")
    labels: list[str] = Field(default_factory=list, description="Label set; empty = learnt from data.")

    @field_validator("labels")
    @classmethod
    def _distinct_labels(cls, value: list[str]) -> list[str]:
        return distinct_labels(value)


def distinct_labels(labels: Sequence[str]) -> list[str]:
    """Labels in Unicode NFC (``café`` typed two ways is one label), refusing duplicates: a repeated label
    would give two outputs one name, and scores would lose a class."""
    normalised = [unicodedata.normalize("NFC", label) if isinstance(label, str) else label for label in labels]
    seen: dict[str, str] = {}
    for original, label in zip(labels, normalised):
        if label in seen:
            same = "" if seen[label] == original else (f" ({seen[label]!r} and {original!r} are the same text "
                                                        f"in different Unicode normalisations)")
            raise ValueError(f"duplicate label {label!r}{same}; each label must appear once")
        seen[label] = original
    return normalised


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Return ``base`` updated recursively by ``override`` (neither is modified)."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


# ---- per-backbone defaults ------------------------------------------------------------------------------
BASE_SUFFIX = "@base"
BASE_HIDDEN_SIZE = 768
"""A backbone whose config says ``hidden_size`` (``dim``, ``d_model``) is at least this is "base-size"."""
CORE_BASE_DEFAULTS: dict[str, Any] = {"training": {"learning_rate": 2e-5}}
"""What the core changes for a base-size backbone: the learning rates tuned for the small default MiniLM
(1e-4 and the packs' 3e-4..8e-5) overshoot a 110M model; 2e-5 is the low end of BERT's recommended range
(2e-5..5e-5), safe for the few epochs the packs run."""


def split_defaults(defaults: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A pack's defaults as (plain, base-size variant). ``{"training": {...}, "training@base": {...}}``: a
    ``SECTION@base`` entry applies on top of ``SECTION`` (and of :data:`CORE_BASE_DEFAULTS`) only when the
    backbone is base-size; the user's config file and ``--set`` still win over both."""
    plain = {key: value for key, value in defaults.items() if not key.endswith(BASE_SUFFIX)}
    variant = {key[: -len(BASE_SUFFIX)]: value for key, value in defaults.items() if key.endswith(BASE_SUFFIX)}
    return plain, deep_merge(CORE_BASE_DEFAULTS, variant)


def hidden_size(model_dir: str | Path) -> int | None:
    """The width a Hugging Face model directory's config.json declares (None when it names none)."""
    try:
        values = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{Path(model_dir) / 'config.json'}: unreadable backbone config ({exc})") from None
    for key in ("hidden_size", "dim", "d_model"):
        if isinstance(values.get(key), int):
            return int(values[key])
    return None


def parse_set(assignment: str) -> dict[str, Any]:
    """Turn ``training.learning_rate=3e-5`` into ``{"training": {"learning_rate": 3e-5}}``.

    Values are parsed as JSON when they are valid JSON (numbers, true/false/null, lists), else kept as
    strings, so ``data.text_column=utterance`` needs no quotes.
    """
    key, sep, raw = assignment.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"{option('overrides', cli='--set')} expects KEY=VALUE, got '{assignment}'")
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    parts = key.strip().split(".")
    if parts[0] not in RunConfig.model_fields:
        sections = ", ".join(RunConfig.model_fields)
        close = difflib.get_close_matches(parts[0], list(RunConfig.model_fields), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ConfigError(f"{option('overrides', cli='--set')} {key}: unknown section '{parts[0]}'; {hint}expected "
                          f"one of: {sections}")
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


def _options_at(model: type[BaseModel] | None, path: Sequence[Any]) -> list[str]:
    """Names of the options of the (sub)model that ``path`` leads to inside ``model`` ([] when unknown)."""
    for part in path:
        field = model.model_fields.get(str(part)) if model is not None else None
        annotation = field.annotation if field is not None else None
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return list(model.model_fields) if model is not None else []


def unknown_option(name: str, options: Sequence[str]) -> str:
    """'unknown option training.epoch; did you mean training.epochs?' (else the section's options)."""
    section, _, key = name.rpartition(".")
    prefix = f"{section}." if section else ""
    close = difflib.get_close_matches(key, list(options), n=1, cutoff=0.6)
    if close:
        return f"unknown option {name}; did you mean {prefix}{close[0]}?"
    listed = ", ".join(options) if options else "none"
    return f"unknown option {name}; the options of '{section or '(top level)'}' are: {listed}"


def _received(name: str, err: Any) -> str:
    """What a list/dict option received as text, with the JSON it needs: ``--set data.numeric_columns=[amount]``
    (the shell ate the quotes, or none were written) is not JSON, so it arrives as the text '[amount]'."""
    value = err.get("input")
    if not isinstance(value, str) or err["type"] not in ("list_type", "dict_type", "tuple_type", "set_type"):
        return ""
    shown = value if len(value) <= 80 else value[:77] + "..."
    hint = ""
    if value.startswith("[") and value.endswith("]"):
        items = [item.strip().strip("'\"") for item in value[1:-1].split(",") if item.strip()]
        fixed = json.dumps([float(i) if _is_number(i) else i for i in items])
        hint = (f"; a list is JSON with quoted texts: {_assignment(f'{name}={fixed}')}")
    elif not value.startswith(("[", "{")):
        hint = f"; write a JSON list, e.g. {_assignment(f'{name}=[{json.dumps(shown)}]')}"
    return f" (received the text {shown!r}, which is not JSON{hint})"


def _assignment(text: str) -> str:
    """A KEY=VALUE override as the caller writes it: on the command line in single quotes (so that the shell
    keeps the JSON's double quotes), in Python as an item of ``overrides``."""
    if option("overrides", cli="--set") == "--set":
        return f"--set '{text}', in single quotes so that the shell keeps them"
    return f"overrides=[{text!r}]"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def format_validation_error(exc: ValidationError, where: str, model: type[BaseModel] | None = None,
                            section: str | None = None, task: str | None = None) -> str:
    """One line per problem, each naming the option path, for the CLI boundary.

    ``model`` is the validated model (to suggest names for unknown options), ``section`` the config
    section it validates (prefixed to option paths), ``task`` the task whose options ``verticals config``
    lists.
    """
    problems = []
    unknown = False
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        name = ".".join(([section] if section else []) + loc) or "(root)"
        if err["type"] == "extra_forbidden":
            unknown = True
            problems.append(unknown_option(name, _options_at(model, loc[:-1])))
        else:
            problems.append(f"{name}: {err['msg']}{_received(name, err)}")
    message = f"{where}: " + "; ".join(problems)
    if unknown:
        message += f" (`verticals config {task or 'TASK'}` lists every option with its description)"
    return message


def user_options(config_file: str | Path | dict[str, Any] | None,
                 overrides: Sequence[str] | dict[str, Any] | None) -> dict[str, Any]:
    """What the user chose, unvalidated: a config file (or its dict) < overrides (``--set`` strings or a dict)."""
    user: dict[str, Any] = {}
    if isinstance(config_file, dict):
        user = copy.deepcopy(config_file)
    elif config_file is not None:
        user = read_config_file(config_file)
    if isinstance(overrides, dict):
        return deep_merge(user, overrides)
    for assignment in overrides or []:
        user = deep_merge(user, parse_set(assignment))
    return user


def resolve_config(
    defaults: dict[str, Any] | None = None,
    config_file: str | Path | None = None,
    overrides: list[str] | dict[str, Any] | None = None,
    task: str | None = None,
) -> RunConfig:
    """Layer pack defaults < config file < overrides into a validated :class:`RunConfig`."""
    user = user_options(config_file, overrides)
    layered = deep_merge(copy.deepcopy(defaults or {}), user)
    # An epoch count a pack or the user chose is meant literally: the small-data rule (training.min_steps)
    # only stretches the core's generic default, unless whoever set the epochs also set min_steps.
    for layer in (user, defaults or {}):
        training = layer.get("training")
        if isinstance(training, dict) and "epochs" in training:
            if "min_steps" not in training:
                layered["training"] = {**layered["training"], "min_steps": None}
            break
    try:
        return RunConfig.model_validate(layered)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, "invalid configuration", RunConfig, task=task)) from None


def validate_section(model: type[BaseModel], values: dict[str, Any], section: str, task: str | None = None) -> Any:
    """Validate a task-specific section (``data`` or ``task``) with the task type's model."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, f"invalid '{section}' configuration", model, section,
                                                  task)) from None
