"""Plugin discovery (the ``verticals`` entry-point group) and the catalog built from the hooks."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from ..errors import ConfigError, PluginError, PluginWarning
from . import hookspecs
from .registry import Registry
from .specs import PackSpec, TaskSpec

ENTRY_POINT_GROUP = "verticals"
BUILTINS = "verticals.plugins.builtins"
PLUGINS_ENV = "VERTICALS_PLUGINS"
"""Comma-separated entry-point names to load; unset = all installed, empty string = none."""


@dataclass
class BrokenPlugin:
    name: str
    distribution: str
    error: str


@dataclass
class Catalog:
    """Everything the loaded plugins registered, looked up by name with helpful errors."""

    packs: Registry[PackSpec] = field(default_factory=lambda: Registry("pack"))
    task_types: Registry[type] = field(default_factory=lambda: Registry("task type"))
    heads: Registry[type] = field(default_factory=lambda: Registry("head"))
    backbones: Registry[Callable[[], str]] = field(default_factory=lambda: Registry("backbone"))
    trainers: Registry[type] = field(default_factory=lambda: Registry("trainer"))
    broken: list[BrokenPlugin] = field(default_factory=list)

    def task(self, full_name: str) -> tuple[TaskSpec, str | None]:
        """Resolve ``pack.task`` or a generic task type name to its spec and pack name."""
        if "." in full_name:
            pack_name, _, task_name = full_name.partition(".")
            if pack_name in self.packs:
                pack = self.packs.get(pack_name)
                try:
                    return pack.task(task_name), pack_name
                except KeyError:
                    pass
        elif full_name in self.task_types:
            task_type = self.task_types.get(full_name)
            return task_type.generic_spec(), None
        available = ", ".join(self.task_names()) or "none"
        import difflib

        close = difflib.get_close_matches(full_name, self.task_names(), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"no task '{full_name}'{self.not_loaded(full_name.partition('.')[0]) or hint} "
                          f"available: {available}")

    def not_loaded(self, pack_name: str) -> str:
        """Why a name may be missing: the plugins that failed to load, each with its reason ('; ...;'), the one
        named ``pack_name`` alone when it is among them; '' when every plugin loaded. The final error then says
        it, not only the warning printed when the catalog was built."""
        named = [item for item in self.broken if item.name == pack_name] or self.broken
        if not named:
            return ""
        shown = "; ".join(f"plugin '{item.name}' ({item.distribution}) failed to load: {item.error}"
                          for item in named[:3])
        return f"; {shown}{'; ...' if len(named) > 3 else ''};"

    def task_names(self) -> list[str]:
        generic = [name for name in self.task_types.names() if "." not in name]
        packed = [f"{p}.{t.name}" for p in self.packs.names() for t in self.packs.get(p).tasks]
        return generic + packed


def _distribution_name(entry_point: importlib.metadata.EntryPoint) -> str:
    dist = getattr(entry_point, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else entry_point.value


def _allowed_plugins() -> set[str] | None:
    raw = os.environ.get(PLUGINS_ENV)
    if raw is None:
        return None
    return {name.strip() for name in raw.split(",") if name.strip()}


class PluginManager(pluggy.PluginManager):
    """pluggy's manager plus the distribution each entry-point plugin came from (for messages)."""

    def __init__(self) -> None:
        super().__init__("verticals")
        self.sources: dict[str, str] = {}


