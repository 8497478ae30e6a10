"""``--feedback-db URL``: a PostgreSQL database that is not ours (foreign tables, another application's or
another schema version's marker) is refused with one line and exit 2 and left exactly as it was; an empty one
is created once even by two servers at a time; an unreachable or unsupported URL is one line, exit 2, with
the password never shown; ``sqlite:///FILE`` is the file store itself. The behaviour tests of both stores
(REST, export, 32 concurrent clients, a locked database) are parametrized in test_feedback.py and
test_feedback_durability.py; these need a PostgreSQL server only where they say ``postgres``."""

from __future__ import annotations

import re
import socket
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("sqlalchemy")

from verticals.cli import main  # noqa: E402
from verticals.errors import ConfigError  # noqa: E402
from verticals.operate.feedback import APPLICATION_ID, FeedbackStore  # noqa: E402
from verticals.operate.feedback_store import open_store  # noqa: E402

from ..conftest import db_rows  # noqa: E402

pytestmark = pytest.mark.reliability
NOTES = "CREATE TABLE notes (body text); INSERT INTO notes VALUES ('the team''s own data')"
MARKER = "CREATE TABLE verticals_feedback_schema (application_id bigint NOT NULL, version int NOT NULL)"
FOREIGN = {
    "a database with other tables": (NOTES, "holds tables of another application (notes)"),
    "another application's marker": (f"{MARKER}; INSERT INTO verticals_feedback_schema VALUES (4660, 1)",
                                     "belongs to another application"),
    "a marker table of other columns": ("CREATE TABLE verticals_feedback_schema (x text)",
                                        "belongs to another application"),
    "another schema version": (f"{NOTES}; {MARKER}; INSERT INTO verticals_feedback_schema VALUES "
                               f"({APPLICATION_ID}, 2)", "schema version 2"),
    "ours, a table missing": (f"{MARKER}; INSERT INTO verticals_feedback_schema VALUES ({APPLICATION_ID}, 1)",
                              "table models does not have the columns"),
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(url: str, statements: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.begin() as con:
            for statement in statements.split("; "):
                con.execute(text(statement))
    finally:
        engine.dispose()


def snapshot(url: str) -> list[Any]:
    """Every table, column and row of the database's own schemas (what "left unchanged" means here)."""
    columns = db_rows(url, "SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns "
                           "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2, 3")
    tables = sorted({(c["table_schema"], c["table_name"]) for c in columns})
    return [columns, *(db_rows(url, f'SELECT * FROM "{schema}"."{name}" ORDER BY 1') for schema, name in tables),
            db_rows(url, "SELECT count(*) AS n FROM pg_class WHERE relnamespace = 'public'::regnamespace")]


@pytest.mark.parametrize("kind", list(FOREIGN))
def test_a_postgres_database_not_ours_is_refused_and_unchanged(kind: str, postgres: Any, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    statements, message = FOREIGN[kind]
    url = postgres.new_database()
    run(url, statements)
    before = snapshot(url)
    with pytest.raises(ConfigError, match=re.escape(message)):
        open_store(url)
    # refused before any bundle is loaded, so this one need not exist
    code = main(["serve", str(tmp_path / "bundle"), "--port", str(free_port()), "--workers", "1", "--feedback-db",
                 url])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert postgres.password not in err and ":***@" in err
    code = main(["feedback", "export", url, "--model", "sentiment", "--output", str(tmp_path / "out.jsonl")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and postgres.password not in err
    assert snapshot(url) == before
    assert list(tmp_path.iterdir()) == []


def test_a_schema_of_its_own_in_a_team_database(postgres: Any) -> None:
    url = postgres.new_database()
    run(url, f"{NOTES}; CREATE SCHEMA feedback")
    notes = db_rows(url, "SELECT * FROM public.notes")
    store = open_store(url + "?options=-csearch_path%3Dfeedback")  # the documented way to pick a schema
    try:
        store.add_feedback("m", "d", prediction_id=None, record={"text": "x"}, predicted=None, label="a", tags=None,
                           wrong=None, comment="in its schema")
    finally:
        store.close()
    assert "***" in store.name and postgres.password not in store.name
    assert db_rows(url, "SELECT comment FROM feedback.feedback") == [{"comment": "in its schema"}]
    tables = {(r["table_schema"], r["table_name"]) for r in snapshot(url)[0]}
    assert {t for t in tables if t[0] == "public"} == {("public", "notes")} and ("feedback", "models") in tables
    assert db_rows(url, "SELECT * FROM public.notes") == notes  # the team's table untouched


def test_export_from_an_empty_postgres_database_creates_nothing(postgres: Any, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    url = postgres.new_database()
    code = main(["feedback", "export", url, "--model", "m", "--output", str(tmp_path / "out.jsonl")])
    assert code == 2 and "no feedback database at" in capsys.readouterr().err
    assert snapshot(url)[0] == []  # no table made


def test_two_servers_starting_on_one_empty_database_create_it_once(postgres: Any) -> None:
    url = postgres.new_database()
    stores: list[Any] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            stores.append(open_store(url))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == [] and len(stores) == 4
    ids = [store.add_feedback("m", "d", prediction_id=None, record={"text": "x"}, predicted=None, label="a",
                              tags=None, wrong=None, comment=str(i)) for i, store in enumerate(stores)]
    for store in stores:
        store.close()
    assert db_rows(url, "SELECT application_id, version FROM verticals_feedback_schema") == [
        {"application_id": APPLICATION_ID, "version": 1}]
    assert sorted(ids) == [1, 2, 3, 4]


@pytest.mark.parametrize(("url", "message"), [
    ("postgresql+psycopg://team:hunter2secret@127.0.0.1:1/feedback", "cannot connect to the feedback database"),
    ("postgresql://team:hunter2secret@127.0.0.1:1/feedback", "cannot connect to the feedback database"),
    ("mysql://team:hunter2secret@db.example.com/feedback", "mysql is not supported"),
    ("postgresql://team:hunter2secret@127.0.0.1:notaport/feedback", "not a valid database URL"),
    ("sqlite://", "no in-memory database"),
])
def test_an_unusable_url_is_one_line_exit_2_and_no_password(url: str, message: str, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("psycopg")
    code = main(["serve", str(tmp_path / "bundle"), "--port", str(free_port()), "--workers", "1", "--feedback-db",
                 url])
    err = capsys.readouterr().err
    assert code == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1 and "hunter2secret" not in err
    code = main(["feedback", "export", url, "--model", "m", "--output", str(tmp_path / "out.jsonl")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "hunter2secret" not in err


def test_without_the_driver_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if verticals[postgres] were not installed
    with pytest.raises(ConfigError, match=r"verticals\[postgres\]") as caught:
        open_store("postgresql://team:hunter2secret@127.0.0.1:1/feedback")
    assert "hunter2secret" not in str(caught.value)


def test_without_sqlalchemy_a_url_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "verticals.operate.feedback_sql", raising=False)
    monkeypatch.setitem(sys.modules, "sqlalchemy", None)
    with pytest.raises(ConfigError, match=r"needs sqlalchemy: pip install 'verticals\[postgres\]'") as caught:
        open_store("postgresql://team:hunter2secret@127.0.0.1:1/feedback")
    assert "hunter2secret" not in str(caught.value)


def test_a_sqlite_url_is_the_file_store(tmp_path: Path) -> None:
    path = tmp_path / "fb.db"
    store = open_store(f"sqlite:///{path}")
    assert isinstance(store, FeedbackStore) and store.path == path
    store.add_feedback("m", "d", prediction_id=None, record={"text": "x"}, predicted=None, label="a", tags=None,
                       wrong=None, comment="via url")
    store.close()
    store = open_store(path, create_missing=False)  # the same file, by its path
    try:
        assert [row["comment"] for row in store.feedback("m")] == ["via url"]
    finally:
        store.close()
