"""Issue 25's serving levers: adaptive batching on by default (no added wait alone, bounded passes under load),
the predict answer serialised once, and ``--workers N`` (processes sharing one port, cores shared out)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

import verticals  # noqa: E402
from verticals.delivery.batcher import Batcher  # noqa: E402
from verticals.delivery.serve import ServeLimits, create_app  # noqa: E402
from verticals.delivery.workers import worker_threads  # noqa: E402
from verticals.testing import make_tiny_backbone, only_plugins  # noqa: E402


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("speed")
    rows = [{"text": f"{w} film {i}", "label": lab} for i in range(12) for lab, w in (("pos", "good"), ("neg", "bad"))]
    (root / "tc.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with only_plugins():
        verticals.train("text-classification", root / "tc.jsonl", output=root / "bundle",
                        backbone=str(make_tiny_backbone(root / "tiny")), overrides=["training.epochs=1"])
    return root / "bundle"


# ---- adaptive batching ------------------------------------------------------------------------------------
def test_batching_is_on_by_default() -> None:
    assert ServeLimits().batching is True
    from verticals.cli.app import build_parser

    assert build_parser().parse_args(["serve", "b"]).batching is True
    assert build_parser().parse_args(["serve", "b", "--no-batching"]).batching is False


def test_batching_adds_no_wait_to_a_lone_request() -> None:
    waits: list[float] = []
    batcher = Batcher(lambda records: records, max_records=64,
                      observe=lambda queued, seconds, size: waits.extend(queued))
    for i in range(20):  # one request at a time, as on one keep-alive connection
        assert batcher([i]) == [i]
    batcher.close()
    # no batching window: it runs at once. A window would delay every request; a loaded machine only some,
    # so the fastest few are what tells
    assert len(waits) == 20 and sorted(waits)[2] < 0.005, [f"{w * 1000:.1f} ms" for w in sorted(waits)]


def test_a_pass_never_holds_more_than_max_records() -> None:
    sizes: list[int] = []
    gate = threading.Event()

    def predict(records: list[int]) -> list[int]:
        sizes.append(len(records))
        gate.wait(5)  # the first pass runs while the others queue
        return [r + 1 for r in records]

    batcher = Batcher(predict, max_records=8)
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(batcher, [i] * 3) for i in range(8)]  # 24 records, 3 per request
        time.sleep(0.3)
        gate.set()
        assert [f.result(5) for f in futures] == [[i + 1] * 3 for i in range(8)]
    batcher.close()
    assert sum(sizes) == 24 and max(sizes) <= 8, sizes  # a request that would overflow opens the next pass
    assert len(sizes) < 8  # but queued requests still shared passes


# ---- the answer, serialised once --------------------------------------------------------------------------
def test_predict_answer_keeps_its_schema(bundle: Path) -> None:
    from fastapi.testclient import TestClient

    with only_plugins():
        client = TestClient(create_app([bundle], engine="torch"))
    answer = client.post("/v1/models/bundle/predict", json={"inputs": ["good film", {"text": "bad film"}, 3]})
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert body["model"] == "bundle" and [r["index"] for r in body["results"]] == [0, 1, 2]
    ok = body["results"][0]
    assert set(ok) == {"index", "ok", "prediction", "prediction_id", "explanation", "error"}
    assert ok["ok"] is True and ok["prediction"]["label"] in {"pos", "neg"} and ok["error"] is None
    assert body["results"][2]["ok"] is False and body["results"][2]["error"]["status"] == 422
    # what /openapi.json promises is what is sent
    schema = client.get("/openapi.json").json()["paths"]["/v1/models/bundle/predict"]["post"]["responses"]["200"]
    assert schema["content"]["application/json"]["schema"]["$ref"].endswith("BundlePredictResponse")


# ---- --workers N -------------------------------------------------------------------------------------------
def test_worker_threads_share_out_the_cores() -> None:
    assert worker_threads(1, cores=8) == 8
    assert worker_threads(2, cores=8) == 4
    assert worker_threads(3, cores=2) == 1  # never zero


def test_limit_threads_caps_what_models_use() -> None:
    import torch
    from verticals import runtime

    before = (runtime._thread_limit, torch.get_num_threads())
    try:
        runtime.limit_threads(1)
        assert runtime.configure_threads(None) == 1 and torch.get_num_threads() == 1
        assert runtime.configure_threads(3) == 3  # a bundle's explicit training.num_threads still wins
    finally:
        runtime._thread_limit = before[0]
        torch.set_num_threads(before[1])


def test_workers_out_of_range_is_one_line(bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from verticals.cli import main

    assert main(["serve", str(bundle), "--workers", "0"]) == 2
    assert capsys.readouterr().err.strip() == ("verticals: error: --workers 0 is out of range; expected 'auto' or an "
                                               "integer >= 1")
    assert main(["serve", str(bundle), "--workers", "two"]) == 2
    assert capsys.readouterr().err.strip() == "verticals: error: --workers two: expected 'auto' or an integer >= 1"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_workers_refuse_a_bad_bundle_before_starting(tmp_path: Path) -> None:
    process = subprocess.run([sys.executable, "-m", "verticals", "serve", str(tmp_path / "missing"), "--workers",
                              "2", "--port", str(free_port())], env=dict(os.environ, VERTICALS_PLUGINS=""),
                             capture_output=True, text=True, timeout=120)
    assert process.returncode == 2
    errors = [line for line in process.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "missing" in errors[0], process.stderr


def test_two_workers_answer_on_one_port_and_drain_on_sigterm(bundle: Path, tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = subprocess.Popen([sys.executable, "-m", "verticals", "serve", str(bundle), "--port", str(port),
                                "--workers", "2", "--engine", "torch", "--feedback-db", str(tmp_path / "fb.db"),
                                "--log-predictions"], env=dict(os.environ, VERTICALS_PLUGINS=""),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    pids: set[int] = set()
    stored = 0
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(pids) < 2 and process.poll() is None:
            try:  # a new connection each time: the kernel hands connections to whichever worker accepts
                with httpx.Client(timeout=5) as client:
                    if client.get(f"{base}/ready").status_code != 200:  # this worker still warms up
                        time.sleep(0.2)
                        continue
                    pids.add(client.get(f"{base}/health").json()["pid"])
                    answer = client.post(f"{base}/v1/models/bundle/predict", json={"inputs": ["good film"]})
                    assert answer.status_code == 200 and answer.json()["results"][0]["ok"]
                    assert answer.headers["x-request-id"]
                    prediction_id = answer.json()["results"][0]["prediction_id"]
                with httpx.Client(timeout=5) as other:  # maybe the other worker: the database is shared
                    feedback = other.post(f"{base}/v1/models/bundle/feedback",
                                          json={"prediction_id": prediction_id, "label": "neg"})
                    assert feedback.status_code == 200 and feedback.json()["stored"], feedback.text
                    stored += 1
            except httpx.TransportError:
                time.sleep(0.2)
        assert len(pids) == 2 and process.pid not in pids  # both workers serve; the parent only supervises
        assert stored >= 2
        process.send_signal(signal.SIGTERM)
        code = process.wait(60)
    finally:
        if process.poll() is None:
            process.kill()
        err = process.communicate()[1]
    assert code == 0, err[-3000:]
    assert "2 workers" in err
    for pid in pids:  # no worker outlives the parent
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
    assert re.search(r"draining", err), err[-3000:]
