"""Batch scoring of files of any size: chunked readers and writers with bounded memory.

``predict_file`` reads CSV / TSV / JSONL / Parquet input ``chunk_size`` records at a time, predicts each
chunk, and appends the predictions to the output, so memory depends on the chunk size, never on the file
size. The output appears only when every record was scored (it is written under a temporary name and
renamed into place). Records are validated by the task exactly as ``verticals predict`` validates them;
the first bad record stops the run with a :class:`DataError` naming its file and line.

Input is read by the task's reader (:mod:`verticals.data.readers`, the same one ``train`` and ``evaluate``
use), record by record: CSV, TSV, JSONL, CoNLL and Parquet (pyarrow, ``pip install verticals[parquet]``)
stream; a JSON array is one document and is read whole.
"""

from __future__ import annotations

import csv
import json
import sys
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..bundles.outputs import check_file_replaceable, claim, refuse_same_file, replace_file, write_failure
from ..data.readers import EXTENSION_FORMATS, Progress, RawRecord, iter_raw  # noqa: F401 - iter_raw re-exported
from ..data.readers import pyarrow_parquet as _pyarrow_parquet
from ..errors import ConfigError, DataError

if TYPE_CHECKING:
    from ..predictor import Predictor

DEFAULT_CHUNK_SIZE = 2048
STREAM_FORMATS = EXTENSION_FORMATS
STREAMABLE = ("csv", "tsv", "jsonl", "parquet")
"""Formats predictions can be written in (and Ray reads); every reader format streams on input."""


def stream_format(path: str | Path, fmt: str = "auto") -> str | None:
    """The table format of ``path`` ('csv', 'tsv', 'jsonl', 'parquet'), or None if it has none."""
    kind = fmt if fmt != "auto" else STREAM_FORMATS.get(Path(path).suffix.lower())
    return kind if kind in STREAMABLE else None


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

    def __init__(self, path: str | Path, fmt: str = "auto", *, overwrite: bool = False) -> None:
        self.path = Path(path)
        self.overwrite = overwrite
        check_file_replaceable(self.path, "predictions", overwrite)
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
        try:
            check_file_replaceable(self.path, "predictions", self.overwrite)  # still so, under the lock
        except BaseException:
            self._claim.__exit__(None, None, None)
            raise
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
        try:
            try:
                # closing flushes the last rows: on a full disk it is this that fails
                if self._handle is not None:
                    self._handle.close()
                if self._parquet is not None:
                    self._parquet.close()
                if exc_type is None and self.tmp.exists():
                    replace_file(self.tmp, self.path, "predictions")
            finally:
                if self.tmp.exists():
                    self.tmp.unlink()  # a failed write or close leaves nothing behind
        except Exception as error:
            failure = write_failure(error, self.path)
            if failure is None:
                raise
            raise failure from None
        finally:
            self._claim.__exit__(exc_type, exc, tb)
        failure = write_failure(exc, self.path) if exc is not None else None
        if failure is not None:  # a write in the body failed for want of space: say where
            raise failure from None


def predict_file(predictor: Predictor, input: Any, output: str | Path, *,
                 chunk_size: int = DEFAULT_CHUNK_SIZE, keep_columns: Sequence[str] = (),
                 progress: bool = True, overwrite: bool = False) -> int:
    """Score every record of ``input`` into ``output`` chunk by chunk; return the number of predictions.

    ``input`` is a file path (read record by record), or any in-memory form ``Predictor.predict`` takes
    (a pandas DataFrame, a ``datasets.Dataset``, a list of records or texts).
    The output format follows its extension (.jsonl, .csv, .tsv, .parquet; anything else is JSONL) and
    holds one row per input record, in input order: ``keep_columns`` copied from the input (e.g. an id),
    then the prediction's fields. A progress bar goes to stderr. An existing ``output`` is replaced only with
    ``overwrite=True`` and only when it is a predictions file Verticals wrote (unchanged since).
    """
    if chunk_size < 1:
        raise ConfigError(f"chunk_size must be at least 1, got {chunk_size}")
    from ..data.records import is_path, records_from

    if is_path(input):
        refuse_same_file(input, output)
    task = predictor.task
    counter = Progress()
    if is_path(input):  # the task's own reader (the one every verb uses), one record at a time
        raw_records: Iterable[RawRecord] = task.iter_raw(Path(input), progress=counter)
    else:  # a DataFrame, a datasets.Dataset, a list of records or texts: already in memory
        raw_records = records_from(input, task.iter_raw, text=task.record_from_text, keep=task.Record)
        counter.unit = "rec"
    bar = None
    with PredictionWriter(output, overwrite=overwrite) as writer:
        for chunk in chunked(raw_records, chunk_size):
            records = [task.record_of(raw, require_labels=False) for raw in chunk]
            predictions = task.predict(records)
            rows = []
            for raw, prediction in zip(chunk, predictions):
                kept = {}
                for column in keep_columns:
                    if not isinstance(raw, RawRecord) or column not in raw.data:
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


def _progress_bar(counter: Progress, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=counter.total, unit=counter.unit, unit_scale=counter.unit == "B", desc="predict",
                file=sys.stderr, disable=not enabled)
