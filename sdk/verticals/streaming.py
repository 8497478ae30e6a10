"""Batch scoring of files of any size: chunked readers and writers with bounded memory.

``predict_file`` reads CSV / TSV / JSONL / Parquet input ``chunk_size`` records at a time, predicts each
chunk, and appends the predictions to the output, so memory depends on the chunk size, never on the file
size. The output appears only when every record was scored (it is written under a temporary name and
renamed into place). Records are validated by the task exactly as ``verticals predict`` validates them;
the first bad record stops the run with a :class:`DataError` naming its file and line.

CSV and JSONL are read through the standard library, Parquet through pyarrow (``pip install
verticals[parquet]``); other formats (e.g. CoNLL) are read whole by the task and then chunked.
"""

from __future__ import annotations

import codecs
import csv
import json
import os
import sys
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._outputs import check_file_output, claim, refuse_same_file
from .data import EXTENSION_FORMATS, RawRecord, parse_json_line
from .errors import ConfigError, DataError

if TYPE_CHECKING:
    from .predictor import Predictor

DEFAULT_CHUNK_SIZE = 2048
STREAM_FORMATS = {**EXTENSION_FORMATS, ".parquet": "parquet", ".pq": "parquet"}
STREAMABLE = ("csv", "tsv", "jsonl", "parquet")


def stream_format(path: str | Path, fmt: str = "auto") -> str | None:
    """The streamable format of ``path`` ('csv', 'tsv', 'jsonl', 'parquet'), or None if it has none."""
    kind = fmt if fmt != "auto" else STREAM_FORMATS.get(Path(path).suffix.lower())
    return kind if kind in STREAMABLE else None


class _Progress:
    """How far through its input a reader is: bytes for text files, rows for Parquet."""

    def __init__(self) -> None:
        self.done = 0
        self.total: int | None = None
        self.unit = "B"


def _lines(path: Path, encoding: str, progress: _Progress) -> Iterator[tuple[int, str]]:
    """(line number, decoded line with its ending) from a file read in binary, one line at a time."""
    if codecs.lookup(encoding).name.startswith(("utf-16", "utf-32")):
        raise DataError(f"streaming needs an ASCII-compatible encoding, not '{encoding}'; re-save the file "
                        f"as UTF-8", path=path)
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        raise DataError("file not found", path=path) from None
    except IsADirectoryError:
        raise DataError("is a directory, expected a data file", path=path) from None
    with handle:
        for number, raw in enumerate(handle, start=1):
            progress.done += len(raw)
            if number == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8):]  # spreadsheet exports start with a BOM
            try:
                yield number, raw.decode(encoding)
            except UnicodeDecodeError as exc:
                raise DataError(f"undecodable bytes for encoding '{encoding}' at byte {exc.start} of the line; "
                                f"re-save the file as {encoding} or set data.encoding", path=path,
                                line=number) from None


def _iter_delimited(path: Path, delimiter: str, encoding: str, progress: _Progress) -> Iterator[RawRecord]:
    lines = _lines(path, encoding, progress)
    current = [0]

    def text() -> Iterator[str]:
        for number, line in lines:
            current[0] = number
            yield line

    reader = csv.DictReader(text(), delimiter=delimiter, strict=True)
    try:
        if not reader.fieldnames:
            raise DataError("no header row; expected column names on line 1", path=path, line=1)
        width = len(reader.fieldnames)
        found = False
        for row in reader:
            if None in row or len(row) != width or any(v is None for v in row.values()):
                raise DataError(f"row has a different number of columns than the header ({width})",
                                path=path, line=current[0])
            if not any((v or "").strip() for v in row.values()):
                continue
            found = True
            yield RawRecord(str(path), current[0], dict(row))
    except csv.Error as exc:
        raise DataError(f"malformed CSV: {exc}", path=path, line=current[0]) from None
    if not found:
        raise DataError("file has a header but no records", path=path)


def _iter_jsonl(path: Path, encoding: str, progress: _Progress) -> Iterator[RawRecord]:
    found = False
    for number, line in _lines(path, encoding, progress):
        if not line.strip():
            continue
        if not found and line.lstrip().startswith("["):
            raise DataError("a JSON array cannot be streamed; write one object per line (JSONL)", path=path,
                            line=number)
        record = parse_json_line(line, path, number)
        found = True
        yield record
    if not found:
        raise DataError("file is empty; expected at least one record", path=path)


def _iter_parquet(path: Path, batch_size: int, progress: _Progress) -> Iterator[RawRecord]:
    pq = _pyarrow_parquet()
    try:
        parquet = pq.ParquetFile(path)
    except FileNotFoundError:
        raise DataError("file not found", path=path) from None
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for unreadable files
        raise DataError(f"not a readable Parquet file ({exc})", path=path) from None
    row = 0
    progress.total, progress.unit = parquet.metadata.num_rows, "rec"
    with parquet:
        for batch in parquet.iter_batches(batch_size=batch_size):
            for item in batch.to_pylist():
                row += 1
                progress.done = row
                yield RawRecord(str(path), row, item)
    if row == 0:
        raise DataError("file has no rows", path=path)


def _pyarrow_parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError("Parquet needs pyarrow: pip install 'verticals[parquet]'") from None
    return pq


