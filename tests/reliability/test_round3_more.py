"""Reliability round 3 (issue 24), items 12, 13, 15, 17 and 18: pipes that blocked, environment failures that
ended in a traceback or left files behind, pipelined HTTP requests, and messages that blamed the wrong thing."""

from __future__ import annotations

import errno
import io
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import verticals
from verticals.cli import main
from verticals.testing import only_plugins

from ..conftest import FAST, serve_in_thread, text_rows, write_csv

pytestmark = pytest.mark.reliability
ENV = {**os.environ, "VERTICALS_PLUGINS": "", "HF_HUB_OFFLINE": "1"}


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    with only_plugins():
        code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def cli(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The CLI in a subprocess, so that a hang fails the test (TimeoutExpired) instead of the run."""
    try:
        return subprocess.run([sys.executable, "-m", "verticals", *args], env=ENV, text=True, capture_output=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"verticals {' '.join(args[:1])} blocked for {timeout} s")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> Path:
    root = tmp_path_factory.mktemp("bundle")
    with only_plugins():
        verticals.train("text-classification", write_csv(root / "train.csv", text_rows(8, 0)), output=root / "b",
                        overrides=FAST[1:] + ["training.epochs=1"], backbone=str(tiny_backbone))
    return root / "b"


# ---- 12. a FIFO as data ----------------------------------------------------------------------------------------
def feed(fifo: Path, source: Path) -> subprocess.Popen[bytes]:
    """A writer that blocks until someone opens the FIFO for reading, then writes ``source`` once."""
    os.mkfifo(fifo)
    return subprocess.Popen(["sh", "-c", f"cat '{source}' > '{fifo}'"])


@pytest.mark.parametrize("verb", ["train", "evaluate"])
def test_a_fifo_as_training_or_evaluation_data_is_refused_not_waited_on(verb: str, tmp_path: Path,
                                                                         tiny_backbone: Path, bundle: Path) -> None:
    source = write_csv(tmp_path / "src.csv", text_rows(4, 0))
    writer = feed(tmp_path / "pipe.csv", source)
    try:
        if verb == "train":
            args = ["train", "text-classification", "--train", str(tmp_path / "pipe.csv"), "--output",
                    str(tmp_path / "out"), "--backbone", str(tiny_backbone), "--set", "training.epochs=1"]
        else:
            args = ["evaluate", str(bundle), "--data", str(tmp_path / "pipe.csv")]
        result = cli(args)
    finally:
        writer.kill()
        writer.wait()
    assert result.returncode == 2, result.stderr
    assert "pipe.csv" in result.stderr and "named pipe (FIFO)" in result.stderr and "save it to a file" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_predict_streams_a_fifo_once(tmp_path: Path, bundle: Path) -> None:
    source = write_csv(tmp_path / "src.csv", text_rows(2, 3))
    writer = feed(tmp_path / "pipe.csv", source)
    try:
        result = cli(["predict", str(bundle), "--input", str(tmp_path / "pipe.csv"), "--output",
                      str(tmp_path / "p.jsonl")])
    finally:
        writer.kill()
        writer.wait()
    assert result.returncode == 0, result.stderr
    assert len((tmp_path / "p.jsonl").read_text(encoding="utf-8").splitlines()) == 6


# ---- 13. two servers racing for a port, an output under a file, a full disk ------------------------------------
def test_the_loser_of_a_race_for_a_port_gets_one_line(bundle: Path, monkeypatch, capsys) -> None:
    """Both servers bind (SO_REUSEADDR allows it while neither listens); the other one listens first."""
    rival = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    rival.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    rival.bind(("127.0.0.1", 0))
    port = rival.getsockname()[1]
    real_bind = socket.socket.bind

    def bind_then_lose_the_race(self: socket.socket, address: Any) -> None:
        real_bind(self, address)
        if self is not rival and address[1] == port:
            rival.listen()

    monkeypatch.setattr(socket.socket, "bind", bind_then_lose_the_race)
    try:
        code, _, err = run(["serve", str(bundle), "--port", str(port), "--workers", "1"], capsys)
    finally:
        rival.close()
    assert code in (1, 2) and f"127.0.0.1:{port}" in err and "internal error" not in err, err
    assert len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("verb", ["predict", "card", "export", "report"])
def test_an_output_under_a_regular_file_is_one_line_naming_it(verb: str, bundle: Path, tmp_path: Path,
                                                              capsys) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("mine\n", encoding="utf-8")
    data = write_csv(tmp_path / "d.csv", text_rows(2, 1))
    args = {"predict": ["predict", str(bundle), "hello", "--output", str(notes / "p.jsonl")],
            "card": ["card", str(bundle), "--output", str(notes / "card.md")],
            "export": ["export", str(bundle), "--output", str(notes / "onnx")],
            "report": ["report", str(bundle), "--data", str(data), "--output", str(notes / "report")]}[verb]
    code, _, err = run(args, capsys)
    assert code == 2 and f"{notes} is a file, not a folder" in err and "internal error" not in err, err
    assert notes.read_text(encoding="utf-8") == "mine\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.csv", "notes.txt"]


class FullDisk(io.StringIO):
    """A text file on a full disk: writes are buffered, and flushing them when it is closed fails."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.real = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self.real.write("{partial")

    def close(self) -> None:
        if not self.closed:
            self.real.close()
            super().close()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_predict_on_a_full_disk_says_where_and_leaves_nothing(bundle: Path, tmp_path: Path, monkeypatch,
                                                              capsys) -> None:
    import verticals.scale.streaming

    monkeypatch.setattr(verticals.scale.streaming, "open", lambda path, *a, **k: FullDisk(path), raising=False)
    data = write_csv(tmp_path / "d.csv", text_rows(2, 1))
    code, _, err = run(["predict", str(bundle), "--input", str(data), "--output", str(tmp_path / "p.jsonl")], capsys)
    assert code == 1 and "p.jsonl: No space left on device" in err and "internal error" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.csv"]  # no .p.jsonl.tmp-*, no lock, no p.jsonl


@pytest.mark.parametrize("where", ["checkpoint-", ".b.tmp-"], ids=["checkpoint", "bundle"])
def test_train_on_a_full_disk_says_where_and_leaves_nothing(where: str, tmp_path: Path, tiny_backbone: Path,
                                                            monkeypatch, capsys) -> None:
    import safetensors.torch
    from safetensors import SafetensorError

    real = safetensors.torch.serialize_file

    def serialize(tensors: Any, filename: str, metadata: Any = None) -> None:
        if where in str(filename):  # what the Rust writer reports when the disk fills mid-file
            Path(filename).write_bytes(b"\0" * 64)
            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
        real(tensors, filename, metadata=metadata)

    monkeypatch.setattr(safetensors.torch, "serialize_file", serialize)
    data = write_csv(tmp_path / "t.csv", text_rows(3, 0))
    code, _, err = run(["train", "text-classification", "--train", str(data), "--output", str(tmp_path / "b"),
                        "--backbone", str(tiny_backbone), "--set", "training.epochs=1"], capsys)
    assert code == 1 and "No space left on device" in err and "internal error" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("verticals:") and "warning" not in line]
    assert len(errors) == 1 and f"cannot write {tmp_path / 'b'}" in errors[0], err
    left = sorted(p.name for p in tmp_path.iterdir())
    # a failed bundle write keeps the finished run's checkpoints (for --resume); a failed checkpoint, nothing
    assert left == (["t.csv"] if where == "checkpoint-" else ["b.checkpoints", "t.csv"]), left


# ---- 15. pipelined HTTP/1.1 requests -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(bundle: Path) -> Iterator[int]:
    pytest.importorskip("uvicorn")
    from verticals.delivery.serve import create_app

    with only_plugins():
        app = create_app([bundle], engine="torch")
    with serve_in_thread(app, log_level="error") as port:
        yield port


def request(method: str, path: str, body: bytes = b"", host: bool = True) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\n" + ("Host: verticals\r\n" if host else "")
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def responses(port: int, payload: bytes) -> list[tuple[int, bytes]]:
    """(status, body) of every response to ``payload`` sent in one piece, read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(payload)
        data = b""
        while chunk := connection.recv(65536):
            data += chunk
    out = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        lengths = [int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length")]
        if lengths:
            out.append((status, rest[:lengths[0]]))
            data = rest[lengths[0]:]
        else:  # chunked (uvicorn's 400): the last response on the connection, read whole
            out.append((status, rest))
            data = b""
    return out


def test_pipelined_requests_are_answered_in_order_and_a_bad_one_says_why(server: int) -> None:
    predict = request("POST", "/v1/models/b/predict", b'{"inputs": ["a refund for my invoice"]}')
    payload = (request("GET", "/health") + predict + request("GET", "/nope") + request("GET", "/v1/models")
               + request("GET", "/health", host=False) + request("GET", "/health"))
    answers = responses(server, payload)
    assert [status for status, _ in answers] == [200, 200, 404, 200, 400], answers
    assert b'"status":"ok"' in answers[0][1] and b'"label"' in answers[1][1] and b'"b"' in answers[3][1]
    # HTTP/1.1 requires a Host header: the 400 names that, and says the pipelined request after it was not read
    assert b"Host" in answers[4][1] and b"not read" in answers[4][1], answers[4]


# ---- 17. the automatic hold-out, not "validation data", is what lost a label ---------------------------------------
def test_a_hold_out_that_takes_a_label_of_one_record_says_so(tmp_path: Path, tiny_backbone: Path, capsys) -> None:
    rows = [("hello refund", "billing"), ("parcel late", "shipping"), ("my refund", "billing"),
            ("parcel lost", "shipping"), ("refund me", "billing"), ("parcel gone", "shipping"),
            ("login broken", "account"), ("where is my gift", "gifts"), ("cancel my plan", "cancel")]
    data = write_csv(tmp_path / "t.csv", [{"text": text, "label": label} for text, label in rows])
    # the seeded 10 % hold-out of these 9 rows is the one 'gifts' record
    code, _, err = run(["train", "text-classification", "--train", str(data), "--output", str(tmp_path / "b"),
                        "--backbone", str(tiny_backbone)], capsys)
    assert code == 2 and "automatic hold-out" in err and "could not keep every label in training" in err, err
    assert "'gifts' (1 record)" in err and "--validation" in err and "in validation data" not in err, err
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("n", [2, 5])
def test_fraud_with_very_few_rows_names_the_hold_out(n: int, tmp_path: Path, capsys) -> None:
    pytest.importorskip("verticals_finance")
    sys.path.insert(0, str(Path(__file__).parents[2] / "plugins" / "finance" / "tests"))
    try:
        from finance_testdata import fraud_overrides, fraud_rows
        from finance_testdata import write_csv as write_rows
    finally:
        sys.path.pop(0)
    data = write_rows(tmp_path / "f.csv", fraud_rows(n))
    args = ["train", "finance.fraud", "--train", str(data), "--output", str(tmp_path / "b")]
    for override in fraud_overrides(text=False):
        args += ["--set", override]
    capsys.readouterr()
    with only_plugins("finance"):
        code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and "automatic hold-out" in err and "--validation" in err, err
    assert "validation data holds" not in err and "training data holds" not in err, err


# ---- 18. messages that named the wrong row, the wrong cause, or nothing ------------------------------------------
def test_in_memory_rows_are_named_from_zero_in_evaluate(bundle: Path) -> None:
    predictor = verticals.load(bundle)
    for records, row in [([{"text": "x", "label": "nope"}], 0),
                         ([{"text": "a", "label": "billing"}, {"text": "b", "label": "nope"}], 1)]:
        with pytest.raises(verticals.errors.DataError) as info:
            predictor.evaluate(records)
        assert str(info.value).startswith(f"<list>: row {row}: field 'label'"), info.value


def test_a_utf8_file_read_as_utf16_says_the_encoding_looks_wrong(tmp_path: Path) -> None:
    from verticals.data.readers import read_raw
    from verticals.errors import DataError

    path = tmp_path / "t.csv"
    path.write_bytes(b"text,label\nhello refund,billing\nparcel lost,shipping\n\n")  # even length: decodes as UTF-16
    assert len(path.read_bytes()) % 2 == 0
    with pytest.raises(DataError, match=r"t.csv: data.encoding is 'utf-16'.*looks like UTF-8"):
        read_raw(path, encoding="utf-16")
    wide = tmp_path / "w.csv"
    wide.write_bytes("text,label\nhello refund,billing\n".encode("utf-16-le"))  # no BOM: valid UTF-8 with NULs
    with pytest.raises(DataError, match=r"w.csv:1: .*looks like UTF-16.*data.encoding=utf-16"):
        read_raw(wide)


def test_carriage_return_line_ends_get_a_clear_line(tmp_path: Path) -> None:
    from verticals.data.readers import read_raw
    from verticals.errors import DataError

    path = tmp_path / "mac.csv"
    path.write_bytes(b"text,label\rhello refund,billing\rparcel late,shipping\r")
    with pytest.raises(DataError, match=r"mac.csv:1: line ends are carriage returns alone") as info:
        read_raw(path)
    assert "universal-newline" not in str(info.value)


def test_a_list_option_given_without_json_quotes_shows_the_value_and_the_json(tmp_path: Path, capsys) -> None:
    pytest.importorskip("verticals_finance")
    data = write_csv(tmp_path / "f.csv", [{"amount": "1.5", "is_fraud": "0"}, {"amount": "900", "is_fraud": "1"}])
    capsys.readouterr()
    with only_plugins("finance"):  # what `--set data.numeric_columns=["amount"]` becomes once the shell ate the quotes
        code = main(["train", "finance.fraud", "--train", str(data), "--output", str(tmp_path / "b"), "--set",
                     "data.label_column=is_fraud", "--set", "data.numeric_columns=[amount]"])
    err = capsys.readouterr().err
    assert code == 2 and "received the text '[amount]'" in err, err
    assert """--set 'data.numeric_columns=["amount"]'""" in err, err


@pytest.mark.parametrize("kind", ["gzip", "latin-1", "5000 digits"])
def test_unparsable_request_bodies_say_why(kind: str, bundle: Path) -> None:
    pytest.importorskip("fastapi")
    import gzip

    from fastapi.testclient import TestClient
    from verticals.delivery.serve import create_app

    good = '{"inputs": ["café refund"]}'
    body = {"gzip": gzip.compress(good.encode()), "latin-1": good.encode("latin-1"),
            "5000 digits": b'{"inputs": [' + b"9" * 5000 + b"]}"}[kind]
    with only_plugins():
        client = TestClient(create_app([bundle], engine="torch"))
    response = client.post("/v1/models/b/predict", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert {"gzip": "gzip", "latin-1": "not UTF-8", "5000 digits": "digits"}[kind] in response.json()["detail"]
