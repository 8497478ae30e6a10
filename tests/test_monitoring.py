"""Monitoring of `verticals serve`: /metrics, drift gauges against the bundle's validation profile, /ready,
request ids, JSON logs, and a SIGTERM that drains the requests in flight (a real `verticals serve` process)."""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("prometheus_client")
httpx = pytest.importorskip("httpx")

import verticals  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from verticals.bundles.bundle import BUNDLE_FILE, write_manifest  # noqa: E402
from verticals.delivery.serve import ServeLimits, create_app  # noqa: E402
from verticals.metrics.drift import INVESTIGATE  # noqa: E402

from .conftest import text_rows, train_text_bundle  # noqa: E402

URL = "/v1/models/bundle/predict"
WINDOW = 300


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> Path:
    """Three intents, 300 validation rows: enough for a profile whose sampling noise is far below 0.2."""
    root = tmp_path_factory.mktemp("monitoring")
    return train_text_bundle(root, tiny_backbone, 24, 100)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text exposition, parsed by prometheus_client's own parser."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, tuple(sorted(labels.items()))))


def ready_client(app) -> TestClient:  # type: ignore[no-untyped-def]
    client = TestClient(app)
    client.__enter__()  # runs the lifespan: the warm-up pass
    deadline = time.monotonic() + 20
    while client.get("/ready").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    return client


def send(client: TestClient, texts: list[str]) -> None:
    for i in range(0, len(texts), 50):
        assert client.post(URL, json={"inputs": texts[i:i + 50]}).status_code == 200


def test_bundle_keeps_the_validation_profile(bundle: Path) -> None:
    profile = json.loads((bundle / BUNDLE_FILE).read_text())["profile"]
    predicted = verticals.load(bundle).predict([r["text"] for r in text_rows(100, 1)])
    assert profile["records"] == 300 and sum(profile["labels"].values()) == 300
    assert profile["labels"] == {label: sum(p.label == label for p in predicted) for label in profile["labels"]}
    assert len(profile["score"]["counts"]) == len(profile["score"]["edges"]) + 1 >= 5


def test_metrics_count_requests_records_errors_and_decisions(bundle: Path) -> None:
    client = ready_client(create_app([bundle], ServeLimits(max_batch=8), api_key="k" * 16))
    key = {"X-API-Key": "k" * 16}
    assert client.post(URL, json={"inputs": ["my invoice and the refund", {"txt": "no text"}, 3]},
                       headers=key).status_code == 200
    assert client.post(URL, json={"inputs": ["parcel"] * 9}, headers=key).status_code == 413
    assert client.post(URL, json={"texts": []}, headers=key).status_code == 422
    assert client.post(URL, content=b'{"inputs": [', headers={**key, "content-type": "application/json"}
                       ).status_code == 400
    assert client.post(URL, json={"inputs": ["x"]}).status_code == 401
    assert client.post("/v1/models/not-loaded-1/predict", json={"inputs": ["x"]}, headers=key).status_code == 404
    assert client.post("/v1/models/not-loaded-2/predict", json={"inputs": ["x"]}, headers=key).status_code == 404
    answer = client.get("/metrics")  # open like /health: Prometheus scrapes without the API key
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    text = answer.text
    for code in ("200", "413", "422", "400", "401"):
        assert value(text, "verticals_requests_total", model="bundle", code=code) == 1, code
    assert value(text, "verticals_requests_total", model="(unknown)", code="404") == 2  # no series per name
    assert value(text, "verticals_records_total", model="bundle") == 3
    assert value(text, "verticals_record_errors_total", model="bundle", reason="invalid") == 2
    assert value(text, "verticals_predictions_total", model="bundle") == 1
    decided = {dict(k[1])["label"]: v for k, v in samples(text).items() if k[0] == "verticals_decisions_total"}
    assert sum(decided.values()) == 1 and set(decided) <= {"billing", "shipping", "account"}
    assert value(text, "verticals_low_confidence_total", model="bundle") is not None
    assert value(text, "verticals_out_of_scope_total", model="bundle") is None  # not a field of this task
    # the warm-up pass and the one predicted request went through the model's queue
    assert value(text, "verticals_forward_seconds_count", model="bundle") == 2
    assert value(text, "verticals_queue_wait_seconds_count", model="bundle") == 2
    assert value(text, "verticals_batch_records_sum", model="bundle") == 2
    assert value(text, "verticals_request_duration_seconds_count", model="bundle") == 5
    assert value(text, "verticals_ready") == 1
    client.__exit__(None, None, None)