def iter_raw(path: str | Path, fmt: str = "auto", encoding: str = "utf-8", *, chunk_size: int = DEFAULT_CHUNK_SIZE,
             progress: _Progress | None = None) -> Iterator[RawRecord]:
    """Raw records of a CSV/TSV/JSONL/Parquet file, one at a time (nothing else is held in memory)."""
    path = Path(path)
    progress = progress or _Progress()
    kind = stream_format(path, fmt)
    if kind in ("csv", "tsv"):
        return _iter_delimited(path, "," if kind == "csv" else "\t", encoding, progress)
    if kind == "jsonl":
        return _iter_jsonl(path, encoding, progress)
    if kind == "parquet":
        return _iter_parquet(path, chunk_size, progress)
    raise DataError(f"cannot stream format '{fmt if fmt != 'auto' else path.suffix}'; expected csv, tsv, jsonl "
                    f"or parquet", path=path)


def chunked(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Lists of up to ``size`` consecutive items."""
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def flatten_prediction(row: dict[str, Any]) -> dict[str, Any]:
    """A prediction dict with nested values (per-label scores, entity lists) as JSON strings, so every
    row of a table output has the same flat, typed columns."""
    return {key: json.dumps(value, ensure_ascii=False, default=str) if isinstance(value, (dict, list, tuple))
            else value for key, value in row.items()}


class PredictionWriter:
    """Appends prediction rows to a JSONL, CSV/TSV or Parquet file under a temporary name; ``commit``
    renames it into place. Use as a context manager: leaving it on an exception removes the partial file."""

    def __init__(self, path: str | Path, fmt: str = "auto") -> None:
        self.path = Path(path)
        check_file_output(self.path)
        self.format = stream_format(self.path, fmt) or "jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.parent / f".{self.path.name}.tmp-{uuid.uuid4().hex[:8]}"
        self.rows = 0
        self._handle: Any = None
        self._csv: Any = None
        self._parquet: Any = None

    def __enter__(self) -> PredictionWriter:
        if self.format == "parquet":
            _pyarrow_parquet()
        self._claim = claim(self.path)  # one writer at a time; cleans a killed writer's leftovers
        self._claim.__enter__()
        if self.format != "parquet":
            try:
                self._handle = open(self.tmp, "w", encoding="utf-8", newline="")
            except BaseException:
                self._claim.__exit__(None, None, None)
                raise
        return self

    def write(self, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        if self.format == "jsonl":
            self._handle.writelines(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows)
        elif self.format in ("csv", "tsv"):
            flat = [flatten_prediction(r) for r in rows]
            if self._csv is None:
                self._csv = csv.DictWriter(self._handle, fieldnames=list(flat[0]),
                                           delimiter="," if self.format == "csv" else "\t")
                self._csv.writeheader()
            self._csv.writerows(flat)
        else:
            import pyarrow as pa

            table = pa.Table.from_pylist([flatten_prediction(r) for r in rows])
            if self._parquet is None:
                self._parquet = _pyarrow_parquet().ParquetWriter(self.tmp, table.schema)
            self._parquet.write_table(table.cast(self._parquet.schema))
        self.rows += len(rows)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._handle is not None:
            self._handle.close()
        if self._parquet is not None:
            self._parquet.close()
        try:
            if exc_type is None and self.tmp.exists():
                os.replace(self.tmp, self.path)
            elif self.tmp.exists():
                self.tmp.unlink()
        finally:
            self._claim.__exit__(exc_type, exc, tb)


def predict_file(predictor: Predictor, input: str | Path, output: str | Path, *,
                 chunk_size: int = DEFAULT_CHUNK_SIZE, keep_columns: Sequence[str] = (),
                 progress: bool = True) -> int:
    """Score every record of ``input`` into ``output`` chunk by chunk; return the number of predictions.

    The output format follows its extension (.jsonl, .csv, .tsv, .parquet; anything else is JSONL) and
    holds one row per input record, in input order: ``keep_columns`` copied from the input (e.g. an id),
    then the prediction's fields. A progress bar goes to stderr.
    """
    if chunk_size < 1:
        raise ConfigError(f"chunk_size must be at least 1, got {chunk_size}")
    refuse_same_file(input, output)
    task = predictor.task
    options = task.data_options
    input = Path(input)
    counter = _Progress()
    if stream_format(input, options.format):
        raw_records: Iterable[RawRecord] = iter_raw(input, options.format, options.encoding,
                                                    chunk_size=chunk_size, progress=counter)
        counter.total = input.stat().st_size if input.is_file() else None
    else:  # e.g. CoNLL: sentences span lines, so the task reads the file whole
        raw_records = task.read_raw(input)
        counter.unit = "rec"
    bar = None
    with PredictionWriter(output) as writer:
        for chunk in chunked(raw_records, chunk_size):
            records = [task.to_record(raw, require_labels=False) for raw in chunk]
            predictions = task.predict(records)
            rows = []
            for raw, prediction in zip(chunk, predictions):
                kept = {}
                for column in keep_columns:
                    if column not in raw.data:
                        raise DataError(f"no column '{column}' to keep (found: {', '.join(map(str, raw.data))})",
                                        path=raw.path, line=raw.line, field=column)
                    kept[column] = raw.data[column]
                rows.append(kept | prediction.model_dump())
            writer.write(rows)
            if bar is None:  # created after the first chunk, when a Parquet reader knows its row count
                bar = _progress_bar(counter, progress)
            bar.update((counter.done if counter.done else writer.rows) - bar.n)
            bar.set_postfix(predictions=writer.rows, refresh=False)
    if bar is not None:
        bar.close()
    return writer.rows


def _progress_bar(counter: _Progress, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=counter.total, unit=counter.unit, unit_scale=counter.unit == "B", desc="predict",
                file=sys.stderr, disable=not enabled)
