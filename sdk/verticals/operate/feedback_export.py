"""``verticals feedback export DB --model NAME --output FILE``: users' corrections as training records in the
task's own format, ready to add to the training data.

- Classification (text, customer service, sentiment...): ``text`` + ``label`` under the bundle's column names.
- Token classification / NER: ``tokens`` + ``tags`` (JSONL, or CoNLL for a ``.conll`` output).
- Fraud: the declared feature columns + the 0/1 label column.
- Recommendation: ``user`` + ``item`` (the item the user wanted), a positive interaction (no rating = positive).

A correction is ``label``/``tags``; ``"wrong": false`` confirms the prediction (its label becomes the
record's); ``"wrong": true`` alone becomes a record only for a model with two labels (the other one) and
is otherwise counted as "no correction". Feedback on the same input with the same correction is merged
into one record; the same input with different corrections is a conflict: listed (stderr, ``--conflicts``)
and left out, never silently decided. The output is written atomically and replaces only a file this
command wrote, unchanged since (a marker beside it, as for every single-file output). ``--append-to TRAIN``
copies the training file first (byte for byte) and adds only the corrections it lacks, so the output is the
retraining file and its sha256 is the retrained bundle's ``data.train.sha256``; a correction that
contradicts a TRAIN row is a conflict too (the row stays, the correction is left out).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from ..errors import ConfigError
from .feedback_store import Store, open_store

FORMATS = {".jsonl": "jsonl", ".csv": "csv", ".conll": "conll"}
REQUEST_ONLY = ("k", "items", "history", "exclude_seen", "rating", "timestamp")  # recommendation request fields


class Conflict(BaseModel):
    input: dict[str, Any]
    corrections: list[dict[str, Any]] = Field(description="Each distinct correction, its count and feedback ids.")


class ExportResult(BaseModel):
    path: str
    sha256: str
    records: int
    feedback_rows: int
    duplicates_merged: int = Field(description="Corrections merged into an identical one (or into the same "
                                               "record of --append-to).")
    appended_to: str | None = Field(None, description="The training file copied before the corrections.")
    no_correction: int
    conflicts: list[Conflict]


def parse_since(text: str | None) -> str | None:
    """``--since 2026-12-01`` or an ISO datetime, as the stored timestamp text (UTC) to compare with."""
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        when = when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)
    except (ValueError, OverflowError):  # OverflowError: a time zone pushing year 1 or 9999 out of range
        raise ConfigError(f"--since {text!r}: expected a date (2026-12-01) or an ISO datetime "
                          f"(2026-12-01T09:30:00Z) between years 1 and 9999") from None
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _correction(row: dict[str, Any], kind: str, labels: list[str]) -> Any:
    """The right answer this feedback row gives, or None."""
    if row["tags"] is not None:
        return row["tags"]
    if row["label"] is not None:
        return row["label"]
    predicted = row["predicted"] or {}
    if kind == "tokens":
        return predicted.get("tags") if row["wrong"] == 0 else None
    said = predicted.get("label", predicted.get("intent"))
    said = None if said is None else str(said)
    if row["wrong"] == 0 and kind == "label":
        return said
    if row["wrong"] == 1 and kind == "label" and len(labels) == 2 and said in labels:
        return next(label for label in labels if label != said)  # binary: wrong means the other one
    return None


def _training_record(record: dict[str, Any], correction: Any, columns: dict[str, Any]) -> dict[str, Any]:
    fields, label_field = columns["fields"], columns["label_field"]
    out = {fields.get(key, key): value for key, value in record.items()
           if key != label_field and not (columns["kind"] == "interactions" and key in REQUEST_ONLY)}
    if columns["kind"] == "label" and columns["task_labels"] == ["0", "1"]:
        correction = int(correction)  # fraud reads 0/1
    out[fields.get(label_field, label_field)] = correction
    return out


def _render(records: list[dict[str, Any]], fmt: str, columns: dict[str, Any]) -> str:
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if fmt == "conll":
        if columns["kind"] != "tokens":
            raise ConfigError("a .conll output holds tokens and tags: this model is not a token classifier; "
                              "use .jsonl or .csv")
        tokens, tags = columns["fields"].get("tokens", "tokens"), columns["fields"]["tags"]
        return "\n".join("".join(f"{t}\t{g}\n" for t, g in zip(r[tokens], r[tags])) for r in records)
    if columns["kind"] == "tokens":
        raise ConfigError("tokens and tags are lists, which CSV cannot hold: use a .jsonl or .conll output")
    names: list[str] = []
    for record in records:
        names.extend(key for key in record if key not in names)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return buffer.getvalue()


def _write_owned(path: Path, text: str, kind: str, store: Store, model: str, records: int,
                 overwrite: bool) -> str:
    """Write ``text`` atomically to ``path``: a new file, or (``overwrite``) one Verticals wrote as ``kind`` and
    nobody changed since (the marker beside it); the export log of the database records its sha256."""
    from ..bundles.bundle import atomic_file

    with atomic_file(path, kind=kind, overwrite=overwrite) as handle:
        handle.write(text)
    # of the text, not read back: once the lock is released another export may replace the file
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    store.record_export(digest, path, model, records)
    return digest


def _norm(value: Any) -> str:
    """One text per value, so a CSV cell ("950.5") and a JSON number (950.5) of the same input compare equal."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value.strip() if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _append(base: Path, fmt: str, records: list[dict[str, Any]], ids: list[list[int]], columns: dict[str, Any],
            conflicts: list[Conflict]) -> tuple[str, list[dict[str, Any]], int]:
    """``base``'s text (unchanged, byte for byte) followed by the corrections it does not already hold; a
    correction whose input ``base`` holds with another label is a conflict (base row kept, correction left out).
    Returns (text, appended records, corrections already in base)."""
    from ..data.readers import read_raw

    label = columns["fields"].get(columns["label_field"], columns["label_field"])
    features = sorted({key for record in records for key in record if key != label})
    labels_of: dict[tuple[str, ...], set[str]] = {}
    for raw in read_raw(base, default=fmt):
        key = tuple(_norm(raw.data.get(column)) for column in features)
        labels_of.setdefault(key, set()).add(_norm(raw.data.get(label)))
    kept, already = [], 0
    for record, feedback_ids in zip(records, ids):
        known = labels_of.get(tuple(_norm(record.get(column)) for column in features))
        if known is None:
            kept.append(record)
        elif known == {_norm(record[label])}:
            already += 1
        else:
            conflicts.append(Conflict(input={k: v for k, v in record.items() if k != label}, corrections=[
                {"correction": record[label], "count": len(feedback_ids), "feedback_ids": feedback_ids},
                {"correction": sorted(known), "count": 1, "feedback_ids": [], "source": f"{base} (kept there)"}]))
    with open(base, encoding="utf-8", newline="") as handle:  # newline="": CRLF files stay CRLF
        text = handle.read()
    if text and not text.endswith("\n"):
        text += "\n"
    if fmt == "csv":
        # a BOM (as spreadsheet programs write) is not part of the first column's name; the bytes stay as they are
        header = next(csv.reader(io.StringIO(text.removeprefix("\ufeff"))), [])
        missing = sorted({key for record in kept for key in record} - set(header))
        if missing:
            raise ConfigError(f"--append-to {base} has no column {', '.join(map(repr, missing))}, which the "
                              f"corrections need (its header: {', '.join(header)})")
        buffer = io.StringIO()
        csv.DictWriter(buffer, fieldnames=header, lineterminator="\n").writerows(kept)
        return text + buffer.getvalue(), kept, already
    if fmt == "conll" and kept and not text.endswith("\n\n"):
        text += "\n"  # a blank line ends the base's last sentence
    return text + (_render(kept, fmt, columns) if kept else ""), kept, already


