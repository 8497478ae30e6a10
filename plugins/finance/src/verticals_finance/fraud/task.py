"""``finance.fraud``: binary fraud scoring of records with numeric, categorical and text columns.

Text columns are embedded with the (frozen) backbone, concatenated with the scaled numeric and one-hot
categorical features, and scored by an ensemble of class-weighted fusion MLPs (the ``finance.fusion``
head). The decision threshold minimises expected cost on validation data under the configured costs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from verticals import ConfigError, DataError, Evaluation, Prediction, Record, TaskType
from verticals.console import TrainingConsole
from verticals.data.records import RawRecord

from .features import TabularPreprocessor, parse_label, parse_number
from .metrics import choose_threshold, fraud_metrics
from .options import FraudDataOptions, FraudOptions
from .train import embed_columns, predict_proba, train_ensemble

logger = logging.getLogger("verticals")

PREPROCESSING_FILE = "preprocessing.json"
WEIGHTS_FILE = "fusion.safetensors"
BACKBONE_DIR = "backbone"


class FraudRecord(Record):
    """One transaction: the declared columns (as extra fields, parsed) plus the 0/1 label."""

    model_config = ConfigDict(extra="allow")

    label: int | None = Field(None, description="1 = fraud, 0 = legitimate (needed for training/evaluation).")


class FraudPrediction(Prediction):
    label: int = Field(description="1 = flagged as fraud (probability >= threshold), else 0.")
    score: float = Field(description="Fraud probability.")
    threshold: float = Field(description="Cost-minimising decision threshold chosen on validation data.")


class FraudTask(TaskType):
    """Tabular (+ text) fraud classification with cost-based decisions."""

    name = "finance.fraud"
    description = "Transaction fraud from numeric, categorical and text columns; cost-minimising threshold."
    Record = FraudRecord
    Prediction = FraudPrediction
    DataOptions = FraudDataOptions
    Options = FraudOptions
    metric_names = ("auprc", "roc_auc", "recall_at_1pct_fpr", "precision", "recall", "f1", "expected_cost")
    primary_metric = "auprc"
    export_unsupported = ("its score comes from fitted tabular preprocessing, frozen text embeddings and an "
                          "ensemble of fusion networks with a cost threshold, which the ONNX export does not cover")

    # ---- data --------------------------------------------------------------------------------
    def _columns(self) -> tuple[list[str], list[str], list[str]]:
        d = self.data_options
        if not (d.numeric_columns or d.categorical_columns or d.text_columns):
            raise ConfigError("finance.fraud needs feature columns: set data.numeric_columns, "
                              "data.categorical_columns and/or data.text_columns (lists of column names)")
        declared = d.numeric_columns + d.categorical_columns + d.text_columns
        clash = sorted({c for c in declared if declared.count(c) > 1} | ({"label"} & set(declared))
                       | ({d.label_column} & set(declared)))
        if clash:
            raise ConfigError(f"column(s) {clash} declared twice or used as both feature and label; "
                              f"each column has one role")
        return d.numeric_columns, d.categorical_columns, d.text_columns

    def to_record(self, raw: RawRecord, *, require_labels: bool = True) -> FraudRecord:
        numeric, categorical, text = self._columns()
        label_column = self.data_options.label_column
        needed = numeric + categorical + text + ([label_column] if require_labels else [])
        for column in needed:
            if column not in raw.data:
                found = ", ".join(map(str, raw.data)) or "none"
                raise DataError(f"missing declared column '{column}' (found: {found})", path=raw.path,
                                line=raw.line, field=column)
        where = {"path": raw.path, "line": raw.line}
        values: dict[str, Any] = {c: parse_number(raw.data[c], column=c, **where) for c in numeric}
        values.update({c: "" if raw.data[c] is None else str(raw.data[c]).strip() for c in categorical})
        values.update({c: "" if raw.data[c] is None else str(raw.data[c]) for c in text})
        label = parse_label(raw.data.get(label_column), column=label_column, **where)
        if require_labels and label is None:
            raise DataError("empty label; every training/evaluation record needs 0 or 1", field=label_column,
                            **where)
        record = FraudRecord(label=label, **values)
        record._path, record._line = raw.path, raw.line
        return record

    def example_record(self) -> dict[str, Any]:
        """The declared columns with typical values (training means, the commonest known category): the
        request example of `verticals serve`'s docs, never the label."""
        numeric, categorical, text = self._columns()
        fitted = getattr(self, "preprocessor_", None)
        example: dict[str, Any] = {c: round(fitted.numeric[c][0], 2) if fitted else 0.0 for c in numeric}
        for column in categorical:
            known = fitted.categories.get(column, [])[1:] if fitted else []  # [0] is the unknown slot
            example[column] = known[0] if known else "CATEGORY"
        example.update({c: "Online purchase at an electronics store" for c in text})
        return example

    def _rows(self, records: Sequence[BaseModel]) -> list[dict[str, Any]]:
        return [dict(r.model_extra or {}) for r in records]

    def _labels(self, records: Sequence[BaseModel], split: str, other: Sequence[BaseModel] = ()) -> np.ndarray:
        y = np.array([r.label for r in records], dtype=np.int64)  # type: ignore[attr-defined]
        if len(np.unique(y)) < 2:
            both = {r.label for r in [*records, *other]} == {0, 1}  # type: ignore[attr-defined]
            if both and getattr(self, "validation_held_out", False):  # no --validation given: the split did it
                raise DataError(f"the automatic hold-out (no --validation given; data.validation_fraction="
                                f"{self.data_options.validation_fraction:g}) left only label {int(y[0])} in the "
                                f"{split} records, and fraud training needs both 0 and 1 records in each; give "
                                f"--validation FILE with both, add records of the rarer label, or change "
                                f"data.validation_fraction", field=self.data_options.label_column)
            raise DataError(f"{split} data holds only label {int(y[0])}; fraud training needs both 0 and 1 records",
                            field=self.data_options.label_column)
        return y

    # ---- estimator ---------------------------------------------------------------------------
    def prepare(self, train: Sequence[BaseModel]) -> None:
        self.labels_ = ["0", "1"]

    def _features(self, records: Sequence[BaseModel]) -> np.ndarray:
        rows = self._rows(records)
        parts = [self.preprocessor_.transform(rows)]
        if self.data_options.text_columns:
            parts.append(embed_columns(self.encoder_, rows, self.data_options.text_columns, self.config.training))
        return np.concatenate(parts, axis=1)

    def fit(self, train: Sequence[BaseModel], validation: Sequence[BaseModel]) -> FraudTask:  # type: ignore[override]
        from verticals.backbones.loading import check_max_length, load_backbone, load_tokenizer, resolve_backbone
        from verticals.runtime import configure_threads

        numeric, categorical, text = self._columns()
        configure_threads(self.config.training.num_threads)
        self.prepare(train)
        y_train, y_val = self._labels(train, "training", validation), self._labels(validation, "validation", train)
        # Fitted on training records only, so nothing about validation/test leaks into the features.
        self.preprocessor_ = TabularPreprocessor.fit(self._rows(train), numeric, categorical,
                                                     min_count=self.options.min_category_count, clip=self.options.clip)
        if text:
            path = resolve_backbone(self.config.training.backbone)
            check_max_length(path, self.config.training.max_length)
            self.encoder_ = (load_backbone(path), load_tokenizer(path))
        if text:
            logger.info("embedding %d text column(s) of %d records with the frozen backbone", len(text),
                        len(train) + len(validation))
        x_train, x_val = self._features(train), self._features(validation)
        ensemble = self.options.ensemble
        console = TrainingConsole(
            total_epochs=ensemble * max(1, int(round(self.config.training.epochs))), primary_metric="auprc",
            metrics_on="validation, this head alone" if ensemble > 1 else "validation",
            note=(f"threshold-free metrics of each of the {ensemble} heads alone; the final summary scores their "
                  f"mean at the cost-minimising threshold" if ensemble > 1 else None))
        self.models_ = train_ensemble(self._head_cls(), x_train, y_train, x_val, y_val, self.options,
                                      self.config.training, console)
        self.history_ = console.history
        p_val = predict_proba(self.models_, x_val)
        opts = self.options
        self.threshold_, self.validation_cost_ = choose_threshold(
            y_val, p_val, opts.cost_false_negative, opts.cost_false_positive, opts.negative_weight)
        return self

    def _head_cls(self) -> type:
        from verticals import get_catalog

        return get_catalog().heads.get(self.options.head)

    def predict_proba(self, records: Sequence[BaseModel]) -> np.ndarray:
        self.check_is_fitted("models_")
        if not records:
            return np.zeros(0)
        return predict_proba(self.models_, self._features(records))

    def predict(self, records: Sequence[BaseModel]) -> list[FraudPrediction]:  # type: ignore[override]
        p = self.predict_proba(records)
        return [FraudPrediction(label=int(s >= self.threshold_), score=float(s), threshold=self.threshold_) for s in p]

    def score(self, records: Sequence[BaseModel], predictions: Sequence[BaseModel]) -> Evaluation:  # type: ignore[override]
        y = np.array([r.label for r in records], dtype=np.int64)  # type: ignore[attr-defined]
        p = np.array([pred.score for pred in predictions], dtype=np.float64)  # type: ignore[attr-defined]
        o = self.options
        metrics, per_label, details = fraud_metrics(y, p, self.threshold_, o.cost_false_negative,
                                                    o.cost_false_positive, o.negative_weight)
        return Evaluation(task=self.task_name, n=len(records), metrics=metrics, per_label=per_label, details=details)

    # ---- persistence -------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        from safetensors.torch import save_file

        self.check_is_fitted("models_")
        (directory / PREPROCESSING_FILE).write_text(json.dumps(self.preprocessor_.to_json(), indent=1) + "\n",
                                                    encoding="utf-8")
        tensors = {f"{k}.{name}": t.detach().contiguous().cpu()
                   for k, model in enumerate(self.models_) for name, t in model.state_dict().items()
                   if not name.startswith("loss_fn.")}  # class weights only matter for training
        save_file(tensors, str(directory / WEIGHTS_FILE))
        if self.data_options.text_columns:  # the text encoder travels with the bundle
            backbone, tokenizer = self.encoder_
            backbone.save_pretrained(directory / BACKBONE_DIR, safe_serialization=True)
            tokenizer.save_pretrained(directory / BACKBONE_DIR)

    def state(self) -> dict[str, Any]:
        return {"labels": list(self.labels_), "threshold": self.threshold_,
                "input_dim": int(self.models_[0].hidden_size), "ensemble": len(self.models_),
                "validation_expected_cost": self.validation_cost_}

    def metric_notes(self) -> dict[str, str]:
        o = self.options
        costs = f"a missed fraud costs {o.cost_false_negative:g}, a false alarm costs {o.cost_false_positive:g}"
        return {"expected_cost": f"{o.cost_unit} per transaction ({costs}; task.cost_false_negative, "
                                 f"task.cost_false_positive, task.cost_unit)"}

    def summary(self) -> dict[str, Any]:
        params = sum(p.numel() for m in self.models_ for p in m.parameters())
        summary: dict[str, Any] = {"precision": "fp32", "parameters": int(params), "features": self.preprocessor_.width}
        if self.data_options.text_columns:
            summary["backbone"] = {"source": self.config.training.backbone, "frozen": True,
                                   "model_type": getattr(self.encoder_[0].config, "model_type", None)}
        return summary

    def load_state(self, directory: Path, state: dict[str, Any]) -> None:
        from safetensors.torch import load as load_tensors
        from verticals import BundleError
        from verticals.backbones.loading import load_bundle_backbone, load_bundle_tokenizer
        from verticals.bundles.bundle import read_verified

        self.labels_ = list(state["labels"])
        self.threshold_ = float(state["threshold"])
        self.validation_cost_ = float(state.get("validation_expected_cost", float("nan")))
        # the bytes checked against the manifest are the bytes loaded
        data = json.loads(read_verified(directory, PREPROCESSING_FILE))
        self.preprocessor_ = TabularPreprocessor.from_json(data)
        tensors = load_tensors(read_verified(directory, WEIGHTS_FILE))
        head_cls, models = self._head_cls(), []
        for k in range(int(state["ensemble"])):
            model = head_cls(int(state["input_dim"]), 2, self.config.training.head,
                             hidden_units=self.options.hidden_units, layers=self.options.layers)
            prefix = f"{k}."
            try:
                model.load_state_dict({n[len(prefix):]: t for n, t in tensors.items() if n.startswith(prefix)})
            except RuntimeError as exc:
                raise BundleError(f"{directory / WEIGHTS_FILE}: weights do not match the bundle ({exc})") from None
            models.append(model.eval())
        self.models_ = models
        if self.data_options.text_columns:
            self.encoder_ = (load_bundle_backbone(directory, BACKBONE_DIR),
                             load_bundle_tokenizer(directory, BACKBONE_DIR))
