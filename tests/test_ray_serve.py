"""`verticals serve --ray`: the same app as `verticals serve` on Ray Serve replicas (delivery/ray_serve.py).

One local Ray cluster for the module (its start and the replicas' model loading take most of a minute on 2
cores); two replicas of a fraction of a CPU each, Ray's proxy on a free loopback port. The tests without a
cluster (the missing extra, option checks, the proxy's 503) run wherever ``ray.serve`` imports, or not at all.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import verticals

from .conftest import FAST, serve_in_thread, text_rows, write_csv

pytestmark = pytest.mark.distributed

MODEL = "bundle"
TEXTS = [f"question about my {a} and the {b}" for a, b in
         [("invoice", "refund"), ("parcel", "courier"), ("password", "login"), ("bill", "tracking"),
          ("email", "price"), ("delivery", "profile")]]
# one good record, a bad one and one over LIMITS' max_chars: each gets its own answer, as on the single server
RECORDS: list[Any] = [TEXTS[0], {"txt": "wrong field"}, "x" * 300, {"text": TEXTS[1]}]


def _limits() -> Any:
    from verticals.delivery.schemas import ServeLimits

    return ServeLimits(max_chars=200, max_batch=8)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _request(port: int, method: str, path: str, body: Any = None, raw: bytes | None = None,
             conn: http.client.HTTPConnection | None = None) -> tuple[int, dict[str, str], Any]:
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        conn.request(method, path, payload, {"content-type": "application/json"} if payload is not None else {})
        response = conn.getresponse()
        data = response.read()
        headers = {k.lower(): v for k, v in response.getheaders()}
        return response.status, headers, json.loads(data) if data and "json" in headers.get("content-type", "") \
            else data
    finally:
        if own:
            conn.close()


def _without_ids(value: Any) -> Any:
    """An answer without what differs per request or per process by design (prediction ids; /health's pid)."""
    if isinstance(value, dict):
        return {k: _without_ids(v) for k, v in value.items() if k not in ("prediction_id", "pid")}
    if isinstance(value, list):
        return [_without_ids(v) for v in value]
    return value


def _same(got: Any, want: Any) -> bool:
    """Equal answers: the same labels, keys and order; floats within 1e-4 (a batch's padding moves last digits)."""
    if isinstance(want, float) and isinstance(got, (int, float)):
        return abs(got - want) <= 1e-4
    if isinstance(want, dict):
        return isinstance(got, dict) and got.keys() == want.keys() and all(_same(got[k], want[k]) for k in want)
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(map(_same, got, want))
    return bool(got == want)


def test_without_ray_serve_the_flag_names_the_extra() -> None:
    """A Python without Ray Serve: one line naming the extra, exit 2 (before any bundle is read)."""
    code = ("import sys; sys.modules['ray'] = None; sys.modules['ray.serve'] = None\n"
            "from verticals.cli import main; sys.exit(main(['serve', 'no-such-bundle', '--ray']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "VERTICALS_PLUGINS": ""})
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "verticals: error: serving on Ray needs Ray Serve: pip install 'verticals[ray-serve]'"]


@pytest.mark.parametrize(("argv", "message"), [
    (["--replicas", "2"], "--replicas only applies with --ray: add --ray"),
    (["--ray", "--feedback-db", "fb.sqlite"], "--feedback-db cannot be used with --ray"),
    (["--ray", "--log-predictions", "--feedback-db", "fb.sqlite"], "--feedback-db cannot be used with --ray"),
])
def test_ray_options_are_checked_first(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    from verticals.cli import main

    assert main(["serve", "no-such-bundle", *argv]) == 2
    assert message in capsys.readouterr().err


def test_autoscaling_options_pass_through_to_ray() -> None:
    pytest.importorskip("ray.serve", reason="Ray Serve is not installed: pip install 'verticals[ray-serve]'")
    from verticals.delivery.ray_serve import parse_autoscaling
    from verticals.errors import ConfigError

    assert parse_autoscaling("min=1,max=4,target=2,upscale_delay_s=0.5") == {
        "min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 2, "upscale_delay_s": 0.5}
    with pytest.raises(ConfigError, match="unknown option maximum"):
        parse_autoscaling("maximum=4")
    with pytest.raises(ConfigError, match="max_replicas"):
        parse_autoscaling("min=1,max=0")
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_autoscaling("max")


def test_the_kuberay_example_is_a_valid_serve_config_for_app_builder() -> None:
    """docs/delivery.md's RayService: its serveConfigV2 passes Ray's own schema, names our builder and
    deployment, and its args are RayServeArgs; the proxy callback it sets exists."""
    pytest.importorskip("ray.serve", reason="Ray Serve is not installed: pip install 'verticals[ray-serve]'")
    import importlib

    import yaml
    from ray.serve.schema import ServeDeploySchema
    from verticals.delivery import ray_serve

    docs = (Path(__file__).resolve().parents[1] / "docs" / "delivery.md").read_text(encoding="utf-8")
    block = docs.split("A KubeRay `RayService`", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    service = yaml.safe_load(block)
    assert (service["apiVersion"], service["kind"]) == ("ray.io/v1", "RayService")
    config = ServeDeploySchema.model_validate(yaml.safe_load(service["spec"]["serveConfigV2"]))
    (app,) = config.applications
    module, _, name = app.import_path.partition(":")
    assert getattr(importlib.import_module(module), name) is ray_serve.app_builder
    assert [d.name for d in app.deployments] == [ray_serve.DEPLOYMENT_NAME]
    from ray.serve import Application
    from verticals.errors import ConfigError

    assert isinstance(ray_serve.app_builder(app.args), Application)
    with pytest.raises(ConfigError, match="bundles"):
        ray_serve.app_builder({"bundle": "/models/sentiment"})
    env = service["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": ray_serve.PROXY_CALLBACK_ENV, "value": ray_serve.PROXY_CALLBACK} in env
    module, _, name = ray_serve.PROXY_CALLBACK.partition(":")
    assert getattr(importlib.import_module(module), name) is ray_serve.proxy_middlewares


def test_the_proxy_answers_503_with_retry_after_when_a_replica_never_answered() -> None:
    """What Ray's proxy does when the replica died mid-request (its app returns without an answer): 503,
    Retry-After, the request id; a normal answer passes unchanged, its duplicated request id sent once."""
    import asyncio

    from verticals.delivery.ray_serve import RetryableProxyErrors

    async def died(scope: Any, receive: Any, send: Any) -> None:
        return None

    async def crashed(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("actor died")

    async def answered(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"x-request-id", b"abc"), (b"x-request-id", b"abc")]})
        await send({"type": "http.response.body", "body": b"{}"})

    async def client_left(scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "http.disconnect"

    def call(app: Any) -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        async def receive() -> dict[str, Any]:
            return {"type": "http.disconnect"}

        scope = {"type": "http", "method": "POST", "path": "/v1/models/m/predict",
                 "headers": [(b"x-request-id", b"abc")]}
        asyncio.run(RetryableProxyErrors(app)(scope, receive, send))
        return sent

    for app in (died, crashed):
        start, body = call(app)
        assert start["status"] == 503
        assert (b"retry-after", b"1") in start["headers"] and (b"x-request-id", b"abc") in start["headers"]
        assert "send it again" in json.loads(body["body"])["detail"]
    assert call(client_left) == []  # nobody to answer
    start, body = call(answered)
    assert start["status"] == 200 and start["headers"] == [(b"x-request-id", b"abc")] and body["body"] == b"{}"


def test_threads_follow_the_schedulers_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ray gives a replica of 1 CPU OMP_NUM_THREADS=1; the model then runs 1 thread, not one per core of the
    node (failed before: every replica took all cores)."""
    import torch
    from verticals.runtime import available_cores, configure_threads

    before = torch.get_num_threads()
    try:
        for value, threads in (("1", 1), ("4,2", available_cores()), ("zero", available_cores()),
                               ("100000", available_cores())):
            monkeypatch.setenv("OMP_NUM_THREADS", value)
            assert configure_threads(None) == threads == torch.get_num_threads(), value
        assert configure_threads(3) == 3
    finally:
        torch.set_num_threads(before)


def test_serve_keeps_its_h11_header_limit_when_httptools_is_installed(bundle: Path) -> None:
    """ray[serve] installs uvicorn[standard]; uvicorn's "auto" HTTP parser would then be httptools, which took
    a 10 MB header block; `verticals serve` stays on h11, which answers 400 (failed before with httptools)."""
    from uvicorn.protocols.http.h11_impl import H11Protocol
    from verticals.delivery.asgi import header_timeout_protocol
    from verticals.delivery.serve import create_app

    assert issubclass(header_timeout_protocol(1.0), H11Protocol)
    with serve_in_thread(create_app([bundle], engine="torch")) as port, \
            socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n")
        assert sock.recv(64).startswith(b"HTTP/1.1 400")


@pytest.fixture(scope="module")
def bundle(tiny_backbone: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ray-serve")
    verticals.train("text-classification", write_csv(root / "train.csv", text_rows(6, 0)), output=root / MODEL,
                    backbone=str(tiny_backbone), overrides=FAST)
    return root / MODEL


@pytest.fixture(scope="module")
def cluster(bundle: Path) -> Any:
    """Two replicas of the bundle on a local Ray cluster, Ray's proxy on a free port; yields (port, bundle)."""
    pytest.importorskip("ray.serve", reason="Ray Serve is not installed: pip install 'verticals[ray-serve]'")
    import ray
    from ray import serve
    from verticals.delivery import ray_serve

    # the proxy actor reads this at start: Ray's cluster processes inherit the environment of ray.init
    previous = os.environ.get(ray_serve.PROXY_CALLBACK_ENV)
    os.environ[ray_serve.PROXY_CALLBACK_ENV] = ray_serve.PROXY_CALLBACK
    try:
        # the dashboard serves the state API (ray.util.state) that finds the replicas' processes
        ray.init(num_cpus=2, include_dashboard=True, log_to_driver=False, configure_logging=False)
    except Exception as exc:  # noqa: BLE001 - a machine where Ray cannot start (memory, /dev/shm, ports)
        pytest.skip(f"a local Ray cluster cannot start here: {type(exc).__name__}: {exc}")
    port = _free_port()
    try:
        # Ray gives the proxy 60 s to start (serve/_private/constants.py); on 2 cores busy with the rest of the
        # suite and a benchmark its worker process took longer and the whole module errored at setup
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr("ray.serve._private.api.HTTP_PROXY_TIMEOUT", 300)
            serve.start(http_options={"host": "127.0.0.1", "port": port})
        args = ray_serve.RayServeArgs(bundles=[str(bundle)], engine="torch", limits=_limits())
        serve.run(ray_serve.build(args, replicas=2, replica_cpus=0.5), name=ray_serve.APP_NAME, route_prefix="/")
        yield port, bundle
    finally:
        serve.shutdown()
        ray.shutdown()
        if previous is None:
            os.environ.pop(ray_serve.PROXY_CALLBACK_ENV, None)
        else:
            os.environ[ray_serve.PROXY_CALLBACK_ENV] = previous


@pytest.fixture
def one_thread(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Models loaded in this process run 1 thread, as the replicas of 0.5 CPU do (the same last digits)."""
    import torch

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_two_replicas_answer_exactly_as_the_single_server(cluster: Any, one_thread: None) -> None:
    from verticals.delivery import ray_serve
    from verticals.delivery.serve import create_app

    port, bundle = cluster
    assert len(ray_serve.replica_pids()) == 2
    predict = f"/v1/models/{MODEL}/predict"
    calls = [("GET", "/health", None, None), ("GET", "/ready", None, None), ("GET", "/v1/models", None, None),
             ("POST", predict, {"inputs": RECORDS}, None), ("POST", predict, {"inputs": ["good"] * 9}, None),
             ("POST", predict, None, b'{"inputs": ["good",'), ("POST", "/v1/models/nope/predict", {"inputs": []}, None)]
    calls += [("POST", predict, {"inputs": [text]}, None) for text in TEXTS * 3]  # spread over both replicas
    with serve_in_thread(create_app([bundle], _limits(), engine="torch")) as single:
        deadline = time.monotonic() + 30
        while _request(single, "GET", "/ready")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        for method, path, body, raw in calls:
            want_status, want_headers, want = _request(single, method, path, body, raw)
            status, headers, got = _request(port, method, path, body, raw)
            assert (status, _without_ids(got)) == (want_status, _without_ids(want)), (method, path)
            assert headers.get("content-type") == want_headers.get("content-type")
            assert "x-request-id" in headers
    assert want_status == 200 and want["results"][0]["prediction"]["label"]


def test_killing_a_replica_loses_no_acknowledged_request(cluster: Any, one_thread: None) -> None:
    """Six clients on kept-alive connections while one replica's process is killed: every 200 is the right
    answer, every other answer is a 503 with Retry-After (or a dropped connection), and each request sent again
    on those is answered (by the other replica, or the one Ray restarts)."""
    from verticals.delivery import ray_serve

    port, bundle = cluster
    predictor = verticals.load(bundle, engine="torch")
    # the server batches concurrent requests (on by default): padding may move the last digits of a score, never
    # a label, so scores are compared to 1e-4 (_same)
    expected = {text: json.loads(predictor.predict([text])[0].model_dump_json()) for text in TEXTS}
    pids = ray_serve.replica_pids()
    assert len(pids) == 2
    wrong: list[str] = []
    statuses: dict[Any, int] = {}
    unanswered: list[str] = []
    killed, stop = threading.Event(), threading.Event()
    lock = threading.Lock()

    def client(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        i = 0
        while not stop.is_set():
            text, i = TEXTS[(i + k) % len(TEXTS)], i + 1
            for _ in range(20):  # a client that acts on 503 / a dropped connection: send it again
                try:
                    status, headers, body = _request(port, "POST", f"/v1/models/{MODEL}/predict",
                                                     {"inputs": [text]}, conn=conn)
                except (OSError, http.client.HTTPException) as exc:
                    status = type(exc).__name__
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                with lock:
                    statuses[status] = statuses.get(status, 0) + 1
                if status == 200:
                    if not _same(body["results"][0]["prediction"], expected[text]):
                        wrong.append(f"{text}: {body['results'][0]}")
                    break
                if status == 503:
                    assert headers.get("retry-after") == "1"
                elif not isinstance(status, str):
                    wrong.append(f"{text}: {status} {body}")
                    break
                time.sleep(0.2)
            else:
                unanswered.append(text)
        conn.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(6)]
    for thread in threads:
        thread.start()
    time.sleep(2)
    os.kill(pids[0], signal.SIGKILL)
    killed.set()
    time.sleep(4)
    stop.set()
    for thread in threads:
        thread.join(120)
    print("answers while a replica was killed:", statuses)
    assert not wrong and not unanswered
    assert statuses.get(200, 0) > 10
    assert set(statuses) <= {200, 503, "RemoteDisconnected", "ConnectionResetError", "BadStatusLine",
                             "IncompleteRead"}, statuses
    assert pids[0] not in ray_serve.replica_pids()
