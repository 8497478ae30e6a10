"""Exceptions raised by Verticals.

Every error a user can cause derives from :class:`VerticalsError` and carries the exit code the CLI
uses. The CLI prints ``str(error)`` on one line; nothing here formats tracebacks.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any


class VerticalsError(Exception):
    """Base class for errors caused by input, configuration or environment (not by a bug)."""

    exit_code: int = 2


class ConfigError(VerticalsError):
    """A configuration value, option or name is invalid."""


class DataError(VerticalsError):
    """A data file or record is invalid.

    The message names the file, the line (or record) and the field, e.g.
    ``train.csv:14: field 'label': empty value; expected one of the training labels``. Data held in memory
    has a name in angle brackets and row positions from 0: ``<DataFrame>: row 3: field 'text': ...``.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path = str(path) if path is not None else None
        self.line = line
        self.field = field
        self.reason = message
        where = self.path or "<data>"
        if line is not None:
            where += f": row {line}" if where.startswith("<") else f":{line}"
        what = f" field '{field}':" if field else ""
        super().__init__(f"{where}:{what} {message}")


class BundleError(VerticalsError):
    """A bundle is missing, incomplete, tampered with, or needs a pack that is not installed."""


class OutputWriteError(VerticalsError):
    """An output could not be written for a reason of the machine, not of the input: a full disk, a quota, a
    file size limit, a read-only file system. The message names the path; nothing partial is left. Exit 1."""

    exit_code = 1


class PluginError(VerticalsError):
    """A plugin is broken or two plugins register the same name."""


class NotFittedError(VerticalsError, ValueError):
    """A task, head or trainer was used before ``fit`` was called."""

    exit_code = 1


class PluginWarning(UserWarning):
    """A plugin could not be loaded; the others still work."""


# ---- how a message names an option ------------------------------------------------------------------------------
# The same refusal reaches a Python caller of verticals.train(..., overwrite=False) and a user of `verticals train`
# without --overwrite; each should read the spelling it can act on. The CLI sets this for the run of one verb.
_CLI_WORDING: ContextVar[bool] = ContextVar("verticals_cli_wording", default=False)


@contextmanager
def cli_wording() -> Iterator[None]:
    """Within this block, :func:`option` spells options as command-line flags (the CLI runs every verb in it)."""
    token = _CLI_WORDING.set(True)
    try:
        yield
    finally:
        _CLI_WORDING.reset(token)


def option(name: str, value: Any = None, *, cli: str | None = None) -> str:
    """An option as the caller writes it, for error messages: ``option("overwrite", True)`` is ``--overwrite``
    under the CLI and ``overwrite=True`` in Python; ``option("output")`` is ``--output`` / ``output``;
    ``option("backbone", "DIR")`` is ``--backbone DIR`` / ``backbone='DIR'``; ``option("metrics", False)`` is
    ``--no-metrics`` / ``metrics=False``. ``cli`` gives the flag where its name differs from the keyword
    (``option("overrides", cli="--set")``)."""
    if _CLI_WORDING.get():
        flag = cli or "--" + ("no-" if value is False else "") + name.rsplit(".", 1)[-1].replace("_", "-")
        return flag if value is None or isinstance(value, bool) else f"{flag} {value or chr(34) * 2}"  # '' -> ""
    if value is None:
        return name
    return f"{name}={value!r}" if isinstance(value, str) else f"{name}={value}"
