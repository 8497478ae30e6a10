"""Generic token classification with BIO tags: first-subword labelling, word-level decoding to spans."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, field_validator, model_validator

from ..config import TokenDataConfig
from ..data.augment import augment_token_sentences, transfer_sentences
from ..data.records import RawRecord
from ..errors import ConfigError, DataError
from ..metrics import entity_metrics, softmax
from .base import Evaluation, Prediction, Record
from .transformer import TransformerTask, check_labels_known

BIO_TAG = re.compile(r"^(O|[BI]-\S+)$")


class TokenRecord(Record):
    tokens: list[str] = Field(description="Pre-tokenised words.")
    tags: list[str] | None = Field(None, description="One BIO tag per token (needed for training).")

    @field_validator("tokens")
    @classmethod
    def _tokens_not_empty(cls, tokens: list[str]) -> list[str]:
        if not tokens:
            raise ValueError("empty sentence; expected at least one token")
        for i, token in enumerate(tokens):
            if not token.strip():
                raise ValueError(f"token {i + 1} is blank")
        return tokens

    @field_validator("tags")
    @classmethod
    def _bio_tags(cls, tags: list[str] | None) -> list[str] | None:
        if tags is None:
            return None
        for i, tag in enumerate(tags):
            if not BIO_TAG.match(tag):
                raise ValueError(
                    f"tag {i + 1} '{tag}' is not in the BIO scheme; expected O, B-TYPE or I-TYPE "
                    f"(convert IOBES/IO tags to BIO first)"
                )
        return tags

    @model_validator(mode="after")
    def _same_length(self) -> TokenRecord:
        if self.tags is not None and len(self.tags) != len(self.tokens):
            raise ValueError(f"token/tag count mismatch: {len(self.tokens)} tokens but {len(self.tags)} tags")
        return self


class Entity(BaseModel):
    type: str = Field(description="Entity type, e.g. 'Disease'.")
    text: str = Field(description="The entity's words joined by spaces (or the exact source text).")
    start: int = Field(description="Start token index (inclusive), or character offset for raw text.")
    end: int = Field(description="End token index (exclusive), or character offset for raw text.")
    score: float = Field(description="Mean probability of the entity's tags.")


class TokenPrediction(Prediction):
    tokens: list[str]
    tags: list[str] = Field(description="Predicted BIO tag per token (after repair).")
    entities: list[Entity]


def repair_bio(tags: Sequence[str]) -> list[str]:
    """Make a tag sequence valid BIO the way conlleval reads it: an ``I-X`` that does not continue an
    ``X`` entity (after ``O``, at the start, or after another type) starts a new entity, ``B-X``."""
    repaired: list[str] = []
    previous = "O"
    for tag in tags:
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            tag = "B-" + tag[2:]
        repaired.append(tag)
        previous = tag
    return repaired


def spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """(type, start, end) word spans of a valid BIO sequence; end is exclusive."""
    found: list[tuple[str, int, int]] = []
    start, kind = -1, ""
    for i, tag in enumerate(list(tags) + ["O"]):
        if start >= 0 and not (tag.startswith("I-") and tag[2:] == kind):
            found.append((kind, start, i))
            start = -1
        if tag.startswith("B-"):
            start, kind = i, tag[2:]
    return found


def bio_labels(tags: set[str]) -> list[str]:
    """'O' first, then B-/I- pairs by type, so label order is stable across runs."""
    types = sorted({t[2:] for t in tags if t != "O"})
    return ["O"] + [f"{p}-{t}" for t in types for p in ("B", "I")]


class TokenClassificationTask(TransformerTask):
    """BIO tagging. The first subword of each word carries its label; later subwords are ignored in the
    loss and in decoding, so predictions are per word."""

    name = "token-classification"
    description = "BIO token classification with entity-level metrics (generic)."
    Record = TokenRecord
    Prediction = TokenPrediction
    head_name = "token-classification"
    DataOptions = TokenDataConfig
    metric_names = ("precision", "recall", "f1", "token_accuracy")
    primary_metric = "f1"
    label_field = "tags"
    default_format = "conll"
    # NCBI-disease, 3 student seeds of one mpnet-base teacher (issue 30): two generated sentences per training
    # sentence, tagged by the teacher word by word, beat logits only on devel F1 (docs/backbones.md)
    default_transfer_multiplier = 2
    # NCBI-disease again: students given twice the fine-tune's epochs (6 where teacher and MiniLM had 3) beat
    # the 3-epoch students on devel F1 on every seed (docs/backbones.md)
    default_student_epoch_factor = 2.0

    def field_map(self) -> dict[str, str]:
        return {"tokens": self.data_options.tokens_column, "tags": self.data_options.tags_column}

    def to_record(self, raw: RawRecord, *, require_labels: bool = True):  # type: ignore[no-untyped-def,override]
        data = dict(raw.data)
        tokens_key = self.data_options.tokens_column
        if isinstance(data.get(tokens_key), str):  # CSV cells hold space-separated tokens/tags
            data[tokens_key] = data[tokens_key].split()
            tags_key = self.data_options.tags_column
            if isinstance(data.get(tags_key), str):
                data[tags_key] = data[tags_key].split()
        return super().to_record(RawRecord(raw.path, raw.line, data), require_labels=require_labels)

    def record_from_text(self, text: str) -> dict[str, Any]:
        return {self.data_options.tokens_column: text.split()}

    def stratify_key(self, record):  # type: ignore[no-untyped-def,override]
        return None

    def labels_from(self, records):  # type: ignore[no-untyped-def,override]
        return bio_labels({t for r in records for t in r.tags})

    def prepare(self, train):  # type: ignore[no-untyped-def,override]
        super().prepare(train)
        # All-'O' data trains a tagger that never finds an entity, with a perfect-looking loss.
        if all(tag == "O" for record in train for tag in record.tags or []):
            path, _ = train[0].origin() if train else (None, None)
            raise DataError(
                f"every tag of the {len(train)} training sentences is 'O' (no entity at all); a tagger needs "
                f"examples of the entities it should find: add B-/I- tags", path=path,
                field=self.data_options.tags_column)

    def check_split(self, records, split, raw_path):  # type: ignore[no-untyped-def,override]
        check_labels_known(records, self.labels_, split, raw_path, self.data_options.tags_column,
                           lambda r: r.tags or [])

    def words_of(self, records):  # type: ignore[no-untyped-def,override]
        return [token for record in records for token in record.tokens]

    @staticmethod
    def _variant(record: TokenRecord, tokens: list[str], tags: list[str] | None) -> TokenRecord:
        update: dict[str, Any] = {"tokens": tokens, "tags": tags}
        if "text" in type(record).model_fields:  # a source text (medical.ner) no longer holds the new tokens
            update["text"] = None
        return record.model_copy(update=update)

    def augment_records(self, train, options, neighbours):  # type: ignore[no-untyped-def,override]
        """Dai & Adel (2020) variants of the training sentences, their tags aligned with their tokens."""
        generated = augment_token_sentences([r.tokens for r in train], [r.tags for r in train],
                                            copies=options.copies, operations=options.operations, rate=options.rate,
                                            seed=self.config.training.seed, neighbours=neighbours)
        return [self._variant(train[i], tokens, tags) for i, tokens, tags in generated]

    def transfer_records(self, train, neighbours):  # type: ignore[no-untyped-def,override]
        """Untagged token lists generated from the training sentences (masking, neighbours, n-grams)."""
        generated = transfer_sentences([r.tokens for r in train], multiplier=self.distill_transfer_multiplier,
                                       seed=self.config.training.seed, neighbours=neighbours,
                                       mask_token=self.mask_token())
        return [self._variant(train[i], tokens, None) for i, tokens in generated]

    def encode(self, records, *, with_labels):  # type: ignore[no-untyped-def,override]
        encoded = self.tokenizer_([r.tokens for r in records], is_split_into_words=True, truncation=True,
                                  max_length=self.config.training.max_length)
        index = {label: i for i, label in enumerate(self.labels_)}
        features = []
        for i, record in enumerate(records):
            word_ids = encoded.word_ids(i)
            feature: dict[str, Any] = {key: encoded[key][i] for key in encoded.keys()}
            feature["word_ids"] = word_ids
            if with_labels:
                labels, previous = [], None
                for word in word_ids:
                    labels.append(index[record.tags[word]] if word is not None and word != previous else -100)
                    previous = word
                feature["labels"] = labels
            features.append(feature)
        return features

    def soft_targets(self, teacher, records, features):  # type: ignore[no-untyped-def,override]
        """The teacher's per-word probabilities (from its own tokenisation) on each word's first subword in
        the student's; other positions are NaN (no target), so teacher and student may tokenise differently."""
        if len(features) != len(records) or any("word_ids" not in f for f in features):
            # e.g. medical.ner's sliding windows: not one input per record with this task's word alignment
            raise ConfigError(f"{self.task_name}: distillation needs one model input per record with word "
                              f"alignment (word_ids); this task encodes records its own way (windows), which "
                              f"distillation does not support yet")
        from .distillation import as_teacher_reads

        teacher_records = as_teacher_reads(self, teacher, records)  # --teacher-mask; the same words
        teacher_features, teacher_logits = teacher.predict_logits(teacher_records)
        if len(teacher_features) != len(records) or any("word_ids" not in f for f in teacher_features):
            raise ConfigError(f"the teacher ({teacher.task_name}) splits records into several inputs; "
                              f"distillation needs one per record")
        targets = []
        for record, feature, teacher_feature, logits in zip(teacher_records, features, teacher_features,
                                                            teacher_logits, strict=True):
            words = teacher.word_probabilities(record, teacher_feature, logits)
            rows = np.full((len(feature["input_ids"]), len(self.labels_)), np.nan, dtype=np.float32)
            previous = None
            for position, word in enumerate(feature["word_ids"]):
                if word is not None and word != previous:
                    rows[position] = words[word]
                previous = word
            targets.append(rows)
        return targets

    def word_probabilities(self, record: TokenRecord, feature: dict[str, Any], logits: np.ndarray) -> np.ndarray:
        """[n_words, n_labels] probabilities from each word's first subword; words cut off by truncation
        get probability 1 for 'O'."""
        probs = np.zeros((len(record.tokens), len(self.labels_)))
        probs[:, 0] = 1.0
        token_probs = softmax(logits.astype(np.float64))
        previous = None
        for position, word in enumerate(feature["word_ids"]):
            if word is not None and word != previous and position < len(token_probs):
                probs[word] = token_probs[position]
            previous = word
        return probs

    def decode_words(self, tokens: Sequence[str], probs: np.ndarray) -> TokenPrediction:
        raw_tags = [self.labels_[int(i)] for i in probs.argmax(axis=1)]
        tags = repair_bio(raw_tags)
        index = {label: i for i, label in enumerate(self.labels_)}
        entities = []
        for kind, start, end in spans(tags):
            score = float(np.mean([probs[w, index.get(tags[w], 0)] for w in range(start, end)]))
            entities.append(Entity(type=kind, text=" ".join(tokens[start:end]), start=start, end=end, score=score))
        return TokenPrediction(tokens=list(tokens), tags=tags, entities=entities)

    def decode(self, records, features, logits):  # type: ignore[no-untyped-def,override]
        return [self.decode_words(r.tokens, self.word_probabilities(r, f, lg))
                for r, f, lg in zip(records, features, logits)]

    def export_extras(self, directory):  # type: ignore[no-untyped-def,override]
        return self.export_common() | {
            "kind": "token-classification",
            "words": "a text is split on whitespace; records give tokens",
            "word_label": "softmax of the word's first subword; words cut off by truncation are 'O'",
            "bio_repair": "an I-X that does not continue an X entity becomes B-X",
            "entity_score": "mean probability of the entity's tags"}

    def majority_baseline(self, train, validation):  # type: ignore[no-untyped-def,override]
        counts = Counter(tag for r in train for tag in r.tags or [])
        if not counts or not validation:
            return None
        majority = min(counts, key=lambda tag: (-counts[tag], tag))  # 'O' on any real data: no entity found
        metrics, _ = entity_metrics([r.tags for r in validation], [[majority] * len(r.tags) for r in validation])
        return f"always '{majority}', the most frequent training tag", metrics

    def score(self, records: Sequence[TokenRecord], predictions: Sequence[TokenPrediction]) -> Evaluation:  # type: ignore[override]
        metrics, per_type = entity_metrics([r.tags for r in records], [p.tags for p in predictions])
        return Evaluation(task=self.task_name, n=len(records), metrics=metrics, per_label=per_type)
