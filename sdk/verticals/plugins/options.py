"""What ``verticals config TASK`` shows: every option of a task with its type, resolved default, bounds and
description, read from the pydantic models (their ``Field(description=...)`` is the one place an option is
documented)."""

from __future__ import annotations

import types
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from ..config import RunConfig, deep_merge, resolve_config, split_defaults, validate_section
from .manager import get_catalog


def type_name(annotation: Any) -> str:
    """A short readable type: 'float', 'int | null', "'full' | 'lora'", 'list[str]'."""
    origin = get_origin(annotation)
    if origin is Literal:
        return " | ".join(repr(value) for value in get_args(annotation))
    if origin in (Union, types.UnionType):
        return " | ".join(type_name(arg) for arg in get_args(annotation))
    if origin in (list, tuple, set, dict):
        return f"{origin.__name__}[{', '.join(type_name(arg) for arg in get_args(annotation))}]"
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


_BOUNDS = ((annotated_types.Gt, "gt", ">"), (annotated_types.Ge, "ge", ">="), (annotated_types.Lt, "lt", "<"),
           (annotated_types.Le, "le", "<="), (annotated_types.MinLen, "min_length", "length >="))


def bounds(info: FieldInfo) -> str:
    """The field's numeric/length constraints as text, e.g. '> 0, <= 1'."""
    parts = []
    for item in info.metadata:
        for kind, attribute, symbol in _BOUNDS:
            if isinstance(item, kind):
                parts.append(f"{symbol} {getattr(item, attribute)}")
    return ", ".join(parts)


def _walk(model: type[BaseModel], values: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    options = []
    for name, info in model.model_fields.items():
        path = f"{prefix}.{name}" if prefix else name
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):  # a nested section (training.head)
            options.extend(_walk(annotation, values.get(name) or {}, path))
            continue
        default = info.get_default(call_default_factory=True)
        if isinstance(default, BaseModel):
            default = default.model_dump(mode="json")
        value = values.get(name, default)
        options.append({"name": path, "type": type_name(annotation), "default": value, "bounds": bounds(info),
                        "description": info.description or "", "pack_default": value != default})
    return options


def describe_task(task: str) -> dict[str, Any]:
    """The resolved defaults of ``task`` (pack defaults applied) and every option it accepts."""
    catalog = get_catalog()
    spec, pack_name = catalog.task(task)
    task_cls = catalog.task_types.get(spec.task_type)
    # the plain defaults: a SECTION@base variant applies only once a base-size backbone is chosen
    run = resolve_config(deep_merge({"labels": list(spec.labels)}, split_defaults(spec.defaults)[0]), task=task)
    data = validate_section(task_cls.DataOptions, run.data, "data", task)
    options = validate_section(task_cls.Options, run.task, "task", task)
    resolved = {"training": run.training.model_dump(mode="json"), "data": data.model_dump(mode="json"),
                "task": options.model_dump(mode="json"), "labels": list(run.labels)}
    labels_field = RunConfig.model_fields["labels"]
    sections = {
        "training": _walk(type(run.training), resolved["training"], "training"),
        "data": _walk(task_cls.DataOptions, resolved["data"], "data"),
        "task": _walk(task_cls.Options, resolved["task"], "task"),
        "labels": [{"name": "labels", "type": type_name(labels_field.annotation), "default": resolved["labels"],
                    "bounds": "", "description": labels_field.description or "",
                    "pack_default": bool(resolved["labels"])}],
    }
    from .search_space import describe_space, layered_space

    return {"task": task, "task_type": spec.task_type, "pack": pack_name, "description": spec.description,
            "defaults": resolved, "options": sections,
            "tune": describe_space(layered_space(spec, task_cls))}  # what `verticals tune` searches by default
