"""Record validation and the tabular preprocessing fitted on training data only (saved as JSON)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from verticals import DataError

UNKNOWN = "<unknown>"
MAX_ABS_NUMBER = 1e15
"""Largest magnitude of a numeric feature. Beyond it the scaler's variance overflows float64 (1e308 passed
as finite and the training loss became NaN); 1e15 is above any amount or count yet exact in float64."""


def parse_number(value: Any, *, path: str | None, line: int | None, column: str) -> float:
    """A finite float from a CSV string or a JSON number; anything else is a DataError naming the cell."""
    if isinstance(value, bool) or value is None or (isinstance(value, str) and not value.strip()):
        found = "an empty value" if value in (None, "") or isinstance(value, str) else repr(value)
        raise DataError(f"expected a number, found {found}", path=path, line=line, field=column)
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        shown = value if len(str(value)) < 40 else f"{str(value)[:37]}..."
        raise DataError(f"expected a number, found {shown!r}", path=path, line=line, field=column) from None
    if not math.isfinite(number):
        raise DataError(f"expected a finite number, found {value!r} (NaN/inf are not allowed; impute or drop "
                        f"the record)", path=path, line=line, field=column)
    if abs(number) > MAX_ABS_NUMBER:
        raise DataError(f"expected a number within ±{MAX_ABS_NUMBER:g}, found {value!r}; rescale the column "
                        f"(e.g. to thousands) or fix the value", path=path, line=line, field=column)
    return number


def parse_label(value: Any, *, path: str | None, line: int | None, column: str) -> int | None:
    """1 = fraud, 0 = legitimate (accepts 0/1 as numbers or strings, and true/false); blank = None."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        return int(value)
    text = str(value).strip().lower()
    if text in {"1", "1.0", "true"}:
        return 1
    if text in {"0", "0.0", "false"}:
        return 0
    raise DataError(f"label must be 0 (legitimate) or 1 (fraud), found {value!r}", path=path, line=line, field=column)


class TabularPreprocessor:
    """Standardises numeric columns (then clips) and one-hot encodes categorical ones.

    Means, scales and category vocabularies come from training data only and round-trip through JSON.
    """

    def __init__(self, numeric: dict[str, tuple[float, float]], categories: dict[str, list[str]],
                 clip: float) -> None:
        self.numeric = numeric
        self.categories = categories
        self.clip = clip
        self._index = {col: {v: i for i, v in enumerate(vocab)} for col, vocab in categories.items()}

    @classmethod
    def fit(cls, rows: Sequence[dict[str, Any]], numeric_columns: Sequence[str],
            categorical_columns: Sequence[str], *, min_count: int = 2, clip: float = 10.0) -> TabularPreprocessor:
        from sklearn.preprocessing import StandardScaler

        numeric: dict[str, tuple[float, float]] = {}
        if numeric_columns:
            scaler = StandardScaler().fit(np.array([[r[c] for c in numeric_columns] for r in rows], dtype=np.float64))
            numeric = {c: (float(m), float(s)) for c, m, s in zip(numeric_columns, scaler.mean_, scaler.scale_)}
        categories = {}
        for column in categorical_columns:
            counts = Counter(str(r[column]) for r in rows)
            categories[column] = [UNKNOWN] + sorted(v for v, n in counts.items() if n >= min_count)
        return cls(numeric, categories, clip)

    @property
    def width(self) -> int:
        return len(self.numeric) + sum(len(v) for v in self.categories.values())

    def transform(self, rows: Sequence[dict[str, Any]]) -> np.ndarray:
        out = np.zeros((len(rows), self.width), dtype=np.float32)
        if self.numeric:
            mean = np.array([m for m, _ in self.numeric.values()])
            scale = np.array([s for _, s in self.numeric.values()])
            values = np.array([[r[c] for c in self.numeric] for r in rows], dtype=np.float64).reshape(len(rows), -1)
            out[:, : len(self.numeric)] = np.clip((values - mean) / scale, -self.clip, self.clip)
        offset = len(self.numeric)
        for column, vocab in self.categories.items():
            index = self._index[column]
            hits = [index.get(str(r[column]), 0) for r in rows]
            out[np.arange(len(rows)), offset + np.asarray(hits, dtype=np.int64)] = 1.0
            offset += len(vocab)
        return out

    def to_json(self) -> dict[str, Any]:
        return {"numeric": {c: {"mean": m, "scale": s} for c, (m, s) in self.numeric.items()},
                "categories": self.categories, "clip": self.clip}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TabularPreprocessor:
        numeric = {c: (float(v["mean"]), float(v["scale"])) for c, v in data["numeric"].items()}
        return cls(numeric, {c: list(v) for c, v in data["categories"].items()}, float(data["clip"]))
