"""The ``medical.ner`` task type: the core BIO token classifier plus raw text with character offsets,
sliding windows for long documents, and error messages that never echo a record's text."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from verticals import ConfigError, DataError
from verticals.data import RawRecord, iter_lines, iter_raw, require_regular_file
from verticals.metrics import softmax
from verticals.tasks import Entity, TokenClassificationTask, TokenPrediction, TokenRecord
from verticals.tasks.distillation import as_teacher_reads
from verticals.tasks.token_classification import BIO_TAG, bio_labels

from .text import WORD_PATTERN, align_tokens, joined_offsets, pretokenize
from .windows import context, first_subwords, special_tokens, window_starts


class MedicalRecord(TokenRecord):
    """Words (given, or pre-tokenised from ``text``) with optional tags and the source text."""

    text: str | None = Field(None, description="Source text; entity offsets point into it.")

    @model_validator(mode="after")
    def _tokens_in_text(self) -> MedicalRecord:
        if self.text is not None and align_tokens(self.text, self.tokens) is None:
            raise ValueError("the tokens do not appear in order in the text; give the text alone or its exact words")
        return self


class MedicalEntity(Entity):
    start: int = Field(description="Start character offset into the input text (inclusive).")
    end: int = Field(description="End character offset into the input text (exclusive).")
    text: str = Field(description="The exact source text, input_text[start:end].")
    token_start: int = Field(description="Index of the entity's first word.")
    token_end: int = Field(description="Index after the entity's last word.")


class MedicalPrediction(TokenPrediction):
    entities: list[MedicalEntity]  # type: ignore[assignment]


class NEROptions(BaseModel):
    """Options of ``medical.ner`` (the ``task`` config section)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # every number finite: see verticals.config

    stride: int = Field(
        16, ge=0, le=32_768, description="Subword tokens shared by consecutive windows when a text is longer than "
        "training.max_length; each word is predicted from the window where it has most context."
    )
    show_values_in_errors: bool = Field(
        False, description="Quote offending record values in data errors. Off by default: records may hold "
        "patient text, and error messages end up in logs."
    )


