"""Small helpers shared by the benchmark scripts (run as `python benchmarks/NAME.py`)."""

from __future__ import annotations

import csv
import os
from pathlib import Path


def data_dir() -> Path:
    """The public data sets: $VERTICALS_DATA, else ../shared/datasets beside the repository (never copied in)."""
    return Path(os.environ.get("VERTICALS_DATA") or Path(__file__).resolve().parents[2] / "shared" / "datasets")


def write_csv(rows: list[dict[str, str]], path: Path, fieldnames: tuple[str, ...] = ("text", "label")) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(fieldnames))
        writer.writeheader()
        writer.writerows(rows)
    return path
