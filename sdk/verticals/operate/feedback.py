"""The feedback store of ``verticals serve --feedback-db FILE``: users' corrections, and (opt-in) the inputs
and answers of predictions they may correct later, in a SQLite file (stdlib ``sqlite3``; no server to run).
A database URL (PostgreSQL) opens the same tables through SQLAlchemy instead: :mod:`.feedback_sql`, chosen by
:func:`.feedback_store.open_store`. The row encoding below (JSON text, timestamps as fixed-width text) is
shared by both, so the export reads either the same way.

Durability: WAL journal, ``synchronous=FULL`` (a commit is fsynced to the WAL before the request is answered,
so an acknowledged row survives kill -9 *and* power loss; NORMAL would survive kill -9 only, and feedback
comes in at human rates where one fsync per request costs nothing that matters), one transaction per
request, the answer sent only after ``COMMIT`` returned.

Ownership: the file is marked ``PRAGMA application_id`` = :data:`APPLICATION_ID` and ``user_version`` =
:data:`SCHEMA_VERSION`. Both are read from the raw 100-byte header *before* SQLite opens the file, so a
file that is not ours (not SQLite, another application, another schema version) is refused without being
opened, let alone altered (SQLite would create -wal/-shm files and may checkpoint into it). A missing file
is created complete under a temporary name and linked into place, so it never replaces anything.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from ..bundles.outputs import check_output_place
from ..errors import ConfigError, VerticalsError, option

APPLICATION_ID = 0x56464442  # "VFDB": Verticals FeedBack database
SCHEMA_VERSION = 1
SQLITE_MAGIC = b"SQLite format 3\x00"
DEFAULT_RETENTION = "30d"
BUSY_TIMEOUT_S = 10.0  # how long a write waits for another writer (e.g. an export) before a 503

# Page 1 holds these before any WAL content exists: they are written at creation, in rollback-journal mode,
# and never changed afterwards, so the raw header tells the truth even while the WAL holds other pages.
SCHEMA = """
CREATE TABLE models (
    name TEXT NOT NULL, digest TEXT NOT NULL, task TEXT NOT NULL, task_type TEXT NOT NULL,
    labels TEXT NOT NULL, columns TEXT NOT NULL, seen TEXT NOT NULL, PRIMARY KEY (name, digest));
CREATE TABLE predictions (
    id TEXT PRIMARY KEY, model TEXT NOT NULL, digest TEXT NOT NULL, created_at TEXT NOT NULL,
    input TEXT NOT NULL, prediction TEXT NOT NULL);
CREATE INDEX predictions_created ON predictions (created_at);
CREATE TABLE feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT, created_at TEXT NOT NULL, model TEXT NOT NULL, digest TEXT NOT NULL,
    prediction_id TEXT, input TEXT, predicted TEXT, label TEXT, tags TEXT, wrong INTEGER, comment TEXT);
CREATE INDEX feedback_model ON feedback (model, created_at);
CREATE TABLE exports (
    sha256 TEXT NOT NULL, path TEXT NOT NULL, model TEXT NOT NULL, records INTEGER NOT NULL,
    created_at TEXT NOT NULL);
