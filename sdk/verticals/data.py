"""Reading CSV / TSV / JSONL / CoNLL files into raw records that remember where they came from.

Readers never guess silently: undecodable bytes, ragged rows, malformed JSON and empty files are
errors naming the file and line. Field-level validation happens in the task type (pydantic records).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError

EXTENSION_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".conll": "conll",
    ".iob": "conll",
    ".bio": "conll",
}


@dataclass(frozen=True)
class RawRecord:
    """One record as read from a file, with its origin for error messages."""

    path: str
    line: int
    data: dict[str, Any]


def detect_format(path: Path, fmt: str, default: str = "csv") -> str:
    if fmt != "auto":
        return fmt
    return EXTENSION_FORMATS.get(path.suffix.lower(), default)


def read_text(path: str | Path, encoding: str = "utf-8") -> str:
    """Read a whole file, turning missing files and undecodable bytes into :class:`DataError`."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError("file not found", path=path) from None
    except IsADirectoryError:
        raise DataError("is a directory, expected a data file", path=path) from None
    except OSError as exc:
        raise DataError(f"cannot read file ({exc.strerror})", path=path) from None
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(
            f"undecodable bytes for encoding '{encoding}' at byte {exc.start}; "
            f"re-save the file as {encoding} or set data.encoding",
            path=path,
            line=line,
        ) from None
    except LookupError:
        raise DataError(f"unknown encoding '{encoding}' (data.encoding)", path=path) from None
    if text.startswith("\ufeff"):
        text = text[1:]  # a UTF-8 BOM from spreadsheet exports is not part of the first column name
    if not text.strip():
        raise DataError("file is empty; expected at least one record", path=path)
    return text


def read_delimited(path: str | Path, delimiter: str = ",", encoding: str = "utf-8") -> list[RawRecord]:
    text = read_text(path, encoding)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    records: list[RawRecord] = []
    try:
        if not reader.fieldnames:
            raise DataError("no header row; expected column names on line 1", path=path, line=1)
        width = len(reader.fieldnames)
        for row in reader:
            if None in row or len(row) != width or any(v is None for v in row.values()):
                raise DataError(
                    f"row has a different number of columns than the header ({width})",
                    path=path,
                    line=reader.line_num,
                )
            if not any((v or "").strip() for v in row.values()):
                continue  # blank line
            records.append(RawRecord(str(path), reader.line_num, dict(row)))
    except csv.Error as exc:
        raise DataError(f"malformed CSV: {exc}", path=path, line=reader.line_num) from None
    if not records:
        raise DataError("file has a header but no records", path=path)
    return records


def parse_json_line(line: str, path: str | Path, number: int) -> RawRecord:
    """One JSONL line as a record, or a DataError naming the file and line."""
    try:
        item = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON ({exc.msg}); expected one object per line", path=path, line=number) from None
    if not isinstance(item, dict):
        raise DataError(f"expected a JSON object, found {type(item).__name__}", path=path, line=number)
    return RawRecord(str(path), number, item)


def read_jsonl(path: str | Path, encoding: str = "utf-8") -> list[RawRecord]:
    text = read_text(path, encoding)
    records: list[RawRecord] = []
    stripped = text.lstrip()
    if stripped.startswith("["):  # a JSON array of objects is accepted too
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"invalid JSON: {exc.msg}", path=path, line=exc.lineno) from None
        for index, item in enumerate(items, start=1):
            if not isinstance(item, dict):
                raise DataError(f"record {index} is {type(item).__name__}, expected an object", path=path)
            records.append(RawRecord(str(path), index, item))
        return records
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        records.append(parse_json_line(line, path, number))
    if not records:
        raise DataError("file is empty; expected at least one record", path=path)
    return records


def read_conll(path: str | Path, encoding: str = "utf-8") -> list[RawRecord]:
    """Token-per-line files: ``token<TAB>tag`` (tag = last column), blank line between sentences."""
    text = read_text(path, encoding)
    records: list[RawRecord] = []
    tokens: list[str] = []
    tags: list[str] = []
    start = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("-DOCSTART-"):
            continue
        if not line.strip():
            if tokens:
                records.append(RawRecord(str(path), start, {"tokens": tokens, "tags": tags}))
                tokens, tags = [], []
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        if len(parts) < 2 or not parts[0] or not parts[-1].strip():
            raise DataError("expected 'token<TAB>tag'", path=path, line=number, field="tag")
        if not tokens:
            start = number
        tokens.append(parts[0])
        tags.append(parts[-1].strip())
    if tokens:
        records.append(RawRecord(str(path), start, {"tokens": tokens, "tags": tags}))
    if not records:
        raise DataError("file has no sentences", path=path)
    return records


def read_raw(path: str | Path, fmt: str = "auto", encoding: str = "utf-8", default: str = "csv") -> list[RawRecord]:
    """Read any supported file into raw records; ``fmt`` is a :class:`DataConfig` ``format``."""
    path = Path(path)
    kind = detect_format(path, fmt, default)
    if kind == "csv":
        return read_delimited(path, ",", encoding)
    if kind == "tsv":
        return read_delimited(path, "\t", encoding)
    if kind == "jsonl":
        return read_jsonl(path, encoding)
    if kind == "conll":
        return read_conll(path, encoding)
    raise DataError(f"unsupported format '{kind}'; expected csv, tsv, jsonl or conll (data.format)", path=path)


def fingerprint(path: str | Path, n_records: int) -> dict[str, Any]:
    """sha256 and size of a data file, stored in bundle.json so a model can be traced to its data."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return {"file": Path(path).name, "sha256": digest.hexdigest(), "records": n_records}


def split_indices(
    labels: Sequence[Any] | None, n: int, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (stratified where every class has two members) train/validation index split."""
    from sklearn.model_selection import train_test_split

    indices = np.arange(n)
    n_val = max(1, int(round(n * fraction)))
    if n - n_val < 1:
        raise DataError(f"only {n} training records; need at least 2 to hold out validation data")
    stratify = None
    if labels is not None:
        values, counts = np.unique(np.asarray(labels, dtype=object).astype(str), return_counts=True)
        if counts.min() >= 2 and n_val >= len(values):
            stratify = np.asarray(labels, dtype=object).astype(str)
    train_idx, val_idx = train_test_split(indices, test_size=n_val, random_state=seed, stratify=stratify)
    return np.sort(train_idx), np.sort(val_idx)
