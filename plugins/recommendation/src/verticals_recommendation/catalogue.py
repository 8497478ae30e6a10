"""The item catalogue and the per-user interaction histories learnt from training data."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from verticals import DataError
from verticals.data.records import read_raw

from .schema import InteractionRecord, RecommendationData

TEXT_SEPARATOR = " | "


@dataclass
class Catalogue:
    """Item ids and the text the item tower reads, in a fixed order (the FAISS row order)."""

    ids: list[str]
    texts: list[str]
    index: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.index = {item: i for i, item in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def position(self, item: str, *, path: str | None = None, line: int | None = None, field: str = "item") -> int:
        """Row of ``item``; an id missing from the catalogue is a data error naming where it was found."""
        try:
            return self.index[item]
        except KeyError:
            raise DataError(
                f"item '{item}' is not in the item catalogue ({len(self)} items); add it to the catalogue "
                f"(data.items) or drop the interaction", path=path, line=line, field=field,
            ) from None


def read_catalogue(options: RecommendationData) -> Catalogue:
    """Read ``data.items``: one row per item, its text = the configured fields joined by ' | '."""
    if not options.items:
        raise DataError("no item catalogue; set data.items=PATH (a CSV/JSONL file with one row per item)",
                        field="data.items")
    ids: list[str] = []
    texts: list[str] = []
    seen: dict[str, int] = {}
    for raw in read_raw(options.items, options.items_format, options.encoding):
        missing = [c for c in (options.item_id_column, *options.text_fields) if c not in raw.data]
        if missing:
            found = ", ".join(map(str, raw.data)) or "none"
            setting = "data.item_id_column" if missing[0] == options.item_id_column else "data.text_fields"
            raise DataError(f"missing column '{missing[0]}' (found: {found}); set {setting}",
                            path=raw.path, line=raw.line, field=missing[0])
        item = _text(raw.data[options.item_id_column])
        if not item:
            raise DataError("empty item id", path=raw.path, line=raw.line, field=options.item_id_column)
        if item in seen:
            raise DataError(f"item '{item}' is listed twice (first on line {seen[item]})", path=raw.path,
                            line=raw.line, field=options.item_id_column)
        parts = [_text(raw.data[c]) for c in options.text_fields]
        text = TEXT_SEPARATOR.join(p for p in parts if p)
        if not text:
            fields = ", ".join(options.text_fields)
            raise DataError(f"item '{item}' has no text in any of the text fields ({fields}); the item tower "
                            f"needs text to place it", path=raw.path, line=raw.line, field=options.text_fields[0])
        seen[item] = raw.line
        ids.append(item)
        texts.append(text)
    return Catalogue(ids, texts)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return " ".join(str(value).split())


@dataclass
class Histories:
    """Per user: every item interacted with (``seen``) and the positive ones in time order."""

    seen: dict[str, list[int]] = field(default_factory=dict)
    positives: dict[str, list[int]] = field(default_factory=dict)

    def positive_counts(self, n_items: int) -> list[int]:
        counts = [0] * n_items
        for items in self.positives.values():
            for i in items:
                counts[i] += 1
        return counts

    def to_json(self, catalogue: Catalogue) -> dict[str, Any]:
        ids = catalogue.ids
        return {user: {"seen": [ids[i] for i in self.seen[user]],
                       "positives": [ids[i] for i in self.positives.get(user, [])]} for user in self.seen}

    @classmethod
    def from_json(cls, data: dict[str, Any], catalogue: Catalogue) -> Histories:
        index = catalogue.index
        out = cls()
        for user, entry in data.items():
            out.seen[user] = [index[i] for i in entry["seen"]]
            out.positives[user] = [index[i] for i in entry["positives"]]
        return out


def is_positive(record: InteractionRecord, threshold: float) -> bool:
    return record.rating is None or record.rating >= threshold


def ordered(records: Iterable[InteractionRecord]) -> list[InteractionRecord]:
    """Records in time order: by timestamp where every record has one, else in file order."""
    records = list(records)
    if records and all(r.timestamp is not None for r in records):
        return sorted(records, key=lambda r: _time_key(r.timestamp))  # stable: ties keep file order
    return records


def _time_key(value: str | None) -> tuple[int, float, str]:
    try:
        return (0, float(value or ""), "")
    except ValueError:
        return (1, 0.0, value or "")  # ISO dates sort correctly as text


def build_histories(records: Sequence[InteractionRecord], catalogue: Catalogue,
                    options: RecommendationData) -> Histories:
    """Seen and positive items per user, checking every item against the catalogue."""
    histories = Histories()
    for record in ordered(records):
        path, line = record.origin()
        item = catalogue.position(record.item or "", path=path, line=line, field=options.item_column)
        seen = histories.seen.setdefault(record.user, [])
        positives = histories.positives.setdefault(record.user, [])
        if item in seen:  # a re-rating replaces the earlier one: its latest position and value count
            seen.remove(item)
            if item in positives:
                positives.remove(item)
        seen.append(item)
        if is_positive(record, options.positive_threshold):
            positives.append(item)
    return histories


def check_items(records: Sequence[InteractionRecord], catalogue: Catalogue, options: RecommendationData,
                path: str | Path | None = None) -> None:
    """Every interaction names an item that the catalogue has."""
    for number, record in enumerate(records, start=1):
        origin_path, origin_line = record.origin()
        if origin_line is None:  # in-memory rows count from 0: row 0 is a row, not "no line"
            origin_line = number
        if record.item is None:
            raise DataError("interaction has no item", path=origin_path or path, line=origin_line,
                            field=options.item_column)
        catalogue.position(record.item, path=origin_path or (str(path) if path else None),
                           line=origin_line, field=options.item_column)
