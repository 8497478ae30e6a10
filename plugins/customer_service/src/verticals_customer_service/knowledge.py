"""The optional FAQ knowledge base: entries (question, answer[, intent]) read from CSV/TSV/JSONL."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, Field
from verticals import DataError
from verticals.data.records import read_raw


class FaqEntry(BaseModel):
    """One knowledge-base entry; ``intent`` links it to a trained intent (its answer is then that intent's)."""

    question: str = Field(description="A typical question the entry answers (this is what gets indexed).")
    answer: str = Field(description="The answer shown to the user.")
    intent: str | None = Field(None, description="Trained intent the entry belongs to (optional).")


def _text(value: object) -> str:
    return "" if value is None else str(value).strip()


def read_faq(path: str | Path, intents: Sequence[str], *, fmt: str = "auto",
             encoding: str = "utf-8") -> list[FaqEntry]:
    """Read and validate a knowledge base; every problem is a :class:`DataError` naming file, line, field."""
    known = set(intents)
    raws = read_raw(path, fmt, encoding)
    if not raws:
        raise DataError("the FAQ knowledge base is empty; add rows with question and answer "
                        "or drop task.faq", path=path)
    entries = []
    for raw in raws:
        for column in ("question", "answer"):
            if column not in raw.data:
                found = ", ".join(map(str, raw.data)) or "none"
                raise DataError(f"FAQ entries need a '{column}' column (found: {found}); the knowledge base "
                                f"holds question, answer[, intent]", path=raw.path, line=raw.line, field=column)
            if not _text(raw.data[column]):
                raise DataError(f"empty {column}; every FAQ entry needs a question and an answer",
                                path=raw.path, line=raw.line, field=column)
        intent = _text(raw.data.get("intent")) or None
        if intent is not None and intent not in known:
            shown = ", ".join(sorted(known)[:12]) + (" ..." if len(known) > 12 else "")
            raise DataError(f"intent '{intent}' is not one of the trained intents ({shown}); fix it or "
                            f"leave it empty", path=raw.path, line=raw.line, field="intent")
        entries.append(FaqEntry(question=_text(raw.data["question"]), answer=_text(raw.data["answer"]),
                                intent=intent))
    return entries