def test_apps_have_their_own_registries_and_metrics_can_be_off(bundle: Path) -> None:
    first, second = ready_client(create_app([bundle])), ready_client(create_app([bundle]))
    send(first, ["my invoice and the refund"])
    assert value(first.get("/metrics").text, "verticals_predictions_total", model="bundle") == 1
    assert value(second.get("/metrics").text, "verticals_predictions_total", model="bundle") == 0
    off = ready_client(create_app([bundle], ServeLimits(metrics=False)))
    assert off.get("/metrics").status_code == 404 and off.get("/ready").status_code == 200
    assert {"/ready", "/health"} <= set(off.get("/openapi.json").json()["paths"])
    assert {"/ready", "/metrics"} <= set(first.get("/openapi.json").json()["paths"])
    send(off, ["my invoice and the refund"])
    for client in (first, second, off):
        client.__exit__(None, None, None)


def test_drift_stays_below_on_held_back_rows_and_crosses_off_distribution(bundle: Path) -> None:
    client = ready_client(create_app([bundle], ServeLimits(drift_window=WINDOW)))
    send(client, [r["text"] for r in text_rows(100, 2)][:99])
    assert value(client.get("/metrics").text, "verticals_drift_psi", model="bundle", statistic="label") is None
    send(client, [r["text"] for r in text_rows(100, 2)][99:])  # held back: same intents, rows never seen
    text = client.get("/metrics").text
    assert value(text, "verticals_drift_window_records", model="bundle") == WINDOW
    for statistic in ("label", "score"):
        psi = value(text, "verticals_drift_psi", model="bundle", statistic=statistic)
        assert psi is not None and psi < INVESTIGATE, (statistic, psi)
        assert value(text, "verticals_drift_psi_expected", model="bundle", statistic=statistic) < INVESTIGATE
    assert value(text, "verticals_drift_investigate_threshold") == INVESTIGATE

    send(client, [r["text"] for r in text_rows(100, 3) if r["label"] == "billing"] * 3)  # one intent only
    assert value(client.get("/metrics").text, "verticals_drift_psi", model="bundle", statistic="label") > INVESTIGATE
    rng = random.Random(0)
    send(client, ["".join(rng.choice("qwxzjkv ") for _ in range(40)) for _ in range(WINDOW)])  # gibberish
    text = client.get("/metrics").text
    assert value(text, "verticals_drift_psi", model="bundle", statistic="score") > INVESTIGATE
    client.__exit__(None, None, None)


