"""What the checks of ``verticals check`` report: findings, suspect records, the report, and the record
view every check works on."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

EXAMPLES = 5
"""Examples kept per finding (the counts are complete)."""


class DataCheckWarning(UserWarning):
    """A cheap data check found something while ``verticals train`` read the data (training goes on)."""


class Finding(BaseModel):
    check: str = Field(description="Which check, e.g. 'exact_duplicates'.")
    split: str = Field(description="The split it is about ('train', 'test vs train', ...).")
    status: Literal["ok", "warn", "info", "skipped"] = Field(description="warn: something to fix or look at.")
    count: int = Field(0, description="Records (or pairs, groups: see summary) concerned.")
    summary: str = Field(description="One line saying what was found.")
    examples: list[str] = Field(default_factory=list, description=f"Up to {EXAMPLES} examples, with file:line.")


class Suspect(BaseModel):
    split: str
    where: str = Field(description="file:line (or <list>: row N) of the record.")
    check: str = Field(description="'label_issue' (cleanlab) or 'label_conflict' (same text, other labels).")
    label: str
    suggested_label: str | None = Field(description="The label the evidence prefers (None: no majority).")
    score: float | None = Field(description="label_issue: out-of-fold probability of the given label.")
    text: str


class CheckReport(BaseModel):
    task: str
    backbone: str
    max_length: int
    near_threshold: float
    splits: dict[str, dict[str, Any]]
    findings: list[Finding]
    suspects: list[Suspect]

    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.status == "warn"]


@dataclass
class Item:
    """One record as the checks see it."""

    split: str
    where: str
    text: str
    label: str  # text classification: the label; token classification: the tags joined by spaces
    key: str
    record: Any


def share(n: int, total: int) -> str:
    """'4 of 10,003' with the percentage: '4 of 10,003 (0.04%)'."""
    pct = n / max(1, total)
    return f"{n:,} of {total:,} ({pct:.2%})" if pct < 0.01 else f"{n:,} of {total:,} ({pct:.1%})"


def normalise(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def where(record: Any, split: str, index: int) -> str:
    path, line = record.origin() if hasattr(record, "origin") else (None, None)
    if path and line is not None:
        return f"{path}: row {line}" if path.startswith("<") else f"{path}:{line}"
    return f"{split}: record {index + 1}"


def short(text: str, width: int = 70) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= width else text[: width - 3] + "...")


