"""`verticals serve` under abuse, on loopback only: oversized and chunked bodies, slow headers and bodies,
hostile JSON (lone surrogates, deep nesting), a record that fails inside the model, and 200 concurrent
clients. Bounded in bytes and seconds (the whole file runs in well under a minute)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")

import verticals  # noqa: E402
from verticals.delivery.serve import ServeLimits, create_app  # noqa: E402
from verticals.delivery.server import uvicorn_config  # noqa: E402
from verticals.errors import DataError  # noqa: E402
from verticals.testing import make_tiny_backbone, only_plugins  # noqa: E402

pytestmark = pytest.mark.reliability

LIMITS = ServeLimits(max_batch=16, header_timeout=1.0, body_timeout=2.0)  # the default 4 MiB body limit
URL = "/v1/models/sentiment/predict"
POISON = "poison pill"  # a text the model itself refuses (stands in for e.g. an unknown user)
BUG = "trigger a bug"  # a text on which the task has a bug (an exception that is not a VerticalsError)


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * 4096


class PeakRss:
    """Highest resident size of this process (server and clients) while the block runs."""

    def __enter__(self) -> PeakRss:
        self.base = self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, rss_bytes())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.base) / 1e6


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    root = tmp_path_factory.mktemp("abuse")
    words = {"pos": ["great", "good"], "neg": ["bad", "awful"]}
    rows = [{"text": f"{w} film", "label": lab} for lab in words for w in words[lab] for _ in range(6)]
    (root / "tc.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with only_plugins():
        verticals.train("text-classification", root / "tc.jsonl", output=root / "sentiment",
                        backbone=str(make_tiny_backbone(root / "tiny")), overrides=["training.epochs=1"])
        predictor = verticals.load(root / "sentiment", engine="torch")
    predict = predictor.task.predict

    def refusing(records: list) -> list:  # type: ignore[type-arg]
        for i, record in enumerate(records):
            if record.text == POISON:
                raise DataError("the model cannot predict this text", path="<input>", line=i + 1, field="text")
            if record.text == BUG:
                raise IndexError("list index out of range")
        return predict(records)

    predictor.task.predict = refusing  # type: ignore[method-assign]
    app = create_app([predictor], LIMITS)

    def broken_route() -> None:
        raise KeyError("a bug below a route")

    app.add_api_route("/broken", broken_route)  # stands in for a bug the routes let escape
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn_config(app, LIMITS, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield sock.getsockname()[1]
    server.should_exit = True
    thread.join(10)
    sock.close()


def read_status(sock: socket.socket, timeout: float = 5) -> tuple[int | None, bytes]:
    """Status code and raw bytes of the answer, or (None, b"") if the server closed without one."""
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        data += sock.recv(65536)
    except (TimeoutError, ConnectionResetError):
        pass
    if not data.startswith(b"HTTP/1.1 "):
        return None, data
    return int(data.split()[1]), data


def test_chunked_oversize_body_is_refused_early(port: int) -> None:
    """Chunked transfer encoding has no Content-Length: the limit must be counted while the body streams."""
    sent, chunk = 0, b"a" * 65536
    with PeakRss() as memory, socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(f"POST {URL} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Transfer-Encoding: chunked\r\n\r\n".encode())
        head = b'{"inputs": ["'
        sock.sendall(b"%x\r\n%s\r\n" % (len(head), head))
        try:
            while sent < 64 * 1024 * 1024:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed the connection after answering
        status, answer = read_status(sock)
    assert status == 413, answer[:300]
    assert b"limit" in answer and b"connection: close" in answer.lower()
    assert sent < 48 * 1024 * 1024, f"the server read {sent / 1e6:.0f} MB before refusing"
    assert memory.growth_mb < 48, f"RSS grew {memory.growth_mb:.0f} MB for a refused body"


def test_declared_oversize_body_is_refused_before_reading(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(f"POST {URL} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {200 * 1024 * 1024}\r\n\r\n".encode())
        status, answer = read_status(sock)
    assert status == 413 and b"is 209715200 bytes; the limit is 4194304" in answer


def test_slow_headers_are_closed_within_the_timeout(port: int) -> None:
    """A client that sends its headers a byte at a time ("slow loris") is disconnected."""
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(0.3)
        closed_after = None
        for byte in b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:
            try:
                sock.sendall(bytes([byte]))
                if sock.recv(1) == b"":
                    closed_after = time.monotonic() - start
                    break
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                closed_after = time.monotonic() - start
                break
            if time.monotonic() - start > 6:
                break
    assert closed_after is not None, "the server kept a slow-header connection open for 6 s"
    assert closed_after < LIMITS.header_timeout + 1.5


def test_idle_connection_is_closed(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(LIMITS.header_timeout + 2)
        start = time.monotonic()
        assert sock.recv(1) == b""  # closed by the server, without an answer
        assert time.monotonic() - start < LIMITS.header_timeout + 1.5


def test_slow_body_times_out_with_408(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(f"POST {URL} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Content-Length: 100\r\n\r\n{{\"inputs\"".encode())
        status, answer = read_status(sock, timeout=LIMITS.body_timeout + 3)
    assert status == 408 and b"not received within 2 s" in answer


def test_hostile_json_gets_client_errors_and_keeps_the_connection(port: int) -> None:
    deep_object = b'{"a":' * 900 + b"1" + b"}" * 900
    deep_value = b'{"text": "x", "meta": ' + b"[" * 900 + b"]" * 900 + b"}"
    body = b'{"inputs": ["hello \\ud800", {"text": "a \\udc00 b"}, ' + deep_object + b", " + deep_value + \
        b', "good film", "' + POISON.encode() + b'"]}'
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        response = client.post(URL, content=body, headers={"content-type": "application/json"})
        assert response.status_code == 200, response.text[:300]
        results = response.json()["results"]
        assert [r["ok"] for r in results] == [False, False, False, False, True, False]
        assert all(r["error"]["status"] == 422 for r in results if not r["ok"])
        assert "lone surrogate" in results[0]["error"]["message"]
        assert results[1]["error"]["field"] == "text"
        assert "nested deeper than" in results[2]["error"]["message"]
        assert "nested deeper than" in results[3]["error"]["message"]
        assert results[5]["error"] == {"status": 422, "message": "the model cannot predict this text", "field": "text"}
        # deeper than the JSON parser goes: the whole body is refused, as malformed JSON, not a 500
        too_deep = client.post(URL, content=b'{"inputs": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}",
                               headers={"content-type": "application/json"})
        assert too_deep.status_code == 400, too_deep.text[:300]
        assert client.get("/health").status_code == 200  # same keep-alive connection still served


def test_non_finite_numbers_in_a_refused_body_are_a_422(port: int) -> None:
    """Review of the server: the 422 echoed the client's NaN back through a JSON response that refuses it,
    so `{"inputs": ["a"], "explain": NaN}` was a 500 with a traceback in the log."""
    feedback = URL.replace("/predict", "/feedback")
    bodies = [(URL, b'{"inputs": ["a"], "explain": NaN}'), (URL, b'{"inputs": -Infinity}'),
              (feedback, b'{"prediction_id": "x", "label": NaN}'), (feedback, b'{"input": "a", "wrong": Infinity}')]
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        for url, body in bodies:
            response = client.post(url, content=body, headers={"content-type": "application/json"})
            assert response.status_code == 422, (body, response.status_code, response.text[:300])
            assert "NaN" in response.text or "Infinity" in response.text  # what was refused is named


def test_a_record_of_too_many_values_is_refused_before_it_blocks_the_server(port: int) -> None:
    """Review of the server: the per-record checks walk every value on the event loop, and max_chars counts
    only text, so 64 records of 30,000 numbers each held /health for 1.4 s."""
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        body = {"inputs": [{"text": "a", "x": [0] * 20_000}, "good film"]}
        results = client.post(URL, json=body).json()["results"]
        assert results[0]["ok"] is False and "more than 10000 values" in results[0]["error"]["message"]
        assert results[1]["ok"] is True


def test_200_concurrent_clients(port: int) -> None:
    """200 clients, each on its own connection, for about 3 seconds: no 5xx, no dropped connection."""
    deadline = time.monotonic() + 3
    statuses: dict[int, int] = {}
    lock = threading.Lock()

    def client_loop(i: int) -> int:
        done = 0
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            while time.monotonic() < deadline or done == 0:
                if i % 4:
                    status = client.get("/health").status_code
                else:
                    status = client.post(URL, json={"inputs": ["great film", {"text": "bad film"}]}).status_code
                with lock:
                    statuses[status] = statuses.get(status, 0) + 1
                done += 1
        return done

    with PeakRss() as memory, ThreadPoolExecutor(max_workers=200) as pool:
        started = time.monotonic()
        counts = list(pool.map(client_loop, range(200)))
        elapsed = time.monotonic() - started
    assert set(statuses) == {200}, statuses
    assert min(counts) >= 1 and elapsed < 40
    assert memory.growth_mb < 300, f"RSS grew {memory.growth_mb:.0f} MB under 200 clients"


def test_a_bug_is_a_json_500_and_keeps_the_connection(port: int) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        broken = client.get("/broken")
        assert broken.status_code == 500 and "internal error (KeyError)" in broken.json()["detail"]
        assert broken.headers.get("connection") != "close"
        assert client.get("/health").status_code == 200  # the same connection still answers
        # a bug on one record fails that record alone, as a 500, and the others are predicted
        results = client.post(URL, json={"inputs": ["good film", BUG, "bad film"]}).json()["results"]
        assert [r["ok"] for r in results] == [True, False, True]
        assert results[1]["error"]["status"] == 500 and "IndexError" in results[1]["error"]["message"]
