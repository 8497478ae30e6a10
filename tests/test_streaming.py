"""Chunked batch scoring: readers, writers, `verticals predict --input --output` and bounded memory."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import verticals
from verticals.errors import DataError
from verticals.streaming import PredictionWriter, iter_raw, predict_file

from .conftest import FAST, run_cli, text_rows, write_csv

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> Path:
    root = tmp_path_factory.mktemp("stream")
    train = write_csv(root / "train.csv", text_rows(8, 0))
    verticals.train("text-classification", train, output=root / "bundle", backbone=str(tiny_backbone),
                    overrides=FAST)
    return root / "bundle"


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    return [{"id": f"r{i}", "text": row["text"]} for i, row in enumerate(text_rows(10, 3))]


def write_input(path: Path, rows: list[dict[str, str]]) -> Path:
    if path.suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=7)
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    else:
        write_csv(path, rows)
    return path


def read_output(path: Path) -> list[dict]:
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    if path.suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize(("source", "target"), [("csv", "jsonl"), ("jsonl", "csv"), ("parquet", "parquet")])
def test_predict_file_matches_in_memory_predictions(bundle, rows, tmp_path, source, target):
    predictor = verticals.load(bundle)
    expected = predictor.predict([r["text"] for r in rows])
    source_path = write_input(tmp_path / f"in.{source}", rows)
    out = tmp_path / f"out.{target}"
    written = predict_file(predictor, source_path, out, chunk_size=7, keep_columns=["id"], progress=False)
    got = read_output(out)
    assert written == len(rows) == len(got)
    assert [g["id"] for g in got] == [r["id"] for r in rows]  # input order survives chunking
    assert [g["label"] for g in got] == [p.label for p in expected]
    for g, p in zip(got, expected):
        assert float(g["score"]) == pytest.approx(p.score, abs=1e-5)
        scores = g["scores"] if isinstance(g["scores"], dict) else json.loads(g["scores"])
        assert scores == pytest.approx(p.scores, abs=1e-5)
    left = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert left == [f".{out.name}.verticals-output.json"]  # no temp file left; the proof that we wrote it


def test_cli_streams_with_progress_and_keeps_text_mode(bundle, rows, tmp_path):
    source = write_input(tmp_path / "in.csv", rows)
    out = tmp_path / "preds.jsonl"
    result = run_cli("predict", str(bundle), "--input", str(source), "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert "predict" in result.stderr and f"wrote {len(rows)} predictions" in result.stderr
    assert len(read_output(out)) == len(rows)
    assert result.stdout == ""
    texts = run_cli("predict", str(bundle), "my invoice and the refund", "--json")
    assert texts.returncode == 0 and json.loads(texts.stdout)[0]["label"] in {"billing", "shipping", "account"}


def test_bad_record_mid_file_names_line_and_leaves_no_output(bundle, rows, tmp_path):
    source = write_input(tmp_path / "in.csv", rows[:12] + [{"id": "bad", "text": "  "}] + rows[12:])
    out = tmp_path / "out.jsonl"
    with pytest.raises(DataError) as info:
        predict_file(verticals.load(bundle), source, out, chunk_size=5, progress=False)
    assert info.value.line == 14 and info.value.field == "text"
    assert not out.exists() and list(tmp_path.glob(".out.jsonl.tmp-*")) == []
    result = run_cli("predict", str(bundle), "--input", str(source), "--output", str(out))
    assert result.returncode == 2 and "in.csv:14" in result.stderr and "Traceback" not in result.stderr


def test_reader_is_lazy_so_memory_is_bounded(bundle, tmp_path, monkeypatch):
    """The first chunk is predicted before the reader has read more than a small part of the file."""
    many = [{"id": str(i), "text": f"question about my parcel number {i}"} for i in range(3000)]
    source = write_input(tmp_path / "big.jsonl", many)
    predictor = verticals.load(bundle)
    seen: list[int] = []
    original = predictor.task.predict

    def spy(records):
        seen.append(len(records))
        return original(records)

    monkeypatch.setattr(predictor.task, "predict", spy)
    positions: list[int] = []
    import verticals.tasks.base as base  # the one reader, as every task type's iter_raw calls it

    real_iter = base.iter_raw

    def tracking_iter(*args, **kwargs):
        progress = kwargs["progress"]
        for raw in real_iter(*args, **kwargs):
            positions.append(progress.done)
            yield raw

    monkeypatch.setattr(base, "iter_raw", tracking_iter)
    assert predict_file(predictor, source, tmp_path / "o.jsonl", chunk_size=100, progress=False) == 3000
    assert max(seen) == 100 and len(seen) == 30
    assert positions[99] < source.stat().st_size / 20  # 100 records read of 3000 when the first chunk ran


def test_csv_reader_handles_bom_quotes_and_reports_ragged_rows(tmp_path):
    good = tmp_path / "good.csv"
    good.write_bytes('\ufeffid,text\n1,"multi\nline, quoted"\n2,plain\n'.encode())
    records = list(iter_raw(good))
    assert [r.data for r in records] == [{"id": "1", "text": "multi\nline, quoted"}, {"id": "2", "text": "plain"}]
    assert [r.line for r in records] == [3, 4]
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("id,text\n1,a\n2,b,extra\n", encoding="utf-8")
    with pytest.raises(DataError, match="different number of columns") as info:
        list(iter_raw(ragged))
    assert info.value.line == 3


def test_jsonl_reader_errors(tmp_path):
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "a"}\n{"text": \n', encoding="utf-8")
    with pytest.raises(DataError, match="invalid JSON") as info:
        list(iter_raw(broken))
    assert info.value.line == 2
    array = tmp_path / "array.jsonl"  # one reader for every verb: a JSON array is read (whole) here too
    array.write_text('[{"text": "a"}]\n', encoding="utf-8")
    assert [r.data for r in iter_raw(array)] == [{"text": "a"}]
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"text": "ok"}\n{"text": "caf\xe9"}\n')
    with pytest.raises(DataError, match="undecodable") as info:
        list(iter_raw(latin))
    assert info.value.line == 2


def test_writer_removes_partial_output_on_error(tmp_path):
    out = tmp_path / "o.csv"
    with pytest.raises(RuntimeError), PredictionWriter(out) as writer:
        writer.write([{"label": "a", "scores": {"a": 1.0}}])
        raise RuntimeError("boom")
    assert not out.exists() and list(tmp_path.iterdir()) == []