class MedicalNERTask(TokenClassificationTask):
    """Biomedical NER. Labels are the configured types (Disease, Chemical by default) plus every type
    found in the training data."""

    name = "medical.ner"
    description = "Biomedical named-entity recognition with character offsets and long-document windows."
    Record = MedicalRecord
    Prediction = MedicalPrediction
    Options = NEROptions
    truncates_long_inputs = False  # long sentences are split into windows (task.stride)

    # ---- data ----------------------------------------------------------------------------------
    def field_map(self) -> dict[str, str]:
        return super().field_map() | {"text": self.data_options.text_column}

    def iter_raw(self, path, *, progress=None):  # type: ignore[no-untyped-def,override]
        """As the core, except that a ``.tsv`` file whose first line is ``token<TAB>BIO-tag`` (how
        NCBI-disease, BC5CDR and BioBERT's data ship) is read as CoNLL rather than as a headed table."""
        path = Path(path)
        options = self.data_options
        if options.format == "auto" and path.suffix.lower() == ".tsv":
            require_regular_file(path)  # the first line is read, then the file again: a pipe would block
            first = next((line for _, line in iter_lines(path, options.encoding,
                                                         max_record_bytes=options.max_record_bytes)
                          if line.strip()), "").rstrip("\r\n")
            columns = first.split("\t")
            if len(columns) >= 2 and BIO_TAG.match(columns[-1].strip()):
                return iter_raw(path, "conll", options.encoding, max_record_bytes=options.max_record_bytes,
                                progress=progress)
        return super().iter_raw(path, progress=progress)

    def record_from_text(self, text: str) -> dict[str, Any]:
        return {self.data_options.text_column: text}

    def to_record(self, raw: RawRecord, *, require_labels: bool = True):  # type: ignore[no-untyped-def,override]
        data = dict(raw.data)
        tokens_key, tags_key = self.data_options.tokens_column, self.data_options.tags_column
        text = data.get(self.data_options.text_column)
        if data.get(tokens_key) is None and isinstance(text, str):  # absent, or an empty cell of a DataFrame
            data[tokens_key] = pretokenize(text)[0]
        for key in (tokens_key, tags_key):
            if isinstance(data.get(key), str):  # CSV cells hold space-separated tokens/tags
                data[key] = data[key].split()
        raw = RawRecord(raw.path, raw.line, data)
        if not self.options.show_values_in_errors:
            self._validate_quietly(raw)
        return super().to_record(raw, require_labels=require_labels)

    def _validate_quietly(self, raw: RawRecord) -> None:
        """Raise what the core would raise for an invalid record, minus the quoted value (which may be
        patient text); missing columns are left to the core, whose message names columns only."""
        mapping = self.field_map()
        values = {f: raw.data[mapping.get(f, f)] for f in self.Record.model_fields if mapping.get(f, f) in raw.data}
        if "tokens" not in values:
            return
        try:
            self.Record.model_validate(values)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = str(err["loc"][0]) if err["loc"] else None
            column = mapping.get(field, field) if field else None
            raise DataError(str(err["msg"]), path=raw.path, line=raw.line, field=column) from None

    def resolve_labels(self, train):  # type: ignore[no-untyped-def,override]
        declared = list(self.config.labels)
        bad = [label for label in declared if not BIO_TAG.match(label)]
        if bad:
            raise ConfigError(f"labels {bad} are not BIO tags; expected O, B-TYPE or I-TYPE")
        return bio_labels({t for r in train for t in r.tags} | set(declared))

    # ---- export ----------------------------------------------------------------------------------
    def export_extras(self, directory: Path) -> dict[str, Any]:
        """Pre-tokenisation, sliding windows and the merge rule: everything decoding needs after the graph."""
        prefix, suffix = special_tokens(self.tokenizer_)
        return super().export_extras(directory) | {
            "kind": "medical.ner",
            "words": "a text is split into words by word_pattern (Python re); records may give tokens [+ text]",
            "word_pattern": WORD_PATTERN.pattern,
            "truncation": "none: words are tokenised without special tokens, then cut into windows",
            "window_size": self.config.training.max_length - len(prefix) - len(suffix),
            "stride": self.options.stride,
            "prefix_ids": prefix,
            "suffix_ids": suffix,
            "windows": "starts 0, size-stride, 2(size-stride), ... and n-size (the last window ends at the end)",
            "merge": ("each word takes the probabilities of its first subword in the window where it has most "
                      "context: min(tokens to the window's left cut, tokens to its right cut); a document edge "
                      "is not a cut"),
            "offsets": "character offsets into the text (words found in order), else into the words joined by spaces",
        }

    # ---- windows ---------------------------------------------------------------------------------
    def encode(self, records, *, with_labels):  # type: ignore[no-untyped-def,override]
        """One feature per window; ``record`` and ``words`` (position, word, context) tie it back."""
        if not records:
            return []
        tokenizer = self.tokenizer_
        prefix, suffix = special_tokens(tokenizer)
        size = self.config.training.max_length - len(prefix) - len(suffix)
        with_types = "token_type_ids" in tokenizer.model_input_names
        encoded = tokenizer([r.tokens for r in records], is_split_into_words=True, add_special_tokens=False)
        index = {label: i for i, label in enumerate(self.labels_)}
        features = []
        for r, record in enumerate(records):
            ids, word_ids = encoded["input_ids"][r], encoded.word_ids(r)
            first = first_subwords(word_ids)
            n = len(ids)
            for start in window_starts(n, size, self.options.stride):
                end = min(start + size, n)
                input_ids = prefix + list(ids[start:end]) + suffix
                words = [(len(prefix) + p - start, word_ids[p], context(p, start, end, n))
                         for p in range(start, end) if first[p]]
                feature: dict[str, Any] = {"input_ids": input_ids, "attention_mask": [1] * len(input_ids),
                                           "record": r, "words": words}
                if with_types:
                    feature["token_type_ids"] = [0] * len(input_ids)
                if with_labels:
                    labels = [-100] * len(input_ids)
                    for position, word, _ in words:
                        labels[position] = index[record.tags[word]]
                    feature["labels"] = labels
                features.append(feature)
        return features

    def decode(self, records, features, logits):  # type: ignore[no-untyped-def,override]
        """Merge each record's windows (:meth:`merged_word_probabilities`), then the core decodes words
        (argmax, BIO repair, spans)."""
        merged = self.merged_word_probabilities(records, features, logits)
        return [self._with_offsets(record, self.decode_words(record.tokens, probs))
                for record, probs in zip(records, merged, strict=True)]

    def merged_word_probabilities(self, records: list[MedicalRecord], features: list[dict[str, Any]],
                                  logits: list[np.ndarray]) -> list[np.ndarray]:
        """Each record's ``[n_words, n_labels]`` probabilities: every word takes those of its first subword in
        the window where it has most context."""
        windows: dict[int, list[tuple[dict[str, Any], np.ndarray]]] = defaultdict(list)
        for feature, window_logits in zip(features, logits):
            windows[feature["record"]].append((feature, window_logits))
        merged = []
        for r, record in enumerate(records):
            probs = np.zeros((len(record.tokens), len(self.labels_)))
            probs[:, 0] = 1.0  # a word with no subword tokens (rare symbols) is 'O'
            best = np.full(len(record.tokens), -1.0)
            for feature, window_logits in windows[r]:
                window_probs = softmax(window_logits.astype(np.float64))
                for position, word, ctx in feature["words"]:
                    if ctx > best[word]:
                        best[word], probs[word] = ctx, window_probs[position]
            merged.append(probs)
        return merged

    def soft_targets(self, teacher, records, features):  # type: ignore[no-untyped-def,override]
        """Distillation targets: the teacher's per-word probabilities, merged over its own windows and
        tokenisation, on each word's first subword in every window of the student (a word in two windows is
        a target in both); other positions are NaN (no target)."""
        if not isinstance(teacher, MedicalNERTask):
            raise ConfigError(f"the teacher ({teacher.task_name}) is not a medical.ner tagger")
        # ``features`` are the training windows then the unlabelled ones, each list numbering its records from
        # 0: encoding all records at once gives the same windows with one numbering.
        windows = self.encode(list(records), with_labels=False)
        if [w["words"] for w in windows] != [f.get("words") for f in features]:
            raise ConfigError(f"{self.task_name}: the student's windows changed between encoding and distillation")
        teacher_records = as_teacher_reads(self, teacher, records)  # --teacher-mask; the same words
        words = teacher.merged_word_probabilities(teacher_records, *teacher.predict_logits(teacher_records))
        targets = []
        for window in windows:
            rows = np.full((len(window["input_ids"]), len(self.labels_)), np.nan, dtype=np.float32)
            for position, word, _ in window["words"]:
                rows[position] = words[window["record"]][word]
            targets.append(rows)
        return targets

    @staticmethod
    def _with_offsets(record: MedicalRecord, prediction: TokenPrediction) -> MedicalPrediction:
        if record.text is not None:
            text, offsets = record.text, align_tokens(record.text, record.tokens)
        else:
            text, offsets = joined_offsets(record.tokens)
        assert offsets is not None  # MedicalRecord validated the alignment
        entities = []
        for entity in prediction.entities:
            start, end = offsets[entity.start][0], offsets[entity.end - 1][1]
            entities.append(MedicalEntity(type=entity.type, text=text[start:end], start=start, end=end,
                                          score=entity.score, token_start=entity.start, token_end=entity.end))
        return MedicalPrediction(tokens=prediction.tokens, tags=prediction.tags, entities=entities)
