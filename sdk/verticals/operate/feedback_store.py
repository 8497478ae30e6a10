"""What ``--feedback-db`` (``verticals serve``) and the ``DB`` of ``verticals feedback export`` name: a file
path, the SQLite store of :mod:`.feedback` (unchanged since before URLs were accepted), or a database URL:

- ``sqlite:///path/to/feedback.db``: the same SQLite store, the same file (so a team can write every
  ``--feedback-db`` as a URL);
- ``postgresql+psycopg://user@host:5432/dbname`` (``postgresql://`` too, read with psycopg 3): the same tables
  on a PostgreSQL server through SQLAlchemy Core, :mod:`.feedback_sql`.

A URL is told from a path by its ``scheme://`` prefix. Both stores answer the same calls (:class:`Store`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from ..errors import ConfigError, option
from .feedback import DEFAULT_RETENTION, FeedbackStore

URL_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


class Store(Protocol):
    """The calls the server and the export make on a feedback database, whichever holds it."""

    name: str  # how messages name the database (a URL's password masked)

    def close(self) -> None: ...

    def register_model(self, name: str, digest: str, task: str, task_type: str, labels: Sequence[str],
                       columns: dict[str, Any]) -> None: ...

    def log_predictions(self, model: str, digest: str, rows: Sequence[tuple[str, Any, Any]]) -> None: ...

    def prune(self) -> None: ...

    def prediction(self, prediction_id: str) -> dict[str, Any] | None: ...

    def add_feedback(self, model: str, digest: str, *, prediction_id: str | None, record: Any, predicted: Any,
                     label: str | None, tags: list[str] | None, wrong: bool | None, comment: str | None) -> int: ...

    def models(self) -> dict[str, dict[str, Any]]: ...

    def feedback(self, model: str, since: str | None = None) -> list[dict[str, Any]]: ...

    def record_export(self, sha256: str, path: str | Path, model: str, records: int) -> None: ...


def is_url(db: str | Path) -> bool:
    return isinstance(db, str) and URL_PREFIX.match(db) is not None


def open_store(db: str | Path, *, create_missing: bool = True, retention: str = DEFAULT_RETENTION) -> Store:
    """Open (``create_missing``: or create) the feedback database ``db`` names; ConfigError when it cannot be
    reached or is not a Verticals feedback database of this schema version (it is then left unchanged)."""
    if not is_url(db):
        return FeedbackStore(db, create_missing=create_missing, retention=retention)
    try:
        from .feedback_sql import open_url
    except ImportError as exc:  # SQLAlchemy comes with verticals[postgres] (or [workshop]), not with the core
        scheme = str(db).split("://", 1)[0]
        raise ConfigError(f"{option('feedback_db')} {scheme}://...: a database URL needs "
                          f"{exc.name or 'SQLAlchemy'}: pip install 'verticals[postgres]' (or give a file path: "
                          f"the SQLite store needs nothing more)") from None
    return open_url(str(db), create_missing=create_missing, retention=retention)
