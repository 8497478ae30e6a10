"""The hooks a Verticals plugin can implement.

Every hook receives a ``register`` callback and returns nothing; the plugin manager calls each
plugin's implementation separately, so one failing plugin is reported and skipped without affecting the
others. The core's own task types, heads, backbones and trainers register through these same hooks
(see ``verticals.plugins.builtins``). Hooks only ever gain optional arguments, so old plugins keep working.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .specs import PackSpec

hookspec = pluggy.HookspecMarker("verticals")
hookimpl = pluggy.HookimplMarker("verticals")


@hookspec
def register_packs(register: Callable[[PackSpec], None]) -> None:
    """Register domain packs: call ``register(PackSpec(...))`` once per pack.

    Runs when the catalog is first built. A pack name registered twice is an error naming both
    distributions. Each task in the pack must name a task type registered by some plugin.
    """


@hookspec
def register_task_types(register: Callable[[str, type[Any]], None]) -> None:
    """Register task types: call ``register(name, TaskTypeSubclass)``.

    Runs when the catalog is first built, before packs are checked. Generic names ('text-classification')
    belong to the core; packs use dotted names ('finance.fraud').
    """


@hookspec
def register_heads(register: Callable[[str, type[Any]], None]) -> None:
    """Register heads: call ``register(name, HeadSubclass)``; a task type refers to its head by name.

    Runs when the catalog is first built.
    """


@hookspec
def register_backbones(register: Callable[[str, Callable[[], str]], None]) -> None:
    """Register named backbones: call ``register(name, resolve)`` where ``resolve()`` returns a local
    Hugging Face model directory (no network). ``--backbone NAME`` then works for that name.

    Runs when the catalog is first built; ``resolve`` runs only when the backbone is used.
    """


@hookspec
def register_trainers(register: Callable[[str, type[Any]], None]) -> None:
    """Register trainers: call ``register(name, TrainerSubclass)``; ``training.trainer=NAME`` selects one.

    Runs when the catalog is first built.
    """
