"""Exceptions raised by Verticals.

Every error a user can cause derives from :class:`VerticalsError` and carries the exit code the CLI
uses. The CLI prints ``str(error)`` on one line; nothing here formats tracebacks.
"""

from __future__ import annotations

from pathlib import Path


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
