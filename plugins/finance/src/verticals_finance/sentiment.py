"""Financial news sentiment: text classification that also reads the Financial PhraseBank format."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import Field
from verticals import DataError
from verticals.config import TextDataConfig
from verticals.data.records import RawRecord, iter_raw, read_text
from verticals.tasks import TextClassificationTask

PHRASEBANK = "phrasebank"


class SentimentDataOptions(TextDataConfig):
    """The core data options plus the PhraseBank format."""

    format: str = Field(
        "auto",
        description="auto (by extension; .txt = phrasebank), csv, tsv, jsonl, or phrasebank "
        "('sentence@label' per line, as in the Financial PhraseBank release).",
    )
    encoding: str | None = Field(
        None,
        description="Text encoding; default utf-8, and for phrasebank files latin-1 (as released) unless the "
        "file is valid UTF-8 holding non-ASCII text (a re-saved copy), which is then read as utf-8.",
    )


def phrasebank_encoding(path: str | Path) -> str:
    """The encoding of a PhraseBank file when none is configured.

    The release is latin-1, but copies re-saved by other tools are UTF-8; reading those as latin-1 turns
    every 'ä' into 'Ã¤' without any error. Bytes that decode as UTF-8 and hold non-ASCII are UTF-8:
    latin-1 text with accented letters practically never forms valid UTF-8 sequences. So the choice is
    made from the bytes, silently, and ``data.encoding`` overrides it.
    """
    try:
        raw = Path(path).read_bytes()
    except OSError:
        return "latin-1"  # read_text reports the missing/unreadable file with its own message
    if raw.isascii():
        return "latin-1"
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return "latin-1"
    return "utf-8"


def read_phrasebank(path: str | Path, encoding: str = "latin-1", *, text_key: str = "text",
                    label_key: str = "label") -> list[RawRecord]:
    """One ``sentence@label`` per line; split on the *last* '@' because sentences may contain '@'."""
    text = read_text(path, encoding)
    records = []
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        sentence, sep, label = line.rpartition("@")
        if not sep:
            raise DataError("expected 'sentence@label' (no '@' found)", path=path, line=number, field=label_key)
        if not sentence.strip() or not label.strip():
            missing = "sentence" if not sentence.strip() else "label"
            raise DataError(f"empty {missing}; expected 'sentence@label'", path=path, line=number,
                            field=text_key if missing == "sentence" else label_key)
        records.append(RawRecord(str(path), number, {text_key: sentence.strip(), label_key: label.strip()}))
    return records


class FinancialSentimentTask(TextClassificationTask):
    """Text classification whose reader also understands PhraseBank files (``data.format=phrasebank``)."""

    name = "finance.sentiment"
    description = "Financial news sentiment (negative/neutral/positive); reads PhraseBank, CSV and JSONL."
    DataOptions = SentimentDataOptions
    # `verticals distill`: 2 generated sentences per training sentence, labelled by the teacher (issue 30: on
    # PhraseBank's full training split validation 0.8464 ± 0.0024 against logits only's 0.8375 ± 0.0043, 41 % of
    # the teacher's test gain against 22 %, the teacher reading the student's [MASK]; finance README)
    default_transfer_multiplier = 2

    def _is_phrasebank(self, path: Path) -> bool:
        fmt = self.data_options.format
        return fmt == PHRASEBANK or (fmt == "auto" and path.suffix.lower() == ".txt")

    def iter_raw(self, path: str | Path, *, progress: Any = None) -> Iterator[RawRecord]:
        path = Path(path)
        if self._is_phrasebank(path):
            return iter(read_phrasebank(path, self.data_options.encoding or phrasebank_encoding(path),
                                        text_key=self.data_options.text_column,
                                        label_key=self.data_options.label_column))
        return iter_raw(path, self.data_options.format, self.data_options.encoding or "utf-8",
                        max_record_bytes=self.data_options.max_record_bytes, progress=progress)
