"""Data in any form -> raw records that remember where they came from.

Files are read by :mod:`verticals.data.readers` (the one reader every verb uses); :func:`records_from` turns
what a Python caller already holds -- a path, a pandas DataFrame, a ``datasets.Dataset``, a list of dicts
or texts -- into the same raw records, so every verb validates them the same way. In-memory rows are
named ``<DataFrame>: row 3`` (positions from 0, as ``df.iloc[3]`` / ``dataset[3]`` / ``items[3]``) where
a file would give ``train.csv:4``. pandas and datasets are never imported: they are recognised by shape.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, option
from .readers import (  # noqa: F401 - re-exported: packs import the reader API from verticals.data
    DEFAULT_MAX_RECORD_BYTES,
    EXTENSION_FORMATS,
    FORMATS,
    RawRecord,
    check_values,
    detect_format,
    iter_lines,
    iter_raw,
    open_data_file,
    parse_json_line,
    read_raw,
    require_regular_file,
)

ACCEPTED = ("a file path (CSV, TSV, JSONL/JSON, CoNLL or Parquet), a pandas DataFrame, a datasets.Dataset "
            "or a list of records (dicts)")


def read_text(path: str | Path, encoding: str = "utf-8") -> str:
    """Read a whole file, turning missing files and undecodable bytes into :class:`DataError`."""
    path = Path(path)
    with open_data_file(path) as handle:
        raw = handle.read()
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


def is_path(data: Any) -> bool:
    return isinstance(data, (str, os.PathLike))


def source_name(data: Any) -> str:
    """How error messages and bundle.json name a data source: the path, or ``<DataFrame>``, ``<Dataset>``,
    ``<list>``."""
    if is_path(data):
        return str(data)
    if _is_dataframe(data):
        return "<DataFrame>"
    if _is_dataset(data):
        return "<Dataset>"
    return f"<{type(data).__name__}>"


def _is_dataframe(data: Any) -> bool:
    # pandas (to_dict("records")) and polars (to_dicts()) data frames, recognised without importing them
    return hasattr(data, "columns") and (hasattr(data, "to_dicts") or
                                         (hasattr(data, "to_dict") and hasattr(data, "iloc")))


def _is_dataset(data: Any) -> bool:
    # a Hugging Face datasets.Dataset / IterableDataset: iterating yields one dict per row
    return hasattr(data, "column_names") and hasattr(data, "features") and not isinstance(data, dict)


def plain(value: Any) -> Any:
    """pandas/numpy/pyarrow values as plain Python: numpy scalars and arrays via ``tolist()``, NaN and
    pandas' NA/NaT as None (a missing cell, as an empty JSON value)."""
    if isinstance(value, str) or value is None:
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if type(value).__name__ in ("NAType", "NaTType"):
        return None
    if hasattr(value, "tolist"):
        value = value.tolist()
        if isinstance(value, float) and math.isnan(value):
            return None
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def _refuse(data: Any) -> TypeError:
    kind = type(data).__name__
    hint = ""
    if isinstance(data, dict) and any(hasattr(v, "column_names") for v in data.values()):
        hint = "; a DatasetDict holds several splits: pass one, e.g. data['train']"
    elif isinstance(data, dict):
        hint = "; wrap one record in a list ([record]), or pass columns as pandas.DataFrame(data)"
    elif hasattr(data, "tolist"):
        hint = f"; pass {kind}.tolist() for a list of texts, or a DataFrame"
    elif hasattr(data, "__next__"):
        hint = "; pass list(...) of it (records are all validated before any work starts)"
    elif isinstance(data, (bytes, bytearray)):
        hint = "; decode the bytes, or write them to a file and pass its path"
    return TypeError(f"expected {ACCEPTED}, or a list of texts where labels are not needed; got {kind}{hint}")


def records_from(data: Any, read: Callable[[Path], Iterable[RawRecord]], *,
                 text: Callable[[str], dict[str, Any]] | None = None, keep: type | tuple[type, ...] = ()) -> list[Any]:
    """Raw records of ``data`` in any accepted form; ``read`` reads a path (the task's reader).

    Items of a list may be dicts, texts (turned into a record by ``text``; without it a bare text is an
    error, since it has no label), pydantic models, or instances of ``keep`` (already validated records,
    returned as they are). Anything else -- a bare dict, a numpy array, a pandas Series -- is a
    :class:`TypeError` naming what is accepted: a DataFrame is never iterated (that yields column names).
    """
    if is_path(data):
        require_regular_file(data)  # read twice (records, then fingerprint): a pipe would block the second
        return list(read(Path(data)))
    if _is_dataframe(data):
        rows: Iterable[Any] = data.to_dicts() if hasattr(data, "to_dicts") else data.to_dict("records")
        source = "<DataFrame>"
    elif _is_dataset(data):
        rows, source = data, "<Dataset>"
    elif isinstance(data, (list, tuple)):
        rows, source = data, "<list>"
    else:
        raise _refuse(data)
    from pydantic import BaseModel

    out: list[Any] = []
    for index, item in enumerate(rows):
        if keep and isinstance(item, keep):
            out.append(item)
            continue
        if isinstance(item, str):
            if text is None:
                raise DataError("a bare text has no label; give records (dicts) with the text and its label, "
                                "e.g. {'text': ..., 'label': ...}", path=source, line=index)
            item = text(item)
        elif isinstance(item, BaseModel):
            item = item.model_dump()
        if not isinstance(item, dict):
            raise DataError(f"expected a record (dict) or a text, found {type(item).__name__}", path=source,
                            line=index)
        out.append(RawRecord(source, index, {str(key): plain(value) for key, value in item.items()}))
    return out


def is_in_memory(raw: RawRecord) -> bool:
    return raw.path.startswith("<")


def data_fingerprint(data: Any, records: Sequence[Any]) -> dict[str, Any]:
    """What bundle.json records about a split: the file's sha256, or for in-memory data the sha256 of the
    validated records (the same rows as a DataFrame, a Dataset or a list give the same digest)."""
    if is_path(data):
        return fingerprint(data, len(records))
    digest = hashlib.sha256()
    for record in records:
        row = record.model_dump(mode="json") if hasattr(record, "model_dump") else record
        digest.update(json.dumps(row, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8") + b"\n")
    return {"source": source_name(data), "sha256": digest.hexdigest(), "records": len(records)}


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


def check_hold_out(labels: Sequence[Any] | None, train_idx: np.ndarray, fraction: float, source: str) -> None:
    """Refuse an automatic hold-out that took every record of a label away from training.

    ``split_indices`` stratifies only when every label has two records or more, so a label with one record can
    land in validation alone; the user gave no validation data, so the message is about the split."""
    if labels is None:
        return
    keys = [str(label) for label in labels]
    kept = {keys[i] for i in train_idx}
    lost = sorted(set(keys) - kept)
    if lost:
        shown = ", ".join(f"'{label}' ({keys.count(label)} record{'s' * (keys.count(label) > 1)})"
                          for label in lost[:8]) + (" ..." if len(lost) > 8 else "")
        raise DataError(f"the automatic hold-out (no {option('validation')} given; data.validation_fraction="
                        f"{fraction:g}) could not keep every label in training: {shown} ended up only in the held-out "
                        f"validation records; give {option('validation', 'FILE')}, add records (with two or more of "
                        f"every label the hold-out keeps some of each in training), or change "
                        f"data.validation_fraction", path=source)
