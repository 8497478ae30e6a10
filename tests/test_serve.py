"""The REST server, tested with a real HTTP client against a real uvicorn server on loopback."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
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
uvicorn = pytest.importorskip("uvicorn")

import verticals  # noqa: E402
from verticals.delivery.serve import ServeLimits, create_app  # noqa: E402
from verticals.testing import make_tiny_backbone, only_plugins  # noqa: E402

WORDS = {"pos": ["great", "good", "love", "excellent"], "neg": ["bad", "awful", "hate", "poor"]}


def write_text_data(path: Path) -> Path:
    rows = [{"text": f"{WORDS[lab][i % 4]} {WORDS[lab][(i + 1) % 4]} film", "label": lab}
            for i in range(24) for lab in ("pos", "neg")]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_token_data(path: Path) -> Path:
    rows = [{"tokens": ["John", "lives", "in", "Paris"], "tags": ["B-PER", "O", "O", "B-LOC"]},
            {"tokens": ["Mary", "visited", "Berlin"], "tags": ["B-PER", "O", "B-LOC"]}] * 10
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("serve")
    backbone = str(make_tiny_backbone(root / "tiny"))
    with only_plugins():
        verticals.train("text-classification", write_text_data(root / "tc.jsonl"), output=root / "sentiment",
                        backbone=backbone, overrides=["training.epochs=1"])
        verticals.train("token-classification", write_token_data(root / "ner.jsonl"), output=root / "ner",
                        backbone=backbone, overrides=["training.epochs=1"])
    return {"sentiment": root / "sentiment", "ner": root / "ner"}


@pytest.fixture(scope="module")
def server(bundles: dict[str, Path]):  # type: ignore[no-untyped-def]
    with only_plugins():
        app = create_app([bundles["sentiment"], bundles["ner"]],
                         ServeLimits(max_batch=8, max_chars=200, max_body_bytes=20_000))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        yield client
    srv.should_exit = True
    thread.join(10)
    sock.close()


def test_health_and_models(server, bundles) -> None:  # type: ignore[no-untyped-def]
    health = server.get("/health")
    assert health.status_code == 200
    assert health.json()["models"] == ["sentiment", "ner"]
    models = {m["name"]: m for m in server.get("/v1/models").json()}
    assert models["sentiment"]["task"] == "text-classification"
    assert models["sentiment"]["labels"] == ["neg", "pos"]
    assert models["sentiment"]["data"]["train"]["records"] == 48
    assert "validation" in models["sentiment"]["metrics"]
    assert models["ner"]["predict_url"] == "/v1/models/ner/predict"
    for name, path in bundles.items():  # the digest `verticals inspect --expect` checks
        assert models[name]["digest"] == hashlib.sha256((path / "manifest.json").read_bytes()).hexdigest()
    # serve's default engine 'auto' runs the encoders on ONNX Runtime where it is installed
    expected_engine = "onnx" if importlib.util.find_spec("onnxruntime") else "torch"
    assert {m["engine"] for m in models.values()} == {expected_engine}
    assert server.get("/v1/models/ner").json()["task_type"] == "token-classification"
    assert server.get("/v1/models/nope").status_code == 404


def test_batch_predict_matches_python(server, bundles) -> None:  # type: ignore[no-untyped-def]
    texts = ["great good film", "awful bad film", "love it"]
    response = server.post("/v1/models/sentiment/predict", json={"inputs": [texts[0], {"text": texts[1]}, texts[2]]})
    assert response.status_code == 200
    results = response.json()["results"]
    with only_plugins():
        expected = verticals.load(bundles["sentiment"]).predict(texts)
    assert [r["index"] for r in results] == [0, 1, 2]
    for result, prediction in zip(results, expected):
        assert result["ok"] and result["error"] is None
        assert result["prediction"]["label"] == prediction.label
        assert result["prediction"]["score"] == pytest.approx(prediction.score, abs=1e-4)


def test_token_model(server) -> None:  # type: ignore[no-untyped-def]
    response = server.post("/v1/models/ner/predict",
                           json={"inputs": ["John lives in Berlin", {"tokens": ["Mary", "visited", "Paris"]}]})
    assert response.status_code == 200
    first, second = response.json()["results"]
    assert first["prediction"]["tokens"] == ["John", "lives", "in", "Berlin"]
    assert len(second["prediction"]["tags"]) == 3


def test_bad_records_fail_alone(server) -> None:  # type: ignore[no-untyped-def]
    inputs = ["good film", {"text": "   "}, {"txt": "wrong field"}, 42, "x" * 201, {"text": "bad film"}]
    response = server.post("/v1/models/sentiment/predict", json={"inputs": inputs})
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["ok"] for r in results] == [True, False, False, False, False, True]
    assert "empty text" in results[1]["error"]["message"] and results[1]["error"]["field"] == "text"
    assert "missing column 'text'" in results[2]["error"]["message"]
    assert "got int" in results[3]["error"]["message"]
    assert "201 characters" in results[4]["error"]["message"] and results[4]["error"]["status"] == 422
    assert results[5]["prediction"]["label"] in {"pos", "neg"}


def test_limits_and_malformed_bodies(server) -> None:  # type: ignore[no-untyped-def]
    url = "/v1/models/sentiment/predict"
    too_many = server.post(url, json={"inputs": ["good"] * 9})
    assert too_many.status_code == 413 and "limit is 8" in too_many.json()["detail"]
    too_big = server.post(url, json={"inputs": ["a" * 25_000]})
    assert too_big.status_code == 413 and "bytes" in too_big.json()["detail"]
    broken = server.post(url, content=b'{"inputs": ["good",', headers={"content-type": "application/json"})
    assert broken.status_code == 400 and "malformed JSON" in broken.json()["detail"]
    assert server.post(url, content=b"not json at all").status_code == 422
    wrong_shape = server.post(url, json={"texts": ["good"]})
    assert wrong_shape.status_code == 422 and "inputs" in wrong_shape.json()["detail"]
    assert server.post(url, json={"inputs": []}).status_code == 422
    assert server.post(url, json=["good"]).status_code == 422
    unknown = server.post("/v1/models/nope/predict", json={"inputs": ["good"]})
    assert unknown.status_code == 404 and "sentiment, ner" in unknown.json()["detail"]


def test_concurrent_requests(server) -> None:  # type: ignore[no-untyped-def]
    def call(i: int) -> tuple[int, str]:
        response = server.post("/v1/models/sentiment/predict", json={"inputs": ["great film", "bad film"]})
        results = [{k: v for k, v in r.items() if k != "prediction_id"} for r in response.json()["results"]]
        return response.status_code, json.dumps(results)  # ids differ per prediction, answers must not

    with ThreadPoolExecutor(max_workers=12) as pool:
        outcomes = list(pool.map(call, range(36)))
    assert {status for status, _ in outcomes} == {200}
    assert len({body for _, body in outcomes}) == 1  # same input, same answer under concurrency


def test_openapi_documents_per_model_schemas(server) -> None:  # type: ignore[no-untyped-def]
    spec = server.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    items = schemas["SentimentPredictRequest"]["properties"]["inputs"]["items"]["anyOf"]
    assert {"$ref": "#/components/schemas/SentimentInput"} in items  # the record as served: no gold label
    assert "TokenPrediction" in schemas
    assert "/v1/models/ner/predict" in spec["paths"]
    assert server.get("/docs").status_code == 200


def test_health_and_ready_answer_head_for_load_balancers(server) -> None:  # type: ignore[no-untyped-def]
    """Review of the server: HEAD /health and HEAD /ready were 405, so a load balancer checking with HEAD
    would have marked a healthy server down."""
    for path in ["/health", "/ready"]:
        get, head = server.get(path), server.head(path)
        assert head.status_code == get.status_code == 200, (path, head.status_code)
        assert head.content == b""


def test_docs_pages_cannot_be_framed(server) -> None:  # type: ignore[no-untyped-def]
    """Review of the HTML outputs: /docs, /redoc and the OAuth2 redirect page sent no framing or type headers."""
    for path in ["/docs", "/redoc", "/docs/oauth2-redirect"]:
        answer = server.get(path)
        assert answer.status_code == 200, path
        assert answer.headers["x-frame-options"] == "DENY", path
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"], path
        assert answer.headers["x-content-type-options"] == "nosniff", path


def test_cli_serve_subprocess(bundles) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, VERTICALS_PLUGINS="")
    process = subprocess.Popen([sys.executable, "-m", "verticals", "serve", str(bundles["sentiment"]),
                                "--port", str(port), "--workers", "1"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    try:
        deadline, answer = time.monotonic() + 60, None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert answer is not None and answer.json()["models"] == ["sentiment"], process.stdout
    finally:
        process.terminate()
        process.wait(10)


def test_batcher_merges_concurrent_requests() -> None:
    from verticals.delivery.serve import Batcher

    calls: list[int] = []
    gate = threading.Event()

    def predict(records: list[int]) -> list[int]:
        calls.append(len(records))
        gate.wait(5)  # hold the first pass so later requests queue up behind it
        return [r * 10 for r in records]

    batcher = Batcher(predict, max_records=64)
    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = [pool.submit(batcher, [i, i + 100]) for i in range(6)]
        time.sleep(0.3)
        gate.set()
        results = [f.result(5) for f in futures]
    batcher.close()
    assert results == [[i * 10, (i + 100) * 10] for i in range(6)]
    assert sum(calls) == 12 and len(calls) < 6  # queued requests shared forward passes

    def failing(records: list[int]) -> list[int]:
        raise ValueError("boom")

    broken = Batcher(failing, max_records=8, batching=False)
    with pytest.raises(ValueError, match="boom"):
        broken([1])
    broken.close()


# ---- access: API key, CORS, what /v1/models shows; CLI argument errors; offline docs ------------------
@pytest.fixture(scope="module")
def sentiment(bundles):  # type: ignore[no-untyped-def]
    with only_plugins():
        return verticals.load(bundles["sentiment"], engine="torch")


def test_api_key_guards_the_models(sentiment) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    client = TestClient(create_app([sentiment], api_key="s3cret-key"))
    assert client.get("/health").status_code == 200  # liveness stays open for load balancers
    url = "/v1/models/sentiment/predict"
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-API-Key": "s3cret-ke"}):
        refused = client.post(url, json={"inputs": ["good"]}, headers=headers)
        assert refused.status_code == 401 and "API key" in refused.json()["detail"], headers
        assert client.get("/v1/models", headers=headers).status_code == 401
    bearer = {"Authorization": "Bearer s3cret-key"}
    assert client.post(url, json={"inputs": ["good"]}, headers=bearer).status_code == 200
    assert client.get("/v1/models", headers={"X-API-Key": "s3cret-key"}).status_code == 200
    spec = client.get("/openapi.json").json()  # so that /docs offers an "Authorize" button
    assert spec["components"]["securitySchemes"]


def test_cors_is_off_unless_configured(sentiment) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type"}
    closed = TestClient(create_app([sentiment]))
    assert "access-control-allow-origin" not in closed.get("/health", headers={"Origin": "https://app.example"}).headers
    assert "access-control-allow-origin" not in closed.options("/v1/models", headers=preflight).headers
    open_ = TestClient(create_app([sentiment], cors_origins=["https://app.example"]))
    answer = open_.options("/v1/models/sentiment/predict", headers=preflight)
    assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == "https://app.example"
    other = open_.get("/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_models_hide_training_file_names_unless_asked(sentiment) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    hidden = TestClient(create_app([sentiment])).get("/v1/models/sentiment").json()["data"]
    assert hidden["train"] == {"sha256": sentiment.info.data["train"]["sha256"], "records": 48}
    assert "tc.jsonl" not in json.dumps(hidden)
    shown = TestClient(create_app([sentiment], show_data_info=True)).get("/v1/models/sentiment").json()["data"]
    assert shown["train"]["file"] == "tc.jsonl"


@pytest.mark.parametrize(("option", "value", "fragment"), [
    ("--port", "99999", "--port 99999"), ("--port", "-1", "--port -1"), ("--max-batch", "0", "--max-batch 0"),
    ("--max-chars", "-5", "--max-chars -5")])
def test_cli_serve_bad_numbers_are_one_line(bundles, capsys, option, value, fragment) -> None:  # type: ignore[no-untyped-def]
    from verticals.cli import main

    assert main(["serve", str(bundles["sentiment"]), option, value]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err and "Traceback" not in err, err


def test_cli_serve_port_in_use_is_one_line(bundles, capsys) -> None:  # type: ignore[no-untyped-def]
    from verticals.cli import main

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert main(["serve", str(bundles["sentiment"]), "--port", str(busy.getsockname()[1])]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "cannot listen on 127.0.0.1:" in err[-1] and "--port" in err[-1], err


def test_cli_serve_warns_when_exposed_without_a_key(bundles, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import verticals.delivery.server
    from verticals.cli import main

    calls: list[dict] = []  # type: ignore[type-arg]
    monkeypatch.setattr(verticals.delivery.server, "run", lambda bundles, **kwargs: calls.append(kwargs))
    monkeypatch.delenv("VERTICALS_API_KEY", raising=False)
    assert main(["serve", str(bundles["sentiment"]), "--host", "0.0.0.0"]) == 0
    assert "without authentication" in capsys.readouterr().err
    assert main(["serve", str(bundles["sentiment"])]) == 0  # loopback: no warning
    assert "without authentication" not in capsys.readouterr().err
    monkeypatch.setenv("VERTICALS_API_KEY", "k" * 32)
    assert main(["serve", str(bundles["sentiment"]), "--host", "0.0.0.0", "--cors-origin", "https://a.example"]) == 0
    assert "without authentication" not in capsys.readouterr().err
    assert calls[-1]["api_key"] == "k" * 32 and calls[-1]["cors_origins"] == ["https://a.example"]


def test_docs_work_offline(server) -> None:  # type: ignore[no-untyped-def]
    """/docs and /redoc load every asset from the server itself (no CDN): all answer 200 and non-empty."""
    import re

    for page in ("/docs", "/redoc"):
        html = server.get(page)
        assert html.status_code == 200
        urls = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", html.text)
        assert urls, html.text
        assert not [u for u in urls if "//" in u], f"{page} loads from another host: {urls}"
        for url in urls:
            asset = server.get(url)
            assert asset.status_code == 200 and len(asset.content) > 0, url
        assert any(u.endswith(".js") for u in urls)


def test_request_examples_come_from_the_record_schema(server) -> None:  # type: ignore[no-untyped-def]
    spec = server.get("/openapi.json").json()

    def examples(name: str) -> list:  # type: ignore[type-arg]
        body = spec["paths"][f"/v1/models/{name}/predict"]["post"]["requestBody"]["content"]["application/json"]
        return [e["value"] for e in body["examples"].values()]

    for value in examples("sentiment"):
        assert "label" not in json.dumps(value) and "additionalProp" not in json.dumps(value)
        assert server.post("/v1/models/sentiment/predict", json=value).json()["results"][0]["ok"]
    answer = spec["paths"]["/v1/models/sentiment/predict"]["post"]["responses"]["200"]["content"]["application/json"]
    assert answer["example"]["results"][0]["prediction"]["label"] in {"pos", "neg"}  # predicted, not "string"
    assert "additionalProp" not in json.dumps(answer["example"])
    record = examples("ner")[0]["inputs"][0]
    assert set(record) == {"tokens"} and "tags" not in json.dumps(examples("ner"))
    assert server.post("/v1/models/ner/predict", json=examples("ner")[0]).json()["results"][0]["ok"]
