"""The core's own task types, heads, backbones and trainers, registered through the public hooks."""

from __future__ import annotations

from functools import partial

from ..backbones.loading import embedded_minilm_path
from ..backbones.pins import NAMED_BACKBONES
from ..heads import SequenceClassificationHead, TokenClassificationHead
from ..tasks import TextClassificationTask, TokenClassificationTask
from ..trainers import TransformersTrainer
from .hookspecs import hookimpl


@hookimpl
def register_task_types(register):  # type: ignore[no-untyped-def]
    register(TextClassificationTask.name, TextClassificationTask)
    register(TokenClassificationTask.name, TokenClassificationTask)


@hookimpl
def register_heads(register):  # type: ignore[no-untyped-def]
    register("sequence-classification", SequenceClassificationHead)
    register("token-classification", TokenClassificationHead)


@hookimpl
def register_backbones(register):  # type: ignore[no-untyped-def]
    register("all-MiniLM-L6-v2", embedded_minilm_path)
    # fetchable backbones resolve to their verified cache only; nothing is downloaded here
    for name in NAMED_BACKBONES:
        register(name, partial(_fetched_path, name))


def _fetched_path(name: str) -> str:
    from ..backbones.named import cached_path

    return str(cached_path(name))


@hookimpl
def register_trainers(register):  # type: ignore[no-untyped-def]
    register("transformers", TransformersTrainer)
