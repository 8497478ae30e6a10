"""Pack and task specifications: what a domain pack declares."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class TaskSpec(BaseModel):
    """One trainable task offered by a pack (or a generic task type offered by the core)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Task name within the pack, e.g. 'sentiment' (full name 'finance.sentiment').")
    task_type: str = Field(description="Registered task type that implements it, e.g. 'text-classification'.")
    description: str = Field("", description="One line shown by `verticals packs`.")
    labels: list[str] = Field(default_factory=list, description="Default labels; empty = taken from data.")
    label_names: dict[str, str] = Field(
        default_factory=dict,
        description="Names a client reads in reports and model cards for labels stored as codes, e.g. "
        "{'0': 'legitimate', '1': 'fraud'}; labels not listed are shown as they are.",
    )
    metrics: list[str] = Field(description="Metric names reported by evaluate.")
    primary_metric: str = Field(description="Metric used for early stopping and model selection.")
    defaults: dict[str, Any] = Field(
        default_factory=dict, description="Config layered under the user's: {'training': {...}, 'task': {...}}."
    )
    tune: dict[str, Any] = Field(
        default_factory=dict, description="Search space of `verticals tune` for this task, layered over the core's "
        "default: {'task.OPTION': {'type': 'float', 'low': ..., 'high': ...}, ...}; null drops a core parameter "
        "(see verticals.workshop.tune)."
    )

    @model_validator(mode="after")
    def _primary_is_listed(self) -> TaskSpec:
        if self.primary_metric not in self.metrics:
            raise ValueError(f"primary_metric '{self.primary_metric}' is not in metrics {self.metrics}")
        unknown = sorted(set(self.label_names) - set(self.labels)) if self.labels else []
        if unknown:
            raise ValueError(f"label_names names labels {unknown} that are not in labels {self.labels}")
        return self


class PackSpec(BaseModel):
    """A domain pack: a named, versioned bundle of tasks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Pack name, the prefix of its task names.")
    version: str = Field(description="The pack distribution's version.")
    description: str = Field("", description="One line shown by `verticals packs`.")
    tasks: list[TaskSpec] = Field(description="Tasks the pack offers.")

    def task(self, name: str) -> TaskSpec:
        for spec in self.tasks:
            if spec.name == name:
                return spec
        raise KeyError(name)
