"""The one reader of data files: CSV / TSV / JSONL (or a JSON array) / CoNLL / Parquet into raw records.

Every verb reads through :func:`iter_raw` (``train``, ``evaluate``, ``report`` take ``list(iter_raw(...))``;
``predict --input`` streams it chunk by chunk), so every verb accepts the same formats and says the same
thing about a bad file. Readers never guess silently: undecodable bytes, ragged rows, malformed JSON,
over-long lines and empty files are :class:`DataError` naming the file and line. Field-level validation
happens in the task type (pydantic records).

Text files are read in binary and split on ``\\n`` only (as JSON Lines and CSV define a line), one bounded
line at a time, so U+2028 or U+0085 inside a text never splits a record and ``/dev/zero`` cannot exhaust
memory.
"""

from __future__ import annotations

import codecs
import csv
import json
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..errors import ConfigError, DataError

EXTENSION_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".conll": "conll",
    ".iob": "conll",
    ".bio": "conll",
    ".parquet": "parquet",
    ".pq": "parquet",
}
FORMATS = ("csv", "tsv", "jsonl", "conll", "parquet")
DEFAULT_MAX_RECORD_BYTES = 1 << 20
MAX_DEPTH = 32
"""Deepest nesting of lists/objects accepted in a record (records are flat; token lists are depth 2).
Deeper values would make recursive code (json, pydantic) fail with RecursionError far from the file."""
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


@dataclass(frozen=True)
class RawRecord:
    """One record as read, with its origin for error messages: a file and line, or an in-memory source
    such as ``<DataFrame>`` and a row position (see :func:`verticals.data.records.records_from`)."""

    path: str
    line: int
    data: dict[str, Any]


class Progress:
    """How far through its input a reader is: bytes for text files, rows for Parquet."""

    def __init__(self) -> None:
        self.done = 0
        self.total: int | None = None
        self.unit = "B"


def detect_format(path: str | Path, fmt: str = "auto", default: str = "csv") -> str:
    if fmt != "auto":
        return fmt
    return EXTENSION_FORMATS.get(Path(path).suffix.lower(), default)


def open_data_file(path: Path) -> IO[bytes]:
    """Open a data file for reading bytes; a missing file, a folder or an unreadable file is a DataError."""
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise DataError("file not found", path=path) from None
    except IsADirectoryError:
        raise DataError("is a directory, expected a data file", path=path) from None
    except OSError as exc:
        raise DataError(f"cannot read file ({exc.strerror})", path=path) from None


def _kind(mode: int) -> str | None:
    for test, name in ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return None if stat.S_ISREG(mode) else "not a regular file"


def require_regular_file(path: str | Path) -> None:
    """Refuse, before opening it, a data file that is a FIFO, a device or a socket.

    Training, evaluation and reports read their data twice (to validate it, then to fingerprint it for
    bundle.json): a pipe would be drained by the first read and block the second open for ever. A path
    that does not exist is left to the reader ("file not found")."""
    try:
        mode = os.stat(path).st_mode  # stat never opens, so it cannot block on a FIFO
    except OSError:
        return
    kind = _kind(mode)
    if kind is not None and not stat.S_ISDIR(mode):
        raise DataError(f"is {kind}, not a regular file; this data is read more than once (validated, then "
                        f"fingerprinted): save it to a file first (predict --input may stream a pipe)", path=path)


def _decode_error(exc: UnicodeDecodeError, encoding: str, path: Path, line: int) -> DataError:
    return DataError(f"undecodable bytes for encoding '{encoding}' at byte {exc.start} of the line; "
                     f"re-save the file as {encoding} or set data.encoding", path=path, line=line)


