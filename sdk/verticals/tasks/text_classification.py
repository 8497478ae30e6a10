"""Generic single-label text classification."""

from __future__ import annotations

import math
import unicodedata
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import Field, field_validator

from ..config import TextDataConfig
from ..data.augment import augment_texts, transfer_texts
from ..errors import DataError
from ..metrics import classification_metrics, softmax
from .base import Evaluation, Prediction, Record
from .transformer import TransformerTask, check_labels_known


class TextRecord(Record):
    text: str = Field(description="The input text.")
    label: str | None = Field(None, description="Gold label (needed for training and evaluation).")

    @field_validator("text", mode="before")
    @classmethod
    def _text_not_empty(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            raise ValueError("empty text; every record needs non-blank text")
        return value

    @field_validator("label", mode="before")
    @classmethod
    def _label_as_string(cls, value: Any) -> Any:
        # JSON labels may be numbers or booleans; they become the text a CSV file would hold ("0", "false"),
        # so the same classes read from either format are the same labels.
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            if not math.isfinite(value):
                raise ValueError(f"label must be a class name or number, found {value}")
            return str(int(value)) if float(value).is_integer() else str(value)
        if isinstance(value, str):
            # NFC: 'café' typed with a combining accent is the same label as the precomposed one, not a
            # second label that prints the same
            value = unicodedata.normalize("NFC", value.strip())
            return value or None
        return value


class TextPrediction(Prediction):
    label: str = Field(description="Predicted label.")
    score: float = Field(description="Probability of the predicted label.")
    scores: dict[str, float] = Field(description="Probability of every label.")


class TextClassificationTask(TransformerTask):
    """One label per text: backbone + pooled sequence-classification head, cross-entropy."""

    name = "text-classification"
    description = "Single-label text classification (generic)."
    Record = TextRecord
    Prediction = TextPrediction
    head_name = "sequence-classification"
    DataOptions = TextDataConfig
    metric_names = ("accuracy", "macro_f1", "macro_precision", "macro_recall", "weighted_f1")
    primary_metric = "accuracy"

    def field_map(self) -> dict[str, str]:
        return {"text": self.data_options.text_column, "label": self.data_options.label_column}

    def labels_from(self, records):  # type: ignore[no-untyped-def,override]
        return sorted({r.label for r in records})

    def prepare(self, train):  # type: ignore[no-untyped-def,override]
        super().prepare(train)
        # One class trains "successfully" into a model that answers that class for everything.
        seen = self.labels_from(train)
        if len(seen) < 2:
            path, _ = train[0].origin() if train else (None, None)
            raise DataError(
                f"the training records hold one label only ({seen[0]!r}, {len(train)} records); a classifier "
                f"needs examples of at least two labels: add records of the other classes",
                path=path, field=self.data_options.label_column)

    def check_split(self, records, split, raw_path):  # type: ignore[no-untyped-def,override]
        check_labels_known(records, self.labels_, split, raw_path, self.data_options.label_column,
                           lambda r: [r.label] if r.label is not None else [])

    def augment_records(self, train, options, neighbours):  # type: ignore[no-untyped-def,override]
        """EDA variants of the training texts, each with its source's label (the generator sees texts only)."""
        generated = augment_texts([r.text for r in train], copies=options.copies, operations=options.operations,
                                  rate=options.rate, seed=self.config.training.seed, neighbours=neighbours)
        return [train[i].model_copy(update={"text": text}) for i, text in generated]

    def transfer_records(self, train, neighbours):  # type: ignore[no-untyped-def,override]
        """Unlabelled texts generated from the training texts (Tang et al., 2019) for the teacher to label."""
        generated = transfer_texts([r.text for r in train], multiplier=self.distill_transfer_multiplier,
                                   seed=self.config.training.seed, neighbours=neighbours,
                                   mask_token=self.mask_token())
        return [train[i].model_copy(update={"text": text, "label": None}) for i, text in generated]

    def encode(self, records, *, with_labels):  # type: ignore[no-untyped-def,override]
        encoded = self.tokenizer_([r.text for r in records], truncation=True,
                                  max_length=self.config.training.max_length)
        index = {label: i for i, label in enumerate(self.labels_)}
        features = []
        for i, record in enumerate(records):
            feature = {key: encoded[key][i] for key in encoded.keys()}
            if with_labels:
                feature["labels"] = index[record.label]
            features.append(feature)
        return features

    def decode(self, records, features, logits):  # type: ignore[no-untyped-def,override]
        if not len(logits):
            return []
        probs = softmax(np.stack(logits).astype(np.float64))
        predictions = []
        for row in probs:
            best = int(row.argmax())
            predictions.append(TextPrediction(
                label=self.labels_[best], score=float(row[best]),
                scores={label: float(p) for label, p in zip(self.labels_, row)}))
        return predictions

    def export_extras(self, directory):  # type: ignore[no-untyped-def,override]
        return self.export_common() | {
            "kind": "text-classification",
            "scores": "softmax(logits) over labels; label = argmax; score = its probability"}

    def majority_baseline(self, train, validation):  # type: ignore[no-untyped-def,override]
        counts = Counter(r.label for r in train if r.label is not None)
        gold = [r.label for r in validation]
        if not counts or not gold:
            return None
        majority = min(counts, key=lambda label: (-counts[label], label))  # ties: the first by name
        labels = list(dict.fromkeys([*self.labels_, *gold, majority]))  # a pack's unlearnt labels too (oos)
        metrics, _, _ = classification_metrics(gold, [majority] * len(gold), labels)
        return f"always '{majority}', the most frequent training label", metrics

    def score(self, records: Sequence[TextRecord], predictions: Sequence[TextPrediction]) -> Evaluation:  # type: ignore[override]
        y_true = [r.label for r in records]
        y_pred = [p.label for p in predictions]
        metrics, per_label, details = classification_metrics(y_true, y_pred, self.labels_)
        return Evaluation(task=self.task_name, n=len(records), metrics=metrics, per_label=per_label,
                          details=details)