def create_plugin_manager(load_entry_points: bool = True) -> tuple[PluginManager, list[BrokenPlugin]]:
    """A fresh plugin manager with the core built-ins and (optionally) installed entry points."""
    pm = PluginManager()
    pm.add_hookspecs(hookspecs)
    # The built-ins are a plugin like any other, loaded by name (as llm loads its default plugins): the
    # catalog sits below the task types, heads and backbones that look things up in it, so it must not
    # import them (that closed an import circle: backbones -> _plugins -> _builtins -> tasks -> backbones).
    pm.register(importlib.import_module(BUILTINS), name="verticals")
    broken: list[BrokenPlugin] = []
    if load_entry_points:
        allowed = _allowed_plugins()
        for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if allowed is not None and entry_point.name not in allowed:
                continue
            if pm.has_plugin(entry_point.name):
                continue
            dist = _distribution_name(entry_point)
            try:
                module = entry_point.load()
                pm.register(module, name=entry_point.name)
                pm.sources[entry_point.name] = dist
            except Exception as exc:  # noqa: BLE001 - a broken plugin must not take down the others
                broken.append(BrokenPlugin(entry_point.name, dist, f"{type(exc).__name__}: {exc}"))
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin '{exc.plugin}' implements an unknown hook: {exc}") from None
    return pm, broken


def build_catalog(pm: PluginManager, broken: list[BrokenPlugin] | None = None) -> Catalog:
    """Call each plugin's hooks one plugin at a time so a failure is attributed and contained."""
    catalog = Catalog(broken=list(broken or []))

    def source_of(plugin: object) -> str:
        name = pm.get_name(plugin) or repr(plugin)
        return pm.sources.get(name, name)

    steps: list[tuple[str, Registry[Any], bool]] = [
        ("register_task_types", catalog.task_types, False),
        ("register_heads", catalog.heads, False),
        ("register_backbones", catalog.backbones, False),
        ("register_trainers", catalog.trainers, False),
        ("register_packs", catalog.packs, True),
    ]
    failed: set[int] = set()
    for hook_name, registry, is_pack in steps:
        hook = getattr(pm.hook, hook_name)
        for impl in reversed(hook.get_hookimpls()):  # registration order
            if id(impl.plugin) in failed:
                continue
            source = source_of(impl.plugin)

            def register(*args: Any, _registry: Registry[Any] = registry, _source: str = source,
                         _is_pack: bool = is_pack) -> None:
                if _is_pack:
                    (spec,) = args
                    _registry.register(spec.name, spec, source=_source)
                else:
                    name, item = args
                    _registry.register(name, item, source=_source)

            try:
                impl.function(register=register)
            except PluginError:
                raise  # duplicate names: the user must choose, so this is an error, not a warning
            except Exception as exc:  # noqa: BLE001
                failed.add(id(impl.plugin))
                catalog.broken.append(
                    BrokenPlugin(pm.get_name(impl.plugin) or "?", source, f"{hook_name}: {type(exc).__name__}: {exc}")
                )
    # A pack whose task names an unknown task type is broken, not fatal.
    for pack_name in catalog.packs.names():
        pack = catalog.packs.get(pack_name)
        for task in pack.tasks:
            if task.task_type not in catalog.task_types:
                catalog.broken.append(
                    BrokenPlugin(pack_name, catalog.packs.source(pack_name), f"task '{task.name}' needs "
                                 f"unknown task type '{task.task_type}'")
                )
                catalog.packs._items.pop(pack_name, None)
                break
    for item in catalog.broken:
        warnings.warn(
            f"verticals plugin '{item.name}' ({item.distribution}) was not loaded: {item.error}",
            PluginWarning,
            stacklevel=2,
        )
    return catalog


_lock = threading.Lock()
_catalog: Catalog | None = None


def get_catalog() -> Catalog:
    """The process-wide catalog, built on first use (never at import time)."""
    global _catalog
    with _lock:
        if _catalog is None:
            pm, broken = create_plugin_manager()
            _catalog = build_catalog(pm, broken)
        return _catalog


def set_catalog(catalog: Catalog | None) -> None:
    """Replace the process-wide catalog (tests use this with fake plugins); None = rebuild on next use."""
    global _catalog
    with _lock:
        _catalog = catalog


def catalog_with(*plugins: object, load_entry_points: bool = False) -> Catalog:
    """Build a catalog from the built-ins plus the given plugin objects (for tests and embedding)."""
    pm, broken = create_plugin_manager(load_entry_points=load_entry_points)
    for plugin in plugins:
        pm.register(plugin)
    pm.check_pending()
    return build_catalog(pm, broken)