def iter_lines(path: str | Path, encoding: str = "utf-8", *, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
               progress: Progress | None = None) -> Iterator[tuple[int, str]]:
    """(line number, decoded line with its ending) of a text file, split on ``\\n`` only, one line in memory.

    A line longer than ``max_record_bytes`` is a :class:`DataError` (a binary file or a device such as
    ``/dev/zero`` has no line ends)."""
    path = Path(path)
    try:
        codec = codecs.lookup(encoding).name
    except LookupError:
        raise DataError(f"unknown encoding '{encoding}' (data.encoding)", path=path) from None
    progress = progress or Progress()
    with open_data_file(path) as handle:
        if codec.startswith(("utf-16", "utf-32")):  # '\n' is not one byte: decode whole, then split
            raw = handle.read()
            progress.done = len(raw)
            if raw and b"\0" not in raw:  # UTF-16/32 text has NULs (each '\n' has one): these bytes are 8-bit text
                raise DataError(f"data.encoding is '{encoding}', but the file holds no NUL bytes, which {encoding} "
                                f"text always has (a line end is '\\n' plus NUL bytes): it looks like UTF-8 or "
                                f"another 8-bit encoding; set data.encoding to the file's encoding (e.g. utf-8)",
                                path=path)
            try:
                text = raw.decode(encoding)
            except UnicodeDecodeError as exc:
                raise _decode_error(exc, encoding, path, raw[: exc.start].count(b"\n") or 1) from None
            for number, line in enumerate(text.lstrip("\ufeff").split("\n"), start=1):
                if len(line.encode("utf-8")) > max_record_bytes:
                    raise _too_long(path, number, max_record_bytes)
                if line:
                    yield number, line + "\n"
            return
        number = 0
        while True:
            raw = handle.readline(max_record_bytes + 1)
            if not raw:
                return
            number += 1
            progress.done += len(raw)
            if len(raw) > max_record_bytes and not raw.endswith(b"\n"):
                raise _too_long(path, number, max_record_bytes)
            if number == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8):]  # spreadsheet exports start with a BOM
            if number == 1 and _looks_wide(raw):
                raise DataError(f"data.encoding is '{encoding}', but the first line starts with a UTF-16/32 byte-order "
                                f"mark or has a NUL byte between its characters: the file looks like UTF-16 (or "
                                f"UTF-32); set data.encoding=utf-16 (or utf-32), or re-save it as UTF-8",
                                path=path, line=1)
            try:
                yield number, raw.decode(encoding)
            except UnicodeDecodeError as exc:
                raise _decode_error(exc, encoding, path, number) from None


def _looks_wide(raw: bytes) -> bool:
    """Whether a first line read as an 8-bit encoding is really UTF-16/32: a BOM of those, or NULs in at least a
    quarter of its bytes (every ASCII character of UTF-16 has one; a stray NUL in a field does not do that)."""
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return True
    return len(raw) >= 4 and raw.count(b"\0") * 4 >= len(raw)


def _too_long(path: Path, line: int, limit: int) -> DataError:
    return DataError(f"line is longer than {limit} bytes (data.max_record_bytes); expected one record per line "
                     f"(is this a data file?); raise data.max_record_bytes for longer records", path=path, line=line)


def check_values(data: Any, path: str | Path, line: int, *, surrogates: bool = True) -> None:
    """Refuse values nested deeper than :data:`MAX_DEPTH` and strings holding lone surrogates (which no
    tokenizer or UTF-8 writer accepts), naming the top-level field."""
    stack: list[tuple[Any, int, str | None]] = [(data, 0, None)]
    while stack:
        value, depth, field = stack.pop()
        if isinstance(value, str):
            if surrogates and not value.isascii():
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError as exc:
                    raise DataError(f"text holds a lone surrogate (U+{ord(value[exc.start]):04X}) at character "
                                    f"{exc.start}; it is not valid Unicode text: fix or re-export the data",
                                    path=path, line=line, field=field) from None
            continue
        if isinstance(value, (dict, list, tuple)):
            if depth >= MAX_DEPTH:
                raise DataError(f"value nested more than {MAX_DEPTH} levels deep; expected flat records",
                                path=path, line=line, field=field)
            items = value.items() if isinstance(value, dict) else ((None, v) for v in value)
            for key, item in items:
                stack.append((item, depth + 1, str(key) if depth == 0 and key is not None else field))