def export_feedback(db: str | Path, model: str, output: str | Path, *, since: str | None = None,
                    overwrite: bool = False, conflicts_file: str | Path | None = None,
                    append_to: str | Path | None = None) -> ExportResult:
    """Write the corrections of ``model`` (its serve name) stored in ``db`` as training records to ``output``
    (``.jsonl``, ``.csv`` or ``.conll``); ``conflicts_file``: JSONL of the conflicting inputs; ``append_to``:
    a training file of the same format copied first, so ``output`` is the whole new training file (and its
    sha256 the retrained bundle's ``data.train.sha256``)."""
    output = Path(output)
    fmt = FORMATS.get(output.suffix.lower())
    if fmt is None:
        raise ConfigError(f"--output {output}: give a .jsonl, .csv or .conll file (training data formats)")
    if conflicts_file is not None and Path(conflicts_file).resolve() == output.resolve():
        raise ConfigError("--conflicts and --output name the same file; give two file names")
    if append_to is not None:
        append_to = Path(append_to)
        if append_to.resolve() == output.resolve():
            raise ConfigError("--append-to and --output name the same file; the training file is copied, never "
                              "changed: give a new --output")
        if FORMATS.get(append_to.suffix.lower()) != fmt:
            raise ConfigError(f"--append-to {append_to} and --output {output} must have the same format "
                              f"(extension)")
    cutoff = parse_since(since)
    store = open_store(db, create_missing=False)
    try:
        known = store.models()
        if model not in known:
            raise ConfigError(f"no model '{model}' in {store.name}; it holds: {', '.join(known) or 'no model yet'} "
                              f"(the names `verticals serve` gave them, as in /v1/models)")
        columns = dict(known[model]["columns"], task_labels=known[model]["labels"])
        rows = store.feedback(model, cutoff)
        groups: dict[str, dict[str, Any]] = {}
        no_correction = 0
        for row in rows:
            correction = _correction(row, columns["kind"], known[model]["labels"])
            if correction is None or row["input"] is None:
                no_correction += 1
                continue
            key = json.dumps({k: v for k, v in row["input"].items() if k != columns["label_field"]}, sort_keys=True)
            group = groups.setdefault(key, {"input": row["input"], "by": {}})
            group["by"].setdefault(json.dumps(correction), {"correction": correction, "count": 0, "ids": []})
            entry = group["by"][json.dumps(correction)]
            entry["count"] += 1
            entry["ids"].append(row["id"])
        records, ids, conflicts, merged = [], [], [], 0
        for group in groups.values():
            corrections = list(group["by"].values())
            if len(corrections) > 1:
                conflicts.append(Conflict(input=group["input"], corrections=[
                    {"correction": c["correction"], "count": c["count"], "feedback_ids": c["ids"]}
                    for c in corrections]))
                continue
            merged += corrections[0]["count"] - 1
            records.append(_training_record(group["input"], corrections[0]["correction"], columns))
            ids.append(corrections[0]["ids"])
        if not records:
            raise ConfigError(f"no training records to export for '{model}' ({len(rows)} feedback rows"
                              f"{' since ' + since if since else ''}: {no_correction} without a correction, "
                              f"{len(conflicts)} conflicting inputs); nothing written")
        if append_to is not None:
            text, records, already = _append(append_to, fmt, records, ids, columns, conflicts)
            merged += already
        else:
            text = _render(records, fmt, columns)
        if conflicts_file is not None:
            lines = "".join(c.model_dump_json() + "\n" for c in conflicts)
            _write_owned(Path(conflicts_file), lines, "feedback-conflicts", store, model, len(conflicts),
                         overwrite)
        digest = _write_owned(output, text, "feedback-export", store, model, len(records), overwrite)
    finally:
        store.close()
    return ExportResult(path=str(output), sha256=digest, records=len(records), feedback_rows=len(rows),
                        duplicates_merged=merged, no_correction=no_correction, conflicts=conflicts,
                        appended_to=None if append_to is None else str(append_to))