"""


class StoreUnavailable(VerticalsError):
    """The database could not take a write (locked beyond the timeout, disk full, I/O error): retry later."""


def now() -> str:
    """UTC timestamps in one fixed-width format, so text order is time order (``--since`` compares text)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def retention_cutoff(days: int) -> str:
    """The ``created_at`` text before which a logged prediction is past a retention of ``days`` days."""
    return (datetime.now(timezone.utc) - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def kept_since(retention: tuple[str, int]) -> str:
    """The oldest ``created_at`` a logged prediction may have and still be resolved: a day-based retention's
    cutoff (also before the prune at the next logged request), "" for a count-based one (pruned exactly)."""
    kind, n = retention
    return retention_cutoff(n) if kind == "days" else ""


def new_id() -> str:
    return uuid.uuid4().hex


def parse_retention(text: str) -> tuple[str, int]:
    """``--log-retention``: ``N`` keeps the newest N logged predictions, ``Nd`` those of the last N days."""
    match = re.fullmatch(r"\s*(\d+)\s*(d?)\s*", str(text))
    # at most 100 years or 10^12 records: beyond, dates and SQLite's integers overflow (a 500 on every predict)
    if not match or not 1 <= int(match.group(1)) <= (36_500 if match.group(2) else 10**12):
        raise ConfigError(f"{option('log_retention')} {text!r}: expected a number of records (e.g. 100000, at most "
                          f"10^12) or of days (e.g. 30d, at most 36500d), at least 1")
    return ("days" if match.group(2) else "records"), int(match.group(1))


def check_ours(path: str | Path) -> None:
    """Refuse (ConfigError) a file that is not a feedback database of this schema version, reading only its
    header: nothing is opened through SQLite, nothing is written."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{option('feedback_db')} {path} is a directory; give a database file name, e.g. feedback.db")
    try:
        with open(path, "rb") as handle:
            header = handle.read(100)
    except OSError as exc:
        raise ConfigError(f"cannot read the feedback database {path}: {exc.strerror or exc}") from None
    if len(header) < 100 or not header.startswith(SQLITE_MAGIC):
        raise ConfigError(f"{path} is not a SQLite database (so not a Verticals feedback database); refusing to "
                          f"use or alter it: give a new file name and Verticals creates the database")
    app_id = int.from_bytes(header[68:72], "big", signed=True)
    version = int.from_bytes(header[60:64], "big", signed=True)
    if app_id != APPLICATION_ID:
        raise ConfigError(f"{path} is a SQLite database of another application (application_id {app_id:#x}, "
                          f"expected {APPLICATION_ID:#x}); refusing to use or alter it: give a new file name")
    if version != SCHEMA_VERSION:
        raise ConfigError(f"{path} is a Verticals feedback database of schema version {version}; this Verticals "
                          f"reads version {SCHEMA_VERSION}; use the Verticals version that wrote it (the file was "
                          f"left unchanged)")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def create(path: str | Path) -> bool:
    """Create a complete, empty feedback database at ``path`` unless something is there already (then it is
    left alone; True when this call created it)."""
    path = Path(os.path.abspath(path))
    # not inside a bundle (one more file there and it no longer loads), not under a file
    check_output_place(path, option("feedback_db"))
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(tmp, isolation_level=None)
        try:
            con.executescript(f"PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {SCHEMA_VERSION};"
                              f"BEGIN; {SCHEMA} COMMIT;")
            con.execute("PRAGMA journal_mode = WAL")  # persistent: recorded in the header
        finally:
            con.close()
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)  # fails rather than replace: the only way in is a name nobody holds
        except FileExistsError:
            return False
        _fsync_dir(path.parent)
        return True
    except (OSError, sqlite3.Error) as exc:  # a folder that cannot be written, a full disk
        reason = getattr(exc, "strerror", None) or exc
        raise ConfigError(f"cannot create the feedback database {path}: {reason}") from None
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
            leftover.unlink(missing_ok=True)


class FeedbackStore:
    """One connection shared by the server's threads behind a lock (SQLite has a single writer anyway).

    ``create``: make the file when it does not exist (the server); the export only opens existing ones.
    ``retention``: how long logged predictions are kept, see :func:`parse_retention`."""

    def __init__(self, path: str | Path, *, create_missing: bool = True, retention: str = DEFAULT_RETENTION) -> None:
        self.path = Path(path)
        self.name = str(self.path)  # how messages name this database
        self.retention = parse_retention(retention)
        if not self.path.exists():
            if not create_missing:
                raise ConfigError(f"no feedback database at {self.path}; it is created by `verticals serve "
                                  f"--feedback-db {self.path}`")
            create(self.path)
        check_ours(self.path)
        try:
            self._con = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                        timeout=BUSY_TIMEOUT_S)
            mode = self._con.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            self._con.execute("PRAGMA synchronous = FULL")
            # Read again through SQLite (the WAL included): the header check saw the main file only.
            app_id = self._con.execute("PRAGMA application_id").fetchone()[0]
            version = self._con.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"{self.path}: the feedback database cannot be read ({exc}); restore it from a "
                              f"backup or give a new file name") from None
        if (app_id, version) != (APPLICATION_ID, SCHEMA_VERSION) or mode != "wal":
            self._con.close()
            raise ConfigError(f"{self.path}: not a feedback database of schema version {SCHEMA_VERSION} "
                              f"(application_id {app_id:#x}, version {version}, journal {mode})")
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._con.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction; it has committed when the block returns (the caller answers only then)."""
        with self._lock:
            try:
                self._con.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"the feedback database is unavailable ({exc}); retry later") from None
            try:
                yield self._con
                self._con.execute("COMMIT")
            except BaseException as exc:
                try:
                    self._con.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # the transaction is already gone (SQLite rolled it back itself)
                if isinstance(exc, sqlite3.Error):
                    raise StoreUnavailable(f"the feedback database could not store this ({exc}); nothing was "
                                           f"stored; retry later") from None
                raise

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._con.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"the feedback database cannot be read ({exc}); retry later") from None

    # ---- what the server writes --------------------------------------------------------------
    def register_model(self, name: str, digest: str, task: str, task_type: str, labels: Sequence[str],
                       columns: dict[str, Any]) -> None:
        with self._write() as con:
            con.execute("INSERT INTO models VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name, digest) DO UPDATE "
                        "SET seen = excluded.seen, columns = excluded.columns, labels = excluded.labels",
                        (name, digest, task, task_type, json.dumps(list(labels)), json.dumps(columns), now()))

    def log_predictions(self, model: str, digest: str, rows: Sequence[tuple[str, Any, Any]]) -> None:
        """Store (id, input record, prediction) rows and drop those past the retention limit, in one commit."""
        stamp = now()
        kind, n = self.retention
        with self._write() as con:
            con.executemany("INSERT INTO predictions VALUES (?, ?, ?, ?, ?, ?)",
                            [(pid, model, digest, stamp, dumps(record), dumps(prediction))
                             for pid, record, prediction in rows])
            if kind == "records":
                con.execute("DELETE FROM predictions WHERE rowid <= (SELECT max(rowid) FROM predictions) - ?", (n,))
            else:
                con.execute("DELETE FROM predictions WHERE created_at < ?", (retention_cutoff(n),))

    def prune(self) -> None:
        """Drop the logged predictions past the retention limit (a logging server starts with this)."""
        self.log_predictions("", "", [])

    def prediction(self, prediction_id: str) -> dict[str, Any] | None:
        rows = self._read("SELECT model, digest, input, prediction FROM predictions WHERE id = ? AND created_at >= ?",
                          (prediction_id, kept_since(self.retention)))
        return prediction_item(rows[0]) if rows else None

    def add_feedback(self, model: str, digest: str, *, prediction_id: str | None, record: Any, predicted: Any,
                     label: str | None, tags: list[str] | None, wrong: bool | None, comment: str | None) -> int:
        """Store one correction; returns its id once committed."""
        with self._write() as con:
            cursor = con.execute(
                "INSERT INTO feedback (created_at, model, digest, prediction_id, input, predicted, label, tags, "
                "wrong, comment) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (now(), model, digest, prediction_id, dumps(record), dumps(predicted), label,
                 None if tags is None else json.dumps(tags), None if wrong is None else int(wrong), comment))
            return int(cursor.lastrowid or 0)

    # ---- what the export reads ---------------------------------------------------------------
    def models(self) -> dict[str, dict[str, Any]]:
        """The last served version of each model name: task, labels, column names."""
        return models_by_name(self._read(f"SELECT {', '.join(MODEL_KEYS)} FROM models ORDER BY seen"))

    def feedback(self, model: str, since: str | None = None) -> list[dict[str, Any]]:
        rows = self._read(f"SELECT {', '.join(FEEDBACK_KEYS)} FROM feedback WHERE model = ? AND created_at >= ? "
                          f"ORDER BY id", (model, since or ""))
        return [feedback_item(row) for row in rows]

    def record_export(self, sha256: str, path: str | Path, model: str, records: int) -> None:
        with self._write() as con:
            con.execute("INSERT INTO exports VALUES (?, ?, ?, ?, ?)",
                        (sha256, str(Path(path).resolve()), model, records, now()))