def test_bundle_without_profile_serves_without_drift_gauges(bundle: Path, tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    import shutil

    old = tmp_path / "bundle"
    shutil.copytree(bundle, old)
    info = json.loads((old / BUNDLE_FILE).read_text())
    del info["profile"]  # as a bundle written before profiles were kept
    (old / BUNDLE_FILE).write_text(json.dumps(info))
    write_manifest(old)
    with caplog.at_level(logging.INFO, logger="verticals.serve"):
        client = ready_client(create_app([old], ServeLimits(drift_window=10)))
    assert "no validation profile" in caplog.text
    send(client, [r["text"] for r in text_rows(40, 2)])
    text = client.get("/metrics").text
    assert value(text, "verticals_predictions_total", model="bundle") == 120
    assert not [k for k in samples(text) if k[0].startswith("verticals_drift_") and k[0] != (
        "verticals_drift_investigate_threshold")]
    client.__exit__(None, None, None)


def test_ready_waits_for_the_warm_up(bundle: Path) -> None:
    predictor = verticals.load(bundle)
    predict, gate = predictor.task.predict, threading.Event()

    def held(records):  # type: ignore[no-untyped-def]
        gate.wait(10)
        return predict(records)

    predictor.task.predict = held  # type: ignore[method-assign]
    gate.set()  # create_app predicts the docs example: let it through
    app = create_app([predictor])
    gate.clear()
    with TestClient(app) as client:
        assert client.get("/health").status_code == 200  # alive while warming
        warming = client.get("/ready")
        assert warming.status_code == 503 and warming.json()["status"] == "warming"
        assert value(client.get("/metrics").text, "verticals_ready") == 0
        gate.set()
        deadline = time.monotonic() + 10
        while client.get("/ready").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.get("/ready").json() == {"status": "ready", "models": ["bundle"]}


def test_every_answer_has_a_request_id_also_in_the_access_log(bundle: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    client = ready_client(create_app([bundle], ServeLimits(max_body_bytes=1000)))
    with caplog.at_level(logging.INFO, logger="verticals.access"):
        echoed = client.post(URL, json={"inputs": ["parcel"]}, headers={"X-Request-ID": "client-42.a:b"})
        refused = client.post(URL, json={"inputs": ["a" * 2000]})  # 413 from the body limit, below the routes
        unsafe = client.get("/health", headers={"X-Request-ID": "bad id\twith spaces"})
        long = client.get("/health", headers={"X-Request-ID": "x" * 200})
    assert echoed.headers["x-request-id"] == "client-42.a:b"
    assert refused.status_code == 413 and len(refused.headers["x-request-id"]) == 32
    assert unsafe.headers["x-request-id"] != "bad id\twith spaces" and len(unsafe.headers["x-request-id"]) == 32
    assert len(long.headers["x-request-id"]) == 32
    assert len({r.headers["x-request-id"] for r in (refused, unsafe, long)}) == 3
    lines = [r.getMessage() for r in caplog.records if r.name == "verticals.access"]
    assert any(f'"POST {URL} HTTP/1.1" 200' in line and "request_id=client-42.a:b" in line for line in lines)
    assert any(" 413 " in line and refused.headers["x-request-id"] in line for line in lines)
    client.__exit__(None, None, None)


def test_batcher_reports_waits_passes_and_sizes_and_survives_a_broken_observer() -> None:
    from verticals.delivery.serve import Batcher

    seen: list[tuple[list[float], float, int]] = []
    batcher = Batcher(lambda records: [r * 2 for r in records], 8, True, lambda *a: seen.append(a))
    assert batcher([1, 2, 3]) == [2, 4, 6]
    batcher.close()
    (waits, seconds, size), = seen
    assert len(waits) == 1 and waits[0] >= 0 and seconds >= 0 and size == 3

    def broken(*_: object) -> None:
        raise RuntimeError("metrics bug")

    batcher = Batcher(lambda records: records, 8, True, broken)
    assert batcher([1]) == [1] and batcher([2]) == [2]  # the queue keeps going
    batcher.close()


# ---- a real `verticals serve` process: SIGTERM with requests in flight, JSON logs ---------------------------
SLOW_SERVE = """
import asyncio, sys
import verticals.delivery.serve as serve
original = serve.predict_records_async
async def slow(batcher, records):  # every request stays in flight for a while, so SIGTERM finds them running
    await asyncio.sleep(float(sys.argv[1]))
    return await original(batcher, records)
serve.predict_records_async = slow
from verticals.cli import main
sys.exit(main(sys.argv[2:]))
"""


def test_sigterm_drains_requests_in_flight_then_exits_0(bundle: Path) -> None:
    in_flight = 6
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    process = subprocess.Popen([sys.executable, "-c", SLOW_SERVE, "5.0", "serve", str(bundle), "--port", str(port),
                                "--workers", "1", "--log-format", "json"], env=dict(os.environ, VERTICALS_PLUGINS=""),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    answers: dict[int, httpx.Response | Exception] = {}
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        assert httpx.get(f"{base}/ready", timeout=2).status_code == 200

        def call(i: int) -> None:
            try:
                answers[i] = httpx.post(f"{base}{URL}", json={"inputs": ["my parcel and the courier"]},
                                        headers={"X-Request-ID": f"drain-{i}"}, timeout=30)
            except Exception as exc:  # noqa: BLE001 - recorded, asserted below
                answers[i] = exc

        threads = [threading.Thread(target=call, args=(i,)) for i in range(in_flight)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            metrics = httpx.get(f"{base}/metrics", timeout=5).text
            if value(metrics, "verticals_requests_in_flight", model="bundle") == in_flight:
                break
            time.sleep(0.05)
        assert value(metrics, "verticals_requests_in_flight", model="bundle") == in_flight
        process.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join(30)
        code = process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
        out, err = process.communicate()
    statuses = {i: a.status_code if isinstance(a, httpx.Response) else repr(a) for i, a in answers.items()}
    assert statuses == {i: 200 for i in range(in_flight)}, (statuses, err[-3000:])
    assert code == 0, err[-3000:]
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]  # every line is one JSON object
    access = {e["request_id"]: e for e in lines if e["logger"] == "verticals.access"}
    for i in range(in_flight):
        assert access[f"drain-{i}"]["status"] == 200 and access[f"drain-{i}"]["path"] == URL
    assert any("draining" in e["message"] for e in lines)
