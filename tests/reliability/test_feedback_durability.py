"""The feedback database keeps every acknowledged row: under 32 concurrent clients while predictions run,
across kill -9 of a real server process, and it refuses (unchanged) a file that is not ours. Hostile
feedback bodies get 4xx, never 500; a database that cannot take the write gets 503."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")

import verticals  # noqa: E402
from verticals.cli import main  # noqa: E402
from verticals.delivery.serve import create_app  # noqa: E402
from verticals.errors import ConfigError  # noqa: E402
from verticals.operate import feedback  # noqa: E402
from verticals.operate.feedback import APPLICATION_ID, FeedbackStore  # noqa: E402
from verticals.testing import make_tiny_backbone, only_plugins  # noqa: E402

from ..conftest import db_rows  # noqa: E402

pytestmark = pytest.mark.reliability
FEEDBACK = "/v1/models/sentiment/feedback"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("durability")
    words = {"pos": ["great", "good"], "neg": ["bad", "awful"]}
    rows = [{"text": f"{w} film", "label": lab} for lab in words for w in words[lab] for _ in range(6)]
    (root / "tc.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with only_plugins():
        verticals.train("text-classification", root / "tc.jsonl", output=root / "sentiment",
                        backbone=str(make_tiny_backbone(root / "tiny")), overrides=["training.epochs=1"])
    return root / "sentiment"


def serve_in_thread(app) -> tuple[int, uvicorn.Server, threading.Thread, socket.socket]:  # type: ignore[no-untyped-def]
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    return sock.getsockname()[1], server, thread, sock


@pytest.fixture
def port(bundle: Path, feedback_db: Path | str) -> Iterator[int]:
    with only_plugins():
        app = create_app([bundle], engine="torch", feedback_db=feedback_db, log_predictions=True)
    port, server, thread, sock = serve_in_thread(app)
    yield port
    server.should_exit = True
    thread.join(10)
    sock.close()


def stored(db: Path | str) -> dict[int, str]:
    return {row["id"]: row["comment"] for row in db_rows(db, "SELECT id, comment FROM feedback")}


def test_32_concurrent_clients_while_predicting_lose_and_duplicate_nothing(port: int, feedback_db: Path | str) -> None:
    acked: dict[int, str] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def client(i: int) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            for j in range(4):
                comment = f"client {i} note {j}"
                answer = http.post(FEEDBACK, json={"input": f"film {i} {j}", "label": "pos", "comment": comment})
                assert answer.status_code == 200, answer.text
                with lock:
                    acked[answer.json()["feedback_id"]] = comment

    def predictions() -> int:
        n = 0
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            while not stop.is_set():
                assert http.post("/v1/models/sentiment/predict", json={"inputs": ["good film"] * 4}).status_code == 200
                n += 1
        return n

    with ThreadPoolExecutor(34) as pool:
        predicting = [pool.submit(predictions) for _ in range(2)]
        for future in [pool.submit(client, i) for i in range(32)]:
            future.result()
        stop.set()
        assert all(p.result() > 0 for p in predicting)
    rows = stored(feedback_db)
    assert len(acked) == 128 and rows == acked  # every acknowledged row, under its id, and nothing else
    assert len(set(rows.values())) == len(rows)


def start_server(bundle: Path, db: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "VERTICALS_PLUGINS": "", "PYTHONPATH": os.pathsep.join(sys.path)}
    with open(log, "ab") as out:
        process = subprocess.Popen([sys.executable, "-m", "verticals", "serve", str(bundle), "--port", str(port),
                                    "--workers", "1", "--engine", "torch", "--feedback-db", str(db)],
                                   stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
        assert process.poll() is None, log.read_text(errors="replace")
    raise AssertionError("server did not start: " + log.read_text(errors="replace"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_kill_9_mid_load_keeps_every_acknowledged_row(bundle: Path, tmp_path: Path) -> None:
    db, port, log = tmp_path / "fb.db", free_port(), tmp_path / "server.log"
    process = start_server(bundle, db, port, log)
    acked: dict[int, str] = {}
    lock = threading.Lock()

    def client(i: int) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            for j in range(10_000):
                comment = f"client {i} note {j}"
                try:
                    answer = http.post(FEEDBACK, json={"input": f"film {i}", "label": "neg", "comment": comment})
                except httpx.HTTPError:
                    return  # the server died under this request: not acknowledged
                if answer.status_code == 200:
                    with lock:
                        acked[answer.json()["feedback_id"]] = comment

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(client, i) for i in range(8)]
        deadline = time.monotonic() + 20
        while len(acked) < 40 and time.monotonic() < deadline:
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)  # with requests in flight
        process.wait(10)
        for future in futures:
            future.result()
    assert len(acked) >= 40
    restarted = start_server(bundle, db, port, log)  # the same file opens again, recovered from its WAL
    try:
        after = httpx.post(f"http://127.0.0.1:{port}{FEEDBACK}",
                           json={"input": "x", "label": "pos", "comment": "after"})
        assert after.status_code == 200
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(20)
    rows = stored(db)
    assert all(rows.get(i) == comment for i, comment in acked.items())
    assert len(set(rows.values())) == len(rows)  # no row stored twice
    assert after.json()["feedback_id"] not in acked


def sqlite_file(path: Path, app_id: int = 0, version: int = 0, wal: bool = False) -> Path:
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA application_id = {app_id}")
    con.execute(f"PRAGMA user_version = {version}")
    con.execute("CREATE TABLE notes (body TEXT)")
    con.execute("INSERT INTO notes VALUES ('the user''s own data')")
    con.commit()
    if wal:
        con.execute("PRAGMA journal_mode = WAL")
    con.close()
    return path


FOREIGN = {
    "text": (lambda p: (p.write_text("id,comment\n1,hello\n"), p)[1], "not a SQLite database"),
    "empty": (lambda p: (p.write_bytes(b""), p)[1], "not a SQLite database"),
    "another application": (lambda p: sqlite_file(p, app_id=0x1234), "another application"),
    "plain sqlite in WAL mode": (lambda p: sqlite_file(p, wal=True), "another application"),
    "another schema version": (lambda p: sqlite_file(p, APPLICATION_ID, 2), "schema version 2"),
}


@pytest.mark.parametrize("kind", list(FOREIGN))
def test_a_file_that_is_not_ours_is_refused_and_unchanged(kind: str, tmp_path: Path, bundle: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    make, message = FOREIGN[kind]
    path = make(tmp_path / "feedback.db")
    before = hashlib.sha256(path.read_bytes()).hexdigest(), os.stat(path).st_mtime_ns
    with pytest.raises(ConfigError, match=message):
        FeedbackStore(path)
    code = main(["serve", str(bundle), "--port", str(free_port()), "--workers", "1", "--feedback-db", str(path)])
    assert code == 2 and message in capsys.readouterr().err
    code = main(["feedback", "export", str(path), "--model", "sentiment", "--output", str(tmp_path / "out.jsonl")])
    assert code == 2 and message in capsys.readouterr().err
    assert (hashlib.sha256(path.read_bytes()).hexdigest(), os.stat(path).st_mtime_ns) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["feedback.db"]  # no -wal/-shm, no output


def test_a_new_file_is_created_complete_and_reopened(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "fb.db"
    FeedbackStore(path).close()
    header = path.read_bytes()[:100]
    assert int.from_bytes(header[68:72], "big") == APPLICATION_ID and header[18:20] == b"\x02\x02"  # WAL
    FeedbackStore(path, create_missing=False).close()
    assert sorted(p.name for p in path.parent.iterdir() if not p.name.startswith("fb.db")) == []


HOSTILE = [
    b"", b"not json", b"[1, 2]", b'"text"', b"null", b'{"label": "pos"}', b'{"input": "x"}',
    b'{"input": 5, "label": "pos"}', b'{"input": {"text": ""}, "label": "pos"}', b'{"prediction_id": 7}',
    b'{"prediction_id": "' + b"a" * 100 + b'", "label": "pos"}', b'{"input": "x", "label": "pos", "oops": 1}',
    b'{"input": "x", "label": "\\ud800"}', b'{"input": "x", "label": "pos", "comment": "\\udfff"}',
    b'{"input": {"text": "\\ud800"}, "label": "pos"}', b'{"input": "x", "wrong": "maybe"}',
    b'{"input": "x", "tags": ["O"]}', b'{"input": "x", "comment": "' + b"c" * 5000 + b'"}',
    b'{"input": ' + b'{"a": ' * 200 + b"1" + b"}" * 200 + b', "label": "pos"}',
    b'{"input": ' + b"[" * 5000 + b"]" * 5000 + b', "label": "pos"}',
    b'{"input": "x", "label": ["pos"]}', b'{"input": "' + b"w " * 30_000 + b'", "label": "pos"}',
]


def test_hostile_bodies_get_4xx_never_500(port: int) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        for body in HOSTILE:
            answer = http.post(FEEDBACK, content=body, headers={"content-type": "application/json"})
            assert 400 <= answer.status_code < 500, (body[:80], answer.status_code, answer.text[:200])
            assert "detail" in answer.json()
        # a lone surrogate echoed in a validation error made the predict route answer 500 (before this change)
        answer = http.post("/v1/models/sentiment/predict", content=b'{"inputs": "\\ud800"}',
                           headers={"content-type": "application/json"})
        assert answer.status_code == 422, answer.text
        assert http.post(FEEDBACK, content=b'{"input": "x", "label": "pos"}',
                         headers={"content-type": "text/plain"}).status_code < 500


@contextlib.contextmanager
def another_writer(db: Path | str) -> Iterator[Callable[[], None]]:
    """Another client holding the feedback table's write lock until the yielded release() is called."""
    if isinstance(db, Path):
        other = sqlite3.connect(db, isolation_level=None)

        def release() -> None:
            other.execute("ROLLBACK")

        try:
            other.execute("BEGIN EXCLUSIVE")
            yield release
        finally:
            other.close()
        return
    from sqlalchemy import create_engine, text

    engine = create_engine(db)
    try:
        with engine.connect() as con:
            transaction = con.begin()
            con.execute(text("LOCK TABLE feedback IN ACCESS EXCLUSIVE MODE"))
            yield transaction.rollback
    finally:
        engine.dispose()


def test_a_locked_database_answers_503_and_stores_nothing(bundle: Path, feedback_db: Path | str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feedback, "BUSY_TIMEOUT_S", 0.2)
    with only_plugins():
        app = create_app([bundle], engine="torch", feedback_db=feedback_db)
    port, server, thread, sock = serve_in_thread(app)
    try:
        with another_writer(feedback_db) as release:
            answer = httpx.post(f"http://127.0.0.1:{port}{FEEDBACK}", json={"input": "x", "label": "pos"},
                                timeout=30)
            assert answer.status_code == 503 and "retry" in answer.json()["detail"]
            release()
            answer = httpx.post(f"http://127.0.0.1:{port}{FEEDBACK}", json={"input": "x", "label": "pos"},
                                timeout=30)
            assert answer.status_code == 200
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
    assert list(stored(feedback_db)) == [answer.json()["feedback_id"]]
