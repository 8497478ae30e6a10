"""Named registries with helpful lookups (in the spirit of ``catalogue.Registry``)."""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Generic, TypeVar

from ..errors import ConfigError, PluginError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects and remembers which plugin registered each one."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._sources: dict[str, str] = {}

    def register(self, name: str, item: T, *, source: str = "verticals") -> None:
        if name in self._items:
            raise PluginError(
                f"{self.kind} '{name}' is registered twice: by {self._sources[name]} and by {source}; "
                f"uninstall one of them or restrict plugins with VERTICALS_PLUGINS"
            )
        self._items[name] = item
        self._sources[name] = source

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            available = ", ".join(sorted(self._items)) or "none"
            close = difflib.get_close_matches(name, list(self._items), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"no {self.kind} '{name}'{hint} available: {available}") from None

    def source(self, name: str) -> str:
        return self._sources[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