def parse_json_line(line: str, path: str | Path, number: int) -> RawRecord:
    """One JSONL line as a record, or a DataError naming the file and line."""
    try:
        item = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON ({exc.msg}); expected one object per line", path=path, line=number) from None
    except RecursionError:
        raise DataError(f"value nested more than {MAX_DEPTH} levels deep; expected flat records", path=path,
                        line=number) from None
    if not isinstance(item, dict):
        raise DataError(f"expected a JSON object, found {type(item).__name__}", path=path, line=number)
    if line.count("[") + line.count("{") > MAX_DEPTH or _SURROGATE_ESCAPE.search(line):
        check_values(item, path, number)
    return RawRecord(str(path), number, item)


def _iter_delimited(path: Path, delimiter: str, lines: Iterator[tuple[int, str]]) -> Iterator[RawRecord]:
    current = [0]

    def text() -> Iterator[str]:
        for number, line in lines:
            current[0] = number
            yield line

    reader = csv.DictReader(text(), delimiter=delimiter, strict=True)
    try:
        if not reader.fieldnames:
            raise DataError("file is empty; expected a header row with column names on line 1", path=path, line=1)
        names = list(reader.fieldnames)
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            where = ", ".join(f"'{n}' (columns {', '.join(str(i + 1) for i, m in enumerate(names) if m == n)})"
                              for n in duplicates)
            raise DataError(f"duplicate column name {where} in the header; every column needs its own name",
                            path=path, line=current[0])
        width = len(names)
        found = False
        for row in reader:
            if None in row or len(row) != width or any(v is None for v in row.values()):
                raise DataError(f"row has a different number of columns than the header ({width})",
                                path=path, line=current[0])
            if not any((v or "").strip() for v in row.values()):
                continue  # blank line
            found = True
            yield RawRecord(str(path), current[0], dict(row))
    except csv.Error as exc:
        if "new-line character seen in unquoted field" in str(exc):  # Python's hint (universal-newline mode) misleads
            raise DataError("line ends are carriage returns alone ('\\r', classic Mac OS); lines must end with "
                            "'\\n' (or '\\r\\n'): convert the line ends, e.g. tr '\\r' '\\n' < in.csv > out.csv, or "
                            "re-save the file with Unix or Windows line ends", path=path, line=current[0]) from None
        raise DataError(f"malformed CSV: {exc}", path=path, line=current[0]) from None
    if not found:
        raise DataError("file has a header but no records", path=path)


def _iter_json(path: Path, lines: Iterator[tuple[int, str]]) -> Iterator[RawRecord]:
    found = False
    for number, line in lines:
        if not line.strip():
            continue
        found = True
        yield parse_json_line(line, path, number)
    if not found:
        raise DataError("file is empty; expected at least one record", path=path)


def _starts_with_array(path: Path, encoding: str) -> bool:
    """Whether the first non-blank character of a JSON file is '[' (a JSON array rather than JSON Lines)."""
    with open_data_file(path) as handle:
        head = handle.read(4096)
    try:
        text = head.decode(encoding, errors="ignore").lstrip("\ufeff \t\r\n")
    except LookupError:
        return False
    return text.startswith("[")


def _read_array(path: Path, encoding: str, progress: Progress) -> Iterator[RawRecord]:
    """A JSON array is one document: read whole (its records may share a line of any length), then
    yielded object by object."""
    with open_data_file(path) as handle:
        raw = handle.read()
    progress.done = len(raw)
    try:
        text = raw.decode(encoding).lstrip("\ufeff")
    except UnicodeDecodeError as exc:
        raise _decode_error(exc, encoding, path, raw[: exc.start].count(b"\n") + 1) from None
    yield from _iter_json_array(path, text)


