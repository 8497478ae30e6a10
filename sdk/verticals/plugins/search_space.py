"""The search space of ``verticals tune``: the core's default for transformer tasks, the parameters a pack
declares (``TaskSpec.tune``) and the user's ``tune:`` config section, layered in that order.

Kept apart from :mod:`verticals.workshop.tune` so that ``verticals config TASK`` can show the space without
importing Optuna."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from ..config import format_validation_error
from ..errors import ConfigError


class _Param(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class FloatParam(_Param):
    """A real-valued option, uniform (or log-uniform) between ``low`` and ``high``."""

    type: Literal["float"] = "float"
    low: float = Field(description="Smallest value tried.")
    high: float = Field(description="Largest value tried.")
    log: bool = Field(False, description="Sample uniformly in log space (learning rates).")

    @model_validator(mode="after")
    def _range(self) -> FloatParam:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"log=true needs low > 0, got {self.low}")
        return self

    def values(self) -> list[Any]:
        return [self.low, self.high]

    def text(self) -> str:
        return f"{'log-uniform' if self.log else 'uniform'} [{self.low:g}, {self.high:g}]"


class IntParam(_Param):
    """An integer option between ``low`` and ``high`` (both included)."""

    type: Literal["int"] = "int"
    low: int = Field(description="Smallest value tried.")
    high: int = Field(description="Largest value tried.")
    step: int = Field(1, ge=1, description="Spacing of the values tried.")

    @model_validator(mode="after")
    def _range(self) -> IntParam:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        return self

    def values(self) -> list[Any]:
        return [self.low, self.high]

    def text(self) -> str:
        return f"integer [{self.low}, {self.high}]" + (f" step {self.step}" if self.step > 1 else "")


class CategoricalParam(_Param):
    """An option taking one of the listed values."""

    type: Literal["categorical"] = "categorical"
    choices: list[str | int | float | bool | None] = Field(min_length=2, description="The values tried.")

    def values(self) -> list[Any]:
        return list(self.choices)

    def text(self) -> str:
        return "one of " + ", ".join(map(str, self.choices))


Param = Annotated[FloatParam | IntParam | CategoricalParam, Field(discriminator="type")]
_PARAM = TypeAdapter(Param)


class TuneConfig(BaseModel):
    """The ``tune:`` section of a ``--config`` file (ignored by every verb but ``tune``)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    space: dict[str, Param | None] = Field(default_factory=dict, description=(
        "Parameters searched, by option path ('training.learning_rate', 'task.pseudo_unknown_mix'), each "
        "{type: float|int|categorical, low, high, log} or {type: categorical, choices: [...]}; layered over the "
        "core's and the pack's space; null drops a parameter. An option fixed with --set is not searched."))
    pruning: bool = Field(True, description="Stop unpromising trials early (median pruner on the per-epoch "
                                            "validation value of the task's primary metric).")
    prune_from_epoch: int = Field(2, ge=1, le=10_000, description="First epoch at which a trial may be pruned.")
    pruner_startup_trials: int = Field(3, ge=0, le=10_000, description=(
        "Trials that run to the end before pruning starts (the median needs a few complete curves)."))
    startup_trials: int = Field(4, ge=1, le=10_000, description=(
        "Random trials before the TPE sampler starts modelling the results."))
    seed: int = Field(42, ge=0, le=2**32 - 1, description=(
        "Sampler seed; trial N is sampled with seed + N, so workers sharing a study never draw the same "
        "parameters and a rerun is reproducible."))
    heartbeat_seconds: int = Field(30, ge=1, le=86_400, description=(
        "Each running trial writes a heartbeat this often; a trial silent for twice as long (its process was "
        "killed) is marked failed and the study carries on without it."))


# Ranges around what the packs chose by hand on the embedded MiniLM (lr 8e-5..1e-4, 6..10 epochs, batch 16..32).
# Epochs are an upper bound: early stopping still ends a trial when validation stops improving.
CORE_SPACE: dict[str, dict[str, Any]] = {
    "training.learning_rate": {"type": "float", "low": 1e-5, "high": 3e-4, "log": True},
    "training.epochs": {"type": "int", "low": 2, "high": 8},
    "training.batch_size": {"type": "categorical", "choices": [8, 16, 32]},
    "training.warmup_ratio": {"type": "float", "low": 0.0, "high": 0.2},
    "training.weight_decay": {"type": "float", "low": 0.0, "high": 0.1},
    "training.head.dropout": {"type": "float", "low": 0.0, "high": 0.3},
    "training.strategy": {"type": "categorical", "choices": ["full", "head-only", "lora"]},
}
"""The default space of every task trained by ``transformers.Trainer`` (tasks with their own loop start from
what their pack declares)."""


def parse_param(name: str, value: Any, where: str) -> Any:
    """One validated parameter; a ConfigError naming ``where`` and the option."""
    if not isinstance(name, str) or name.count(".") < 1 or name.split(".")[0] not in ("training", "data", "task"):
        raise ConfigError(f"{where}: '{name}' is not an option path; expected SECTION.OPTION such as "
                          f"training.learning_rate or task.pseudo_unknown_mix")
    if isinstance(value, BaseModel):
        return value
    try:
        return _PARAM.validate_python(value)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, f"{where}: invalid parameter {name}")) from None


def read_tune_config(values: Any, where: str = "tune") -> TuneConfig:
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping (space, pruning, ...), got {type(values).__name__}")
    try:
        return TuneConfig.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, f"invalid '{where}' configuration", TuneConfig,
                                                  where)) from None


def layered_space(spec: Any, task_cls: type, tune: TuneConfig | None = None) -> dict[str, Any]:
    """Core default (transformer tasks) < the pack's ``TaskSpec.tune`` < the user's ``tune.space``."""
    space: dict[str, Any] = {}
    if getattr(task_cls, "supports_trainer_callbacks", False):
        space.update({name: parse_param(name, value, "core search space") for name, value in CORE_SPACE.items()})
    for layer, where in ((getattr(spec, "tune", {}) or {}, f"the search space task {spec.name} declares"),
                         ((tune.space if tune else {}), "tune.space")):
        for name, value in layer.items():
            if value is None:
                space.pop(name, None)
            else:
                space[name] = parse_param(name, value, where)
    return space


def flatten(nested: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'training': {'head': {'dropout': 0.1}}} -> {'training.head.dropout': 0.1}."""
    flat: dict[str, Any] = {}
    for key, value in nested.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            flat.update(flatten(value, path))
        else:
            flat[path] = value
    return flat


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """{'training.head.dropout': 0.1} -> {'training': {'head': {'dropout': 0.1}}}."""
    nested: dict[str, Any] = {}
    for path, value in flat.items():
        node = nested
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def describe_space(space: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows for ``verticals config``: option path, kind and range."""
    return [{"name": name, "type": param.type, "range": param.text(), **param.model_dump(exclude={"type"})}
            for name, param in space.items()]
