"""The feedback store on a PostgreSQL server a team already runs: ``--feedback-db postgresql+psycopg://...``,
through SQLAlchemy Core (no ORM: the statements below are the whole story).

Schema: the tables and columns of the SQLite file (:data:`.feedback.SCHEMA`), plus a one-row marker table,
:data:`MARKER` (application_id, version), standing in for SQLite's ``application_id`` / ``user_version``
header fields. Timestamps stay fixed-width text, declared ``COLLATE "C"`` so that text order is time order
whatever the database's collation (``--since`` compares text).

Ownership, checked on every open, before anything is written: a database (or the schema ``search_path``
selects) with no table at all is ours to create, in one transaction (PostgreSQL's DDL is transactional, so a
crash leaves nothing half made) under an advisory lock (two servers starting together create it once); one
with tables but no marker belongs to someone else and is refused; a marker of another application or
another schema version is refused too. Refusing reads only the catalog and the marker: nothing is altered.

Durability: one transaction per request and the answer only after ``COMMIT`` returned; with PostgreSQL's
default ``synchronous_commit = on`` the commit is flushed to the server's WAL by then. A connection lost
*during* the commit leaves its outcome unknown: that request gets a 503 saying so (a retried duplicate is
merged by the export). Writes wait at most ``BUSY_TIMEOUT_S`` for a lock or a pooled connection, then 503.

Only PostgreSQL is accepted among server databases: it is the one tested, and the schema is not portable as
is (MySQL cannot index TEXT keys, for one). Passwords in URLs are never shown: messages use the masked URL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    delete,
    event,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import URL, Connection, Engine, create_engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from ..errors import ConfigError, option
from . import feedback as sqlite_store
from .feedback import (
    APPLICATION_ID,
    DEFAULT_RETENTION,
    FEEDBACK_KEYS,
    MODEL_KEYS,
    SCHEMA_VERSION,
    FeedbackStore,
    StoreUnavailable,
    dumps,
    feedback_item,
    kept_since,
    models_by_name,
    now,
    parse_retention,
    prediction_item,
    retention_cutoff,
)

MARKER = "verticals_feedback_schema"
CONNECT_TIMEOUT_S = 10  # an unreachable host fails the start within this, not after the OS's minutes
POOL_SIZE, POOL_OVERFLOW = 5, 15  # connections kept / opened on top under load (a server has 40 worker threads)
ADVICE = ("give an empty database (CREATE DATABASE verticals_feedback OWNER you), or an empty schema through "
          "the URL's ?options=-csearch_path%3Dfeedback, and Verticals creates its tables there")

metadata = MetaData()
TIME = Text(collation="C")
models = Table("models", metadata, *(Column(key, Text, nullable=False) for key in MODEL_KEYS),
               Column("seen", TIME, nullable=False), PrimaryKeyConstraint("name", "digest"))
predictions = Table("predictions", metadata, Column("id", Text, primary_key=True),
                    Column("model", Text, nullable=False), Column("digest", Text, nullable=False),
                    Column("created_at", TIME, nullable=False), Column("input", Text, nullable=False),
                    Column("prediction", Text, nullable=False), Index("predictions_created", "created_at"))
feedback = Table("feedback", metadata, Column("id", BigInteger, primary_key=True, autoincrement=True),
                 Column("created_at", TIME, nullable=False), Column("model", Text, nullable=False),
                 Column("digest", Text, nullable=False), Column("prediction_id", Text), Column("input", Text),
                 Column("predicted", Text), Column("label", Text), Column("tags", Text), Column("wrong", Integer),
                 Column("comment", Text), Index("feedback_model", "model", "created_at"))
exports = Table("exports", metadata, Column("sha256", Text, nullable=False), Column("path", Text, nullable=False),
                Column("model", Text, nullable=False), Column("records", Integer, nullable=False),
                Column("created_at", TIME, nullable=False))
marker = Table(MARKER, metadata, Column("application_id", BigInteger, nullable=False),
               Column("version", Integer, nullable=False))
TABLES = (models, predictions, feedback, exports, marker)


def masked(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def open_url(text_url: str, *, create_missing: bool = True, retention: str = DEFAULT_RETENTION
             ) -> FeedbackStore | SQLFeedbackStore:
    """The store a database URL names: ``sqlite:///FILE`` → the SQLite file store; ``postgresql...`` →
    :class:`SQLFeedbackStore`; anything else is refused (ConfigError, one line, no password)."""
    try:
        url = make_url(text_url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        # make_url failed, so the password's position is unknown: name only the scheme
        raise ConfigError(f"{option('feedback_db')} {text_url.split('://', 1)[0]}://...: not a valid database "
                          f"URL; expected e.g. postgresql+psycopg://user@host:5432/dbname or "
                          f"sqlite:///feedback.db") from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        if not url.database or url.database == ":memory:" or url.query:
            raise ConfigError(f"{option('feedback_db', masked(url))}: give a file, sqlite:///relative/path.db or "
                              f"sqlite:////absolute/path.db (no in-memory database, no options)")
        return FeedbackStore(url.database, create_missing=create_missing, retention=retention)
    if backend != "postgresql":
        raise ConfigError(f"{option('feedback_db', masked(url))}: {backend} is not supported; the feedback "
                          f"database is a file (SQLite) or a PostgreSQL URL "
                          f"(postgresql+psycopg://user@host:5432/dbname)")
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")  # SQLAlchemy's default would be psycopg2, not ours
    return SQLFeedbackStore(url, create_missing=create_missing, retention=retention)


class SQLFeedbackStore:
    """The feedback tables on PostgreSQL. Thread-safe: each call checks a connection out of the pool, so
    concurrent requests write concurrently (each in its own transaction)."""

    def __init__(self, url: URL, *, create_missing: bool = True, retention: str = DEFAULT_RETENTION) -> None:
        self.retention = parse_retention(retention)
        self.name = masked(url)
        self._password = url.password
        self._busy_s = float(sqlite_store.BUSY_TIMEOUT_S)
        try:
            self._engine = self._create_engine(url)
        except (ImportError, NoSuchModuleError) as exc:
            raise ConfigError(f"{option('feedback_db', self.name)}: the database driver is not installed ({exc}); "
                              f"pip install 'verticals[postgres]' (psycopg 3)") from None
        try:
            self._open(create_missing)
        except BaseException:
            self._engine.dispose()
            raise

    def _create_engine(self, url: URL) -> Engine:
        connect_args = {} if "connect_timeout" in url.query else {"connect_timeout": CONNECT_TIMEOUT_S}
        engine = create_engine(url, pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW, pool_timeout=self._busy_s,
                               pool_pre_ping=True, connect_args=connect_args)  # pre-ping: survive a db restart
        lock_ms = max(1, int(self._busy_s * 1000))

        @event.listens_for(engine, "connect")
        def lock_timeout(dbapi_connection: Any, _record: Any) -> None:
            # A write waiting on another's lock (a LOCK TABLE, a migration, ALTER TABLE) gives up like SQLite's busy
            # timeout and the request gets a 503, instead of holding a worker thread indefinitely.
            autocommit = dbapi_connection.autocommit
            dbapi_connection.autocommit = True
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute(f"SET lock_timeout = {lock_ms}")
            finally:
                cursor.close()
                dbapi_connection.autocommit = autocommit

        return engine

    def _why(self, exc: BaseException) -> str:
        """The driver's message on one line, the password blanked should a driver ever echo it."""
        message = " ".join(str(getattr(exc, "orig", None) or exc).split())
        if self._password:
            message = message.replace(self._password, "***")
        return message[:400]

    def _open(self, create_missing: bool) -> None:
        try:
            conn = self._engine.connect()
        except SQLAlchemyError as exc:
            raise ConfigError(f"cannot connect to the feedback database {self.name}: {self._why(exc)}") from None
        try:
            with conn, conn.begin():
                if create_missing:  # two servers starting on an empty database: the second waits, then sees ours
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": APPLICATION_ID})
                if self._check(conn):
                    return
                if not create_missing:
                    raise ConfigError(f"no feedback database at {self.name} (it has no tables); it is created by "
                                      f"`verticals serve --feedback-db URL`")
                metadata.create_all(conn)
                conn.execute(insert(marker).values(application_id=APPLICATION_ID, version=SCHEMA_VERSION))
        except SQLAlchemyError as exc:
            raise ConfigError(f"cannot use the feedback database {self.name}: {self._why(exc)}") from None

    def _check(self, conn: Connection) -> bool:
        """True: a feedback database of this schema version; False: no table at all (ours to create);
        otherwise ConfigError. Reads the catalog and the marker only."""
        schema = conn.execute(text("SELECT current_schema()")).scalar()
        if schema is None:
            raise ConfigError(f"{self.name}: the search_path names no existing schema; create the schema first "
                              f"(CREATE SCHEMA feedback) or drop the search_path option")
        found = inspect(conn)
        names = set(found.get_table_names(schema=schema)) | set(found.get_view_names(schema=schema))
        if not names:
            return False
        if MARKER not in names:
            shown = ", ".join(sorted(names)[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            raise ConfigError(f"{self.name} (schema {schema}) holds tables of another application ({shown}) and no "
                              f"Verticals feedback marker; refusing to use or alter it: {ADVICE}")
        try:
            rows = conn.execute(select(marker.c.application_id, marker.c.version)).all()
        except SQLAlchemyError:
            rows = []
        if len(rows) != 1 or rows[0][0] != APPLICATION_ID:
            raise ConfigError(f"{self.name}: its table {MARKER} belongs to another application (expected one row, "
                              f"application_id {APPLICATION_ID:#x}); refusing to use or alter it: {ADVICE}")
        if rows[0][1] != SCHEMA_VERSION:
            raise ConfigError(f"{self.name} is a Verticals feedback database of schema version {rows[0][1]}; this "
                              f"Verticals reads version {SCHEMA_VERSION}; use the Verticals version that wrote it "
                              f"(the database was left unchanged)")
        for table in TABLES:
            columns = {c["name"] for c in found.get_columns(table.name, schema=schema)} if table.name in names \
                else set()
            if columns != set(table.columns.keys()):
                raise ConfigError(f"{self.name}: table {table.name} does not have the columns of schema version "
                                  f"{SCHEMA_VERSION} ({', '.join(table.columns.keys())}); refusing to use or alter "
                                  f"it: restore it from a backup or {ADVICE}")
        return True

    def close(self) -> None:
        self._engine.dispose()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """One transaction; it has committed when the block returns (the caller answers only then)."""
        try:
            conn = self._engine.connect()
        except SQLAlchemyError as exc:  # unreachable, or every pooled connection busy beyond the timeout
            raise StoreUnavailable(f"the feedback database is unavailable ({self._why(exc)}); retry later") from None
        with conn:
            transaction = conn.begin()
            try:
                yield conn
            except BaseException as exc:
                with suppress(SQLAlchemyError):
                    transaction.rollback()
                if isinstance(exc, SQLAlchemyError):
                    raise StoreUnavailable(f"the feedback database could not store this ({self._why(exc)}); "
                                           f"nothing was stored; retry later") from None
                raise
            try:
                transaction.commit()
            except SQLAlchemyError as exc:
                raise StoreUnavailable(f"the feedback database did not confirm the commit ({self._why(exc)}); it "
                                       f"may or may not be stored; retry later (the export merges duplicates)") \
                    from None

    def _read(self, statement: Any) -> list[Any]:
        try:
            with self._engine.connect() as conn:
                return list(conn.execute(statement).all())
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"the feedback database cannot be read ({self._why(exc)}); retry later") from None

    # ---- what the server writes --------------------------------------------------------------
    def register_model(self, name: str, digest: str, task: str, task_type: str, labels: Sequence[str],
                       columns: dict[str, Any]) -> None:
        statement = pg_insert(models).values(name=name, digest=digest, task=task, task_type=task_type,
                                             labels=json.dumps(list(labels)), columns=json.dumps(columns), seen=now())
        statement = statement.on_conflict_do_update(index_elements=["name", "digest"], set_={
            key: statement.excluded[key] for key in ("seen", "columns", "labels")})
        with self._write() as conn:
            conn.execute(statement)

    def log_predictions(self, model: str, digest: str, rows: Sequence[tuple[str, Any, Any]]) -> None:
        """Store (id, input record, prediction) rows and drop those past the retention limit, in one commit."""
        stamp = now()
        kind, n = self.retention
        with self._write() as conn:
            if kind == "records":  # loggers (of every server on this database) take turns: the count stays exact
                conn.execute(text("LOCK TABLE predictions IN SHARE ROW EXCLUSIVE MODE"))
            if rows:
                conn.execute(insert(predictions), [
                    {"id": pid, "model": model, "digest": digest, "created_at": stamp, "input": dumps(record),
                     "prediction": dumps(prediction)} for pid, record, prediction in rows])
            if kind == "records":
                older = select(predictions.c.id).order_by(predictions.c.created_at.desc(),
                                                          predictions.c.id.desc()).offset(n)
                conn.execute(delete(predictions).where(predictions.c.id.in_(older.scalar_subquery())))
            else:
                conn.execute(delete(predictions).where(predictions.c.created_at < retention_cutoff(n)))

    def prune(self) -> None:
        """Drop the logged predictions past the retention limit (a logging server starts with this)."""
        self.log_predictions("", "", [])

    def prediction(self, prediction_id: str) -> dict[str, Any] | None:
        resolvable = (predictions.c.id == prediction_id, predictions.c.created_at >= kept_since(self.retention))
        rows = self._read(select(predictions.c.model, predictions.c.digest, predictions.c.input,
                                 predictions.c.prediction).where(*resolvable))
        return prediction_item(rows[0]) if rows else None

    def add_feedback(self, model: str, digest: str, *, prediction_id: str | None, record: Any, predicted: Any,
                     label: str | None, tags: list[str] | None, wrong: bool | None, comment: str | None) -> int:
        """Store one correction; returns its id once committed."""
        statement = insert(feedback).values(
            created_at=now(), model=model, digest=digest, prediction_id=prediction_id, input=dumps(record),
            predicted=dumps(predicted), label=label, tags=None if tags is None else json.dumps(tags),
            wrong=None if wrong is None else int(wrong), comment=comment).returning(feedback.c.id)
        with self._write() as conn:
            return int(conn.execute(statement).scalar_one())

    # ---- what the export reads ---------------------------------------------------------------
    def models(self) -> dict[str, dict[str, Any]]:
        return models_by_name(self._read(select(*(models.c[key] for key in MODEL_KEYS)).order_by(models.c.seen)))

    def feedback(self, model: str, since: str | None = None) -> list[dict[str, Any]]:
        rows = self._read(select(*(feedback.c[key] for key in FEEDBACK_KEYS))
                          .where(feedback.c.model == model, feedback.c.created_at >= (since or ""))
                          .order_by(feedback.c.id))
        return [feedback_item(row) for row in rows]

    def record_export(self, sha256: str, path: str | Path, model: str, records: int) -> None:
        with self._write() as conn:
            conn.execute(insert(exports).values(sha256=sha256, path=str(Path(path).resolve()), model=model,
                                                records=records, created_at=now()))