def _iter_json_array(path: Path, text: str) -> Iterator[RawRecord]:
    """Objects of a JSON array, one at a time, each with the line it starts on."""
    decoder = json.JSONDecoder()
    whitespace = re.compile(r"\s*")
    pos = whitespace.match(text, text.index("[") + 1).end()  # type: ignore[union-attr]
    index, line, counted = 0, 1, 0
    try:
        while pos < len(text) and text[pos] != "]":
            if index:
                if text[pos] != ",":
                    raise json.JSONDecodeError("Expecting ',' delimiter", text, pos)
                pos = whitespace.match(text, pos + 1).end()  # type: ignore[union-attr]
            line += text.count("\n", counted, pos)  # counted incrementally: linear in the file size
            counted = pos
            item, end = decoder.raw_decode(text, pos)
            index += 1
            if not isinstance(item, dict):
                raise DataError(f"record {index} of the JSON array is {type(item).__name__}, expected an object",
                                path=path, line=line)
            check_values(item, path, line, surrogates=bool(_SURROGATE_ESCAPE.search(text, pos, end)))
            yield RawRecord(str(path), line, item)
            pos = whitespace.match(text, end).end()  # type: ignore[union-attr]
        if pos >= len(text) or text[pos + 1:].strip():
            raise json.JSONDecodeError("Expecting ']' to end the array" if pos >= len(text) else "Extra data",
                                       text, min(pos, len(text) - 1))
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON: {exc.msg}", path=path, line=exc.lineno) from None
    except RecursionError:
        raise DataError(f"value nested more than {MAX_DEPTH} levels deep; expected flat records", path=path,
                        line=text.count("\n", 0, pos) + 1) from None
    if index == 0:
        raise DataError("the JSON array is empty; expected at least one record", path=path)


def _iter_conll(path: Path, lines: Iterator[tuple[int, str]]) -> Iterator[RawRecord]:
    """Token-per-line files: ``token<TAB>tag`` (tag = last column), blank line between sentences."""
    tokens: list[str] = []
    tags: list[str] = []
    start = 0
    found = False
    for number, line in lines:
        line = line.rstrip("\r\n")
        if line.startswith("-DOCSTART-"):
            continue
        if not line.strip():
            if tokens:
                found = True
                yield RawRecord(str(path), start, {"tokens": tokens, "tags": tags})
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
        found = True
        yield RawRecord(str(path), start, {"tokens": tokens, "tags": tags})
    if not found:
        raise DataError("file has no sentences", path=path)


def _iter_parquet(path: Path, batch_size: int, progress: Progress) -> Iterator[RawRecord]:
    pq = pyarrow_parquet()
    if not path.exists():
        raise DataError("file not found", path=path)
    try:
        parquet = pq.ParquetFile(path)
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


def pyarrow_parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError("Parquet needs pyarrow: pip install 'verticals[parquet]'") from None
    return pq


def iter_raw(path: str | Path, fmt: str = "auto", encoding: str = "utf-8", *, default: str = "csv",
             max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES, chunk_size: int = 2048,
             progress: Progress | None = None) -> Iterator[RawRecord]:
    """Raw records of a data file, one at a time; ``fmt`` is a :class:`DataConfig` ``format`` ('auto' picks
    by extension, ``default`` for unknown extensions). Parquet rows are numbered from 1 ("line" = row)."""
    path = Path(path)
    progress = progress or Progress()
    kind = detect_format(path, fmt, default)
    if kind not in FORMATS:
        raise DataError(f"unsupported format '{kind}'; expected one of {', '.join(FORMATS)} (data.format)", path=path)
    if kind == "parquet":
        return _iter_parquet(path, chunk_size, progress)
    if path.is_file():
        progress.total = path.stat().st_size
    lines = iter_lines(path, encoding, max_record_bytes=max_record_bytes, progress=progress)
    if kind == "jsonl":
        if path.is_file() and _starts_with_array(path, encoding):
            return _read_array(path, encoding, progress)
        return _iter_json(path, lines)
    if kind == "conll":
        return _iter_conll(path, lines)
    return _iter_delimited(path, "," if kind == "csv" else "\t", lines)


def read_raw(path: str | Path, fmt: str = "auto", encoding: str = "utf-8", default: str = "csv", *,
             max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> list[RawRecord]:
    """Every raw record of a data file (see :func:`iter_raw`)."""
    return list(iter_raw(path, fmt, encoding, default=default, max_record_bytes=max_record_bytes))
