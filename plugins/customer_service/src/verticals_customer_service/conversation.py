"""The earlier turns of a conversation as classifier input (``data.context_column``).

A follow-up such as "and for the second one?" names no intent; the turns before it do. With
``data.context_column`` set, records carry those turns (:class:`~.schema.IntentContextRecord`) and the
classifier reads them as the first segment of a pair input (:mod:`verticals.tasks.conversation`). Retrieval
and the out-of-scope rule still key on the current utterance alone: the index holds single utterances, and
"what about that one" is not out of scope because its words are vague. Without the option nothing here
applies: records, features and bundle are those of the plain task.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from verticals import DataError
from verticals.data.records import RawRecord, is_in_memory
from verticals.tasks.conversation import context_joiner, conversation_features
from verticals.tasks.text_classification import TextClassificationTask

from .schema import IntentContextRecord

EXAMPLE_CONTEXT = ["I ordered two lamps last week", "The first one arrived this morning"]


class ConversationContext(TextClassificationTask):
    """What ``IntentTask`` adds for ``data.context_column``; a no-op when the option is unset."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.context_column:
            # an instance attribute: the plain task keeps the plain record (and its bundle fingerprints)
            self.Record = IntentContextRecord  # type: ignore[misc]

    @property
    def context_column(self) -> str | None:
        return getattr(self.data_options, "context_column", None)

    def field_map(self) -> dict[str, str]:
        mapping = super().field_map()
        return mapping | {"context": self.context_column} if self.context_column else mapping

    def to_record(self, raw: RawRecord, *, require_labels: bool = True) -> Any:
        column = self.context_column
        if column:
            if column not in raw.data and "context" in raw.data and is_in_memory(raw):
                # an API/REST record may use the SDK's field name, as the OpenAPI schema shows it
                raw = RawRecord(raw.path, raw.line, raw.data | {column: raw.data["context"]})
            if column not in raw.data and (require_labels or not is_in_memory(raw)):
                # a file (or training data) without the column the config names: a misspelt column would
                # otherwise train or predict silently without context
                found = ", ".join(map(str, raw.data)) or "none"
                raise DataError(f"missing column '{column}' named by data.context_column (found: {found}); add "
                                f"the earlier turns (empty for a first turn) or unset data.context_column",
                                path=raw.path, line=raw.line, field=column)
            value = raw.data.get(column)
            if isinstance(value, str):  # one cell of turns: split on the documented separator
                raw = RawRecord(raw.path, raw.line, raw.data | {column: value.split(
                    self.data_options.context_separator)})
            elif value is not None and not isinstance(value, (list, tuple)):
                raise DataError(f"expected the earlier turns as a list of strings or one string separated by "
                                f"data.context_separator, found {type(value).__name__} {_shown(value)}",
                                path=raw.path, line=raw.line, field=column)
        return super().to_record(raw, require_labels=require_labels)

    def example_record(self) -> dict[str, Any]:
        example = super().example_record()
        return example | {self.context_column: list(EXAMPLE_CONTEXT)} if self.context_column else example

    def encode(self, records, *, with_labels):  # type: ignore[no-untyped-def,override]
        if not self.context_column:
            return super().encode(records, with_labels=with_labels)
        features = conversation_features(self.tokenizer_, [r.text for r in records],
                                         [getattr(r, "context", []) for r in records],
                                         self.config.training.max_length)
        if with_labels:
            index = {label: i for i, label in enumerate(self.labels_)}
            for feature, record in zip(features, records):
                feature["labels"] = index[record.label]
        return features

    def with_context(self, records: Sequence[Any]) -> list[int]:
        """Positions of the records whose classifier input holds earlier turns (their retrieval query is
        encoded again without them)."""
        return [i for i, r in enumerate(records) if getattr(r, "context", None)] if self.context_column else []

    def utterance_features(self, records: Sequence[Any]) -> list[dict[str, Any]]:
        """The current utterances alone, as the plain task encodes them (what retrieval searches with)."""
        return TextClassificationTask.encode(self, records, with_labels=False)

    def context_decision(self) -> dict[str, Any]:
        """What an export's predict.py needs to build the same pair inputs (empty without context)."""
        if not self.context_column:
            return {}
        return {"context": {"field": "context", "column": self.context_column,
                            "separator": self.data_options.context_separator,
                            "joiner": context_joiner(self.tokenizer_),
                            "rule": ("earlier turns (oldest first) joined by joiner = first segment of a pair "
                                     "input, the text the second; oldest whole turns dropped until the pair fits "
                                     "max_length, then the newest turn's start cut; no room: the text alone. "
                                     "Embeddings for retrieval: the text alone")}}


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
