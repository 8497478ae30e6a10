"""Core test fixtures: tiny random backbones, tiny data written by the tests, no installed plugins."""

from __future__ import annotations

import contextlib
import csv
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from verticals.testing import make_tiny_backbone, only_plugins

WORDS = {
    "billing": ["invoice", "charge", "refund", "payment", "bill", "price"],
    "shipping": ["parcel", "delivery", "courier", "tracking", "package", "shipment"],
    "account": ["password", "login", "username", "profile", "email", "account"],
}


@pytest.fixture(autouse=True, scope="module")
def _no_installed_plugins():
    """Core tests never see whatever packs happen to be installed."""
    with only_plugins():
        yield


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_backbone(tmp_path_factory.mktemp("backbone") / "tiny-bert")


def write_csv(path: Path, rows: list[dict[str, str]], fieldnames: list[str] | None = None) -> Path:
    fieldnames = fieldnames or list(rows[0])
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)
    return path


def text_rows(n_per_label: int, seed: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    rows = []
    for label, words in WORDS.items():
        for _ in range(n_per_label):
            a, b = rng.sample(words, 2)
            rows.append({"text": f"question about my {a} and the {b}", "label": label})
    rng.shuffle(rows)
    return rows


@pytest.fixture
def text_data(tmp_path: Path) -> dict[str, Path]:
    return {
        "train": write_csv(tmp_path / "train.csv", text_rows(16, 0)),
        "validation": write_csv(tmp_path / "validation.csv", text_rows(4, 1)),
    }


def conll_text(n: int, seed: int) -> str:
    rng = random.Random(seed)
    people = ["Alice", "Bob", "Carol", "Dave"]
    places = ["Paris", "Berlin", "Oslo", "Madrid"]
    sentences = []
    for _ in range(n):
        person, place = rng.choice(people), rng.choice(places)
        tokens = [(person, "B-PER"), ("Smith", "I-PER"), ("flew", "O"), ("to", "O"), (place, "B-LOC"), (".", "O")]
        sentences.append("\n".join(f"{t}\t{tag}" for t, tag in tokens))
    return "\n\n".join(sentences) + "\n"


@pytest.fixture
def token_data(tmp_path: Path) -> dict[str, Path]:
    train = tmp_path / "train.conll"
    train.write_text(conll_text(40, 0), encoding="utf-8")
    validation = tmp_path / "validation.conll"
    validation.write_text(conll_text(10, 1), encoding="utf-8")
    return {"train": train, "validation": validation}


FAST = ["training.epochs=2", "training.batch_size=8", "training.learning_rate=0.001"]


def train_text_bundle(root: Path, backbone: Path, per_label: int, validation_per_label: int) -> Path:
    """A tiny text-classification bundle at ``root/bundle`` with a validation split (so a drift profile)."""
    import verticals

    verticals.train("text-classification", write_csv(root / "train.csv", text_rows(per_label, 0)),
                    validation=write_csv(root / "validation.csv", text_rows(validation_per_label, 1)),
                    output=root / "bundle", backbone=str(backbone), overrides=FAST)
    return root / "bundle"


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the real console script in a subprocess (no installed packs unless env says otherwise)."""
    exe = shutil.which("verticals") or str(Path(sys.executable).parent / "verticals")
    full_env = {**os.environ, "VERTICALS_PLUGINS": "", **(env or {})}
    return subprocess.run([exe, *args], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=600)


@contextlib.contextmanager
def serve_in_thread(app: Any, limits: Any = None, log_level: str = "warning", loop: str | None = None) -> Iterator[int]:
    """Run ``app`` under uvicorn in a thread, on the listening socket `verticals serve` makes; yield its port.
    ``loop``: uvicorn's event loop setting (default: as `verticals serve` runs, uvloop where installed)."""
    import threading
    import time

    import uvicorn
    from verticals.delivery.server import listen_socket, uvicorn_config

    sock = listen_socket("127.0.0.1", 0)
    config = uvicorn_config(app, limits, log_level=log_level)
    if loop is not None:
        config.loop = loop
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


# ---- feedback databases: a SQLite file, and a database on a throwaway PostgreSQL server ------------------------------
@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """A PostgreSQL server for this test session (tests/postgres_server.py), or a skip saying why there is none."""
    pytest.importorskip("psycopg", reason="psycopg 3 is not installed (pip install 'verticals[postgres]')")
    from .postgres_server import PostgresServer

    server = PostgresServer()
    try:
        server.start()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        server.stop()
        pytest.skip(f"no PostgreSQL server for the feedback tests: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def feedback_db(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """The ``--feedback-db`` of a test, once per store: a new SQLite file, and a new empty PostgreSQL database
    (its URL, password included)."""
    if request.param == "sqlite":
        return tmp_path / "fb.db"
    return request.getfixturevalue("postgres").new_database()


def db_rows(db: Path | str, sql: str) -> list[dict[str, Any]]:
    """``sql`` run on a feedback database through a connection of its own (what another client would see)."""
    if isinstance(db, Path):  # the standard library's sqlite3: the SQLite tests need no SQLAlchemy
        import sqlite3

        con = sqlite3.connect(db)
        con.row_factory = sqlite3.Row
        try:
            return [dict(row) for row in con.execute(sql)]
        finally:
            con.close()
    from sqlalchemy import create_engine, text

    engine = create_engine(db)
    try:
        with engine.connect() as con:
            return [dict(row._mapping) for row in con.execute(text(sql))]
    finally:
        engine.dispose()
