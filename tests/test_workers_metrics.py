"""``verticals serve --workers N``: one coherent ``/metrics`` whichever worker takes the scrape (counters, the
in-flight gauge of a killed worker, the drift window), the shared metrics directory's life, ``--workers auto``."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("prometheus_client")
httpx = pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from verticals.delivery.monitoring import Readiness  # noqa: E402
from verticals.delivery.serve import create_app  # noqa: E402
from verticals.delivery.server import resolve_workers  # noqa: E402
from verticals.delivery.workers import AUTO_MAX, auto_workers  # noqa: E402
from verticals.predictor import Predictor  # noqa: E402

from .conftest import text_rows, train_text_bundle  # noqa: E402

URL = "/v1/models/bundle/predict"
TEXTS = [r["text"] for r in text_rows(10, 5)]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> Path:
    """A tiny bundle with a validation profile, so it has drift gauges."""
    root = tmp_path_factory.mktemp("workers")
    return train_text_bundle(root, tiny_backbone, 12, 20)


def value(text: str, name: str, **labels: str) -> float | None:
    wanted = tuple(sorted(labels.items()))
    return next((s.value for family in text_string_to_metric_families(text) for s in family.samples
                 if s.name == name and tuple(sorted(s.labels.items())) == wanted), None)


# ---- in one process ----------------------------------------------------------------------------------------
def test_auto_is_one_worker_per_core_up_to_the_cap() -> None:
    assert [auto_workers(cores) for cores in (1, 2, 3, 64)] == [1, 2, 3, AUTO_MAX] and AUTO_MAX == 4
    assert resolve_workers("auto", [object.__new__(Predictor)]) == 1  # a loaded predictor is served as it is
    assert resolve_workers(3, ["bundle"]) == 3
    from verticals.cli.app import build_parser

    assert build_parser().parse_args(["serve", "b"]).workers == "auto"


def test_readiness_reports_each_change() -> None:
    seen: list[bool] = []
    readiness = Readiness(on_change=seen.append)
    readiness.warmed = True
    readiness.draining = True
    assert seen == [True, False]


def test_drift_of_windows_added_up_is_the_drift_of_one_window(bundle: Path) -> None:
    """What the scraping worker does with the other workers' tallies: two halves give the whole's drift."""
    apps = [create_app([bundle], engine="torch") for _ in range(3)]
    texts = TEXTS * 5  # 150 records: over MIN_WINDOW together, under it apart
    for app, part in zip(apps, (texts[:70], texts[70:], texts)):
        client = TestClient(app)
        for i in range(0, len(part), 50):
            assert client.post(URL, json={"inputs": part[i:i + 50]}).status_code == 200
    first, second, whole = (app.state.monitor for app in apps)
    assert "label" not in first.drift("bundle") and "label" not in second.drift("bundle")
    merged = first.drift("bundle", [second.tallies("bundle")])
    assert merged["records"] == 150 and "label" in merged and merged == whole.drift("bundle")


def test_the_shared_directory_is_ours_to_remove_or_the_users_to_keep(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from verticals.delivery.shared_metrics import ENV, shared_directory
    from verticals.errors import ConfigError

    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.delenv(ENV.lower(), raising=False)
    with shared_directory() as made:
        assert os.environ[ENV] == str(made) and made.name.startswith("verticals-metrics-")
        (made / "counter_1.db").write_bytes(b"")
    assert not made.exists() and ENV not in os.environ
    monkeypatch.setenv(ENV, str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="is not a directory"), shared_directory():
        pass
    monkeypatch.setenv(ENV, str(tmp_path))
    with shared_directory() as given:
        assert given == tmp_path
    assert tmp_path.is_dir() and os.environ[ENV] == str(tmp_path)


# ---- a real server with 2 workers ---------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start(bundle: Path, port: int, log: Path, **env: str) -> subprocess.Popen[bytes]:
    environment = {k: v for k, v in os.environ.items() if k.upper() != "PROMETHEUS_MULTIPROC_DIR"}
    with open(log, "wb") as out:  # a file, not a pipe: workers outliving a failed test cannot block a read
        return subprocess.Popen([sys.executable, "-m", "verticals", "serve", str(bundle), "--port", str(port),
                                 "--workers", "2", "--engine", "torch"],
                                env=dict(environment, VERTICALS_PLUGINS="", **env), stdout=out,
                                stderr=subprocess.STDOUT)


def both_ready(base: str, process: subprocess.Popen[bytes], log: Path) -> set[int]:
    """The pids of the two workers once each answered /ready with 200 (connections land on either)."""
    pids: set[int] = set()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(pids) < 2 and process.poll() is None:
        try:
            with httpx.Client(timeout=5) as client:  # a fresh connection each time
                if client.get(f"{base}/ready").status_code == 200:
                    pids.add(client.get(f"{base}/health").json()["pid"])
                    continue
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    assert len(pids) == 2, log.read_text(errors="replace")[-3000:]
    return pids


def stop(process: subprocess.Popen[bytes], pids: set[int]) -> int:
    """SIGTERM the parent; if it does not end, kill it and the workers it left (still spawned workers)."""
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        for pid in pids:
            try:
                if b"multiprocessing" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        raise


def metrics_dir_of(pid: int) -> Path:
    environ = dict(item.split("=", 1) for item in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in item)
    return Path(environ["PROMETHEUS_MULTIPROC_DIR"])


def stall_a_request(port: int) -> tuple[socket.socket, int]:
    """A predict request left in flight (its body never completes) on a connection, and the pid of the worker
    holding it."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    raw.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
    answer = b""
    while b"}" not in answer:
        answer += raw.recv(4096)
    pid = json.loads(answer.split(b"\r\n\r\n", 1)[1])["pid"]
    raw.sendall(b"POST " + URL.encode() + b" HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                b"Content-Length: 1000\r\n\r\n{\"inputs\": [")
    return raw, pid


def test_one_scrape_counts_every_worker_and_a_killed_worker_leaves_no_stale_gauge(bundle: Path,
                                                                                   tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "server.log"
    base = f"http://127.0.0.1:{port}"
    process = start(bundle, port, log)
    pids: set[int] = set()
    try:
        pids = both_ready(base, process, log)
        directory = metrics_dir_of(next(iter(pids)))
        assert directory.is_dir() and directory.name.startswith("verticals-metrics-")
        assert Path(tempfile.gettempdir()) == directory.parent
        sent: Counter[int] = Counter()
        while (len(sent) < 2 or sum(sent.values()) < 60) and sum(sent.values()) < 2000:
            with httpx.Client(timeout=10) as client:  # a fresh connection: the kernel picks the worker
                pid = client.get(f"{base}/health").json()["pid"]
                answer = client.post(f"{base}{URL}", json={"inputs": TEXTS[:5]})
                assert answer.status_code == 200
                sent[pid] += 5
        assert set(sent) == pids, sent  # both workers counted some: one worker's /metrics would miss some
        total = sum(sent.values())
        text = httpx.get(f"{base}/metrics", timeout=10).text  # one scrape, whichever worker takes it
        assert value(text, "verticals_records_total", model="bundle") == total, sent
        assert value(text, "verticals_predictions_total", model="bundle") == total
        assert value(text, "verticals_ready") == 1 and value(text, "verticals_requests_in_flight", model="bundle") == 0
        deadline = time.monotonic() + 10  # each worker shares its drift window at most once a second
        while value(text, "verticals_drift_window_records", model="bundle") != total and time.monotonic() < deadline:
            time.sleep(0.3)
            text = httpx.get(f"{base}/metrics", timeout=10).text
        assert value(text, "verticals_drift_window_records", model="bundle") == total, sent

        raw, stalled = stall_a_request(port)
        with raw:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                text = httpx.get(f"{base}/metrics", timeout=10).text
                if value(text, "verticals_requests_in_flight", model="bundle") == 1:
                    break
                time.sleep(0.1)
            assert value(text, "verticals_requests_in_flight", model="bundle") == 1
            os.kill(stalled, signal.SIGKILL)  # with its request in flight
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # until the parent noticed and replaced it
                try:
                    text = httpx.get(f"{base}/metrics", timeout=10).text
                except httpx.TransportError:
                    continue
                assert value(text, "verticals_records_total", model="bundle") == total  # its counts stay
                if value(text, "verticals_requests_in_flight", model="bundle") == 0:
                    break
                time.sleep(0.2)
            assert value(text, "verticals_requests_in_flight", model="bundle") == 0, "the dead worker's stays"
        survivor = next(pid for pid in pids if pid != stalled)
        assert not any(directory.glob(f"gauge_live*_{stalled}.db")) and any(directory.glob(f"counter_{stalled}.db"))
        code = stop(process, {survivor})
    finally:
        if process.poll() is None:
            stop(process, pids)
    assert code == 0, log.read_text(errors="replace")[-3000:]
    assert not directory.exists()  # created by the server, removed by it


def test_a_metrics_directory_the_user_set_is_used_and_kept(bundle: Path, tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "server.log"
    base = f"http://127.0.0.1:{port}"
    mine = tmp_path / "prometheus"
    mine.mkdir()
    (mine / "keep.txt").write_text("not the server's", encoding="utf-8")
    process = start(bundle, port, log, PROMETHEUS_MULTIPROC_DIR=str(mine))
    pids: set[int] = set()
    try:
        pids = both_ready(base, process, log)
        assert all(metrics_dir_of(pid) == mine for pid in pids)
        assert httpx.post(f"{base}{URL}", json={"inputs": TEXTS[:3]}, timeout=10).status_code == 200
        deadline = time.monotonic() + 10
        while not any(mine.glob("verticals-drift-*.json")) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert any(mine.glob("verticals-drift-*.json")) and any(mine.glob("counter_*.db"))
        code = stop(process, pids)
    finally:
        if process.poll() is None:
            stop(process, pids)
    assert code == 0, log.read_text(errors="replace")[-3000:]
    assert (mine / "keep.txt").read_text(encoding="utf-8") == "not the server's"
    assert any(mine.glob("counter_*.db"))  # the user's directory, as prometheus_client leaves it
    assert not any(mine.glob("verticals-drift-*")) and not any(mine.glob(".verticals-drift-*"))  # ours: removed


def test_workers_of_a_killed_parent_drain_and_exit(bundle: Path, tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "server.log"
    process = start(bundle, port, log)
    pids: set[int] = set()
    try:
        pids = both_ready(f"http://127.0.0.1:{port}", process, log)
        directory = metrics_dir_of(next(iter(pids)))
        process.kill()  # SIGKILL: the parent cannot stop its workers
        process.wait(10)
        deadline = time.monotonic() + 30

        def serving(pid: int) -> bool:
            try:
                return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
            except OSError:
                return False
        while any(serving(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(serving(pid) for pid in pids), log.read_text(errors="replace")[-3000:]
    finally:
        if process.poll() is None:
            stop(process, pids)
    # the parent could not remove what it created: this test removes it (a SIGKILL leaves it, as any temp file)
    assert directory.name.startswith("verticals-metrics-")
    shutil.rmtree(directory)