MODEL_KEYS = ("name", "digest", "task", "task_type", "labels", "columns")
FEEDBACK_KEYS = ("id", "created_at", "prediction_id", "input", "predicted", "label", "tags", "wrong", "comment")


def prediction_item(row: Sequence[Any]) -> dict[str, Any]:
    """A logged prediction from its (model, digest, input, prediction) columns."""
    model, digest, record, prediction = row
    return {"model": model, "digest": digest, "input": json.loads(record), "prediction": json.loads(prediction)}


def models_by_name(rows: Sequence[Sequence[Any]]) -> dict[str, dict[str, Any]]:
    """The last served version of each model name, from :data:`MODEL_KEYS` rows ordered by ``seen``."""
    found: dict[str, dict[str, Any]] = {}
    for name, digest, task, task_type, labels, columns in rows:
        found[name] = {"digest": digest, "task": task, "task_type": task_type, "labels": json.loads(labels),
                       "columns": json.loads(columns)}
    return found


def feedback_item(row: Sequence[Any]) -> dict[str, Any]:
    """One feedback row (:data:`FEEDBACK_KEYS`) with its JSON columns decoded."""
    item = dict(zip(FEEDBACK_KEYS, row))
    for key in ("input", "predicted", "tags"):
        item[key] = None if item[key] is None else json.loads(item[key])
    return item


def dumps(value: Any) -> str | None:
    if value is None:
        return None
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json", exclude_none=True)
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
