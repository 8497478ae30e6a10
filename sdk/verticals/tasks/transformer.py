"""Shared machinery of task types that fine-tune a backbone + head with a trainer.

Subclasses supply the task-specific parts: how labels are learnt from data, how records are encoded,
how logits decode to predictions, and how predictions are scored.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel

from ..backbones.collate import Collator, predict_logits
from ..backbones.embeddings import encode_texts
from ..backbones.engines import OnnxBackbone, onnx_backbone
from ..backbones.loading import (
    backbone_digest,
    check_max_length,
    load_bundle_tokenizer,
    load_tokenizer,
    resolve_backbone,
)
from ..backbones.model import VerticalsModel, apply_strategy, load_model, save_model
from ..data.augment import EmbeddingNeighbours
from ..errors import ConfigError, DataError
from ..runtime import configure_threads, resolve_precision
from .base import TaskType


class TransformerTask(TaskType):
    """A task type trained by fine-tuning a transformer backbone with a registered head."""

    head_name: ClassVar[str]
    supports_trainer_callbacks = True
    truncates_long_inputs: ClassVar[bool] = True
    """False for tasks that split an input longer than ``training.max_length`` into windows (nothing is cut);
    ``verticals check`` reports truncation only where this is True."""

    # ---- to be provided by subclasses ---------------------------------------------------------
    @abstractmethod
    def labels_from(self, records: Sequence[BaseModel]) -> list[str]:
        """The label vocabulary learnt from training records (sorted, stable)."""

    @abstractmethod
    def encode(self, records: Sequence[BaseModel], *, with_labels: bool) -> list[dict[str, Any]]:
        """Tokenise records into model features (``input_ids``... and ``labels`` when asked)."""

    @abstractmethod
    def decode(self, records: Sequence[BaseModel], features: Sequence[dict[str, Any]],
               logits: Sequence[np.ndarray]) -> list[BaseModel]:
        """Typed predictions from per-example logits."""

    def class_weights(self, records: Sequence[BaseModel]) -> list[float] | None:
        """Per-label loss weights (None = unweighted); override for imbalanced tasks."""
        return None

    # ---- shared implementation ----------------------------------------------------------------
    def _head_cls(self) -> type:
        from ..plugins.manager import get_catalog

        return get_catalog().heads.get(self.head_name)

    def _head_kwargs(self, class_weights: list[float] | None = None) -> dict[str, Any]:
        training = self.config.training
        return {"config": training.head, "label_smoothing": training.label_smoothing,
                "class_weights": class_weights}

    def _collator(self) -> Collator:
        return Collator(self.tokenizer_.pad_token_id or 0)

    def prepare(self, train: Sequence[BaseModel]) -> None:
        self.labels_ = self.resolve_labels(train)

    def resolve_labels(self, train: Sequence[BaseModel]) -> list[str]:
        learnt = self.labels_from(train)
        declared = list(self.config.labels)
        if not declared:
            return learnt
        unknown = sorted(set(learnt) - set(declared))
        if unknown:
            raise DataError(
                f"training data has labels {unknown} that are not in the configured labels {declared}; "
                f"fix the data or set labels=[...] in the config", field="label"
            )
        return declared

    def fit(self, train, validation):  # type: ignore[no-untyped-def,override]
        from transformers import set_seed

        from ..plugins.manager import get_catalog

        training = self.config.training
        configure_threads(training.num_threads)
        set_seed(training.seed)
        self.prepare(train)
        self.backbone_path_ = str(resolve_backbone(training.backbone))
        check_max_length(self.backbone_path_, training.max_length)
        self.backbone_digest_ = backbone_digest(self.backbone_path_)  # the card names the exact starting weights
        self.tokenizer_ = load_tokenizer(self.backbone_path_)
        from ..backbones.loading import load_backbone

        backbone = load_backbone(self.backbone_path_)
        head = self._head_cls()(int(backbone.config.hidden_size), len(self.labels_),
                                **self._head_kwargs(self.class_weights(train)))
        model = apply_strategy(VerticalsModel(backbone, head), training.strategy, r=training.lora_r,
                               alpha=training.lora_alpha, dropout=training.lora_dropout)
        if self.teacher is not None and self.distill_transfer_multiplier:
            # from the training split only (after any hold-out), before augmentation adds labelled variants
            transfer = self.transfer_records(train, self._neighbours(backbone, train))
            self.distill_unlabeled = [*self.distill_unlabeled, *transfer]
            if self.distillation_info_ is not None:
                self.distillation_info_["transfer_records"] = len(transfer)
        train = self.augmented(train, backbone)  # after prepare (labels) and class_weights: originals only
        train_features = self.encode(train, with_labels=True)
        val_features = self.encode(validation, with_labels=True) if validation else []
        if self.teacher is not None:
            train_features = self._with_teacher_probs(train, train_features, model)

        def compute_metrics(logits: list[np.ndarray]) -> dict[str, float]:
            self.model_ = model
            return self.score(validation, self.decode(validation, val_features, logits)).metrics

        self.precision_ = resolve_precision(training.precision, hidden_size=model.hidden_size())
        trainer_cls = get_catalog().trainers.get(training.trainer)
        self.trainer_ = trainer_cls(training.model_copy(update={"precision": self.precision_})).fit(
            model, train_features, val_features or None,
            collator=self._collator(), compute_metrics=compute_metrics if validation else None,
            primary_metric=self.primary_metric, greater_is_better=self.greater_is_better,
            checkpoint_dir=Path(self.checkpoint_dir), resume=self.resume,
            param_groups=self._param_groups(model), **self._reporting(),
        )
        self.history_ = list(getattr(self.trainer_, "history_", []))
        if self.teacher is not None:
            from .distillation import detach_layer_distillation

            detach_layer_distillation(model)
        self.model_ = model
        return self

    # set by the caller (verticals.train) before fit; plain attributes so direct users may too
    checkpoint_dir: str = "verticals-checkpoints"
    resume: bool = False
    logging_dir: str | None = None
    # Distillation (verticals.distill): a fitted teacher task with the same labels; its softmax over each
    # training record (and over unlabelled records, which add examples with no gold label) becomes the
    # student's soft target. distillation_info_ is recorded in bundle.json under model.distilled_from.
    # ``teacher`` may be a list: an ensemble whose probabilities are averaged (aligned by label name).
    teacher: Any = None
    distill_unlabeled: Sequence[BaseModel] = ()
    distill_temperature: float = 2.0
    distill_student_temperature: float | None = None  # None: the teacher's temperature
    distill_alpha: float = 0.5
    distill_layers: Any = None  # tasks.distillation.LayerOptions: intermediate-layer losses
    distill_teacher_mask: str = "student"  # tasks.distillation.as_teacher_reads: "student" or "own"
    # A teacher's predict_logits goes through this cache (tasks.teacher_outputs) when distill sets it
    logits_cache: Any = None
    distillation_info_: dict[str, Any] | None = None
    distill_transfer_multiplier: int = 0
    """Generated inputs per training record for the teacher to label (Tang et al., 2019; verticals.data.augment)."""
    # What `verticals distill` generates when no --transfer-set is given: the best student measured for this kind
    # of task (issue 30, docs/backbones.md). Sentence labels: logits only won on validation (PhraseBank).
    default_transfer_multiplier: ClassVar[int] = 0
    # The student's epoch budget when `verticals distill` gets no --epochs: this many times the task's own
    # training.epochs (issue 30's "schedule of its own"; measured per kind of task, docs/backbones.md).
    default_student_epoch_factor: ClassVar[float] = 1.0
    augmentation_info_: dict[str, Any] | None = None
    # What the per-epoch metrics are computed on: the final summary's validation metrics unless a subclass
    # selects on something else (it then says what, so the console never passes one number for another).
    epoch_metrics_on: str = "validation"
    epoch_metrics_note: str | None = None

    # ---- augmentation and transfer sets (verticals.data.augment) -------------------------------
    def words_of(self, records: Sequence[BaseModel]) -> list[str]:
        """The words of ``records`` whose embedding neighbours augmentation may use (whitespace-split texts)."""
        return [word for record in records for word in str(getattr(record, "text", "")).split()]

    def augment_records(self, train: Sequence[BaseModel], options: Any,
                        neighbours: EmbeddingNeighbours | None) -> list[BaseModel]:
        """Labelled variants of ``train`` as ``data.augment`` (``options``) asks; task types that support it
        override this."""
        raise ConfigError(f"task '{self.task_name}' does not support data.augment")

    def transfer_records(self, train: Sequence[BaseModel], neighbours: EmbeddingNeighbours | None) -> list[BaseModel]:
        """Unlabelled inputs generated from ``train`` for distillation (``distill_transfer_multiplier`` each)."""
        raise ConfigError(f"task '{self.task_name}' cannot generate a distillation transfer set")

    def _neighbours(self, backbone: Any, records: Sequence[BaseModel]) -> EmbeddingNeighbours | None:
        """Nearest neighbours of the records' words in the backbone's own input-embedding matrix (no download)."""
        embeddings = backbone.get_input_embeddings() if hasattr(backbone, "get_input_embeddings") else None
        if embeddings is None or not hasattr(embeddings, "weight"):
            return None
        weights = embeddings.weight.detach().float().cpu().numpy()
        lowercase = getattr(self.tokenizer_, "do_lower_case", None)
        return EmbeddingNeighbours.from_embeddings(self.tokenizer_.get_vocab(), weights, self.words_of(records),
                                                   lowercase=lowercase if isinstance(lowercase, bool) else None)

    def mask_token(self) -> str:
        """What a transfer set masks words with: the tokenizer's mask token, else its unknown token."""
        return str(getattr(self.tokenizer_, "mask_token", None) or getattr(self.tokenizer_, "unk_token", None)
                   or "[MASK]")

    def augmented(self, train: Sequence[BaseModel], backbone: Any) -> list[BaseModel]:
        """``train`` plus the variants ``data.augment`` asks for (none when ``copies`` is 0 or the task type
        has no such option); what was added is recorded in bundle.json under ``model.augmentation``."""
        options = getattr(self.data_options, "augment", None)
        if options is None or not options.copies:
            return list(train)
        neighbours = self._neighbours(backbone, train) if "neighbour" in options.operations else None
        added = self.augment_records(train, options, neighbours)
        self.augmentation_info_ = {"records": len(train), "added": len(added), "copies": options.copies,
                                   "operations": list(options.operations), "rate": options.rate,
                                   "neighbour_words": len(neighbours.table) if neighbours is not None else 0}
        return [*train, *added]

    def _reporting(self) -> dict[str, Any]:
        """The trainer's reporting arguments that differ from their defaults: a trainer written before they
        existed keeps working unless they are used."""
        values = {"callbacks": list(self.callbacks),
                  "logging_dir": Path(self.logging_dir) if self.logging_dir else None,
                  "metrics_on": self.epoch_metrics_on, "metrics_note": self.epoch_metrics_note}
        defaults = {"callbacks": [], "logging_dir": None, "metrics_on": "validation", "metrics_note": None}
        return {k: v for k, v in values.items() if v != defaults[k]}

    def _with_teacher_probs(self, train: Sequence[BaseModel], features: list[dict[str, Any]],
                            model: VerticalsModel) -> list[dict[str, Any]]:
        from .distillation import add_layer_distillation, averaged_targets

        unlabeled = list(self.distill_unlabeled)
        extra = self.encode(unlabeled, with_labels=False) if unlabeled else []
        per_token = bool(features) and isinstance(features[0].get("labels"), list)
        for feature in extra:  # no gold label: the teacher's distribution is the only target
            feature["labels"] = [-100] * len(feature["input_ids"]) if per_token else -100
        every = [*features, *extra]
        for feature, target in zip(every, averaged_targets(self, [*train, *unlabeled], every), strict=True):
            feature["teacher_probs"] = target
        model.distillation = (self.distill_temperature, self.distill_alpha,
                              self.distill_student_temperature or self.distill_temperature)
        if self.distill_layers is not None and self.distill_layers.active:
            add_layer_distillation(self, [*train, *unlabeled], every, model, self.distill_layers)
        return every

    def soft_targets(self, teacher: TransformerTask, records: Sequence[BaseModel],
                     features: Sequence[dict[str, Any]]) -> list[np.ndarray]:
        """The teacher's probabilities for each of the student's ``features`` (one per record): a
        ``[n_labels]`` row per text here; token tasks give ``[n_tokens, n_labels]`` (NaN rows: no target)."""
        from ..metrics import softmax

        if len(features) != len(records):
            raise ConfigError(f"{self.task_name}: distillation needs one model input per record; this task "
                              f"splits records into {len(features)} inputs for {len(records)} records")
        from .distillation import as_teacher_reads

        _, logits = teacher.predict_logits(as_teacher_reads(self, teacher, records))
        rows = softmax(np.stack(logits).astype(np.float64))
        if rows.ndim != 2:
            raise ConfigError(f"{self.task_name}: the teacher gives no single distribution per text")
        return [row.astype(np.float32) for row in rows]

    def _param_groups(self, model: VerticalsModel) -> list[dict[str, Any]]:
        """AdamW groups: no decay for biases/LayerNorm; the new head may get its own learning rate."""
        training = self.config.training
        head_lr = training.head_learning_rate or training.learning_rate
        groups: dict[tuple[bool, bool], list[Any]] = {}
        for name, param in model.named_parameters():
            if not param.requires_grad:
                continue
            # a new head, or the training-only projections of intermediate-layer distillation: both start random
            is_head = name.startswith(("head.", "layer_distiller."))
            no_decay = param.ndim < 2 or "LayerNorm" in name or "layer_norm" in name
            groups.setdefault((is_head, no_decay), []).append(param)
        return [
            {"params": params, "lr": head_lr if is_head else training.learning_rate,
             "weight_decay": 0.0 if no_decay else training.weight_decay}
            for (is_head, no_decay), params in groups.items()
        ]

    def predict_logits(self, records: Sequence[BaseModel]) -> tuple[list[dict[str, Any]], list[np.ndarray]]:
        self.check_is_fitted("model_")
        features = self.encode(records, with_labels=False)

        def compute() -> list[np.ndarray]:
            return predict_logits(self.model_, features, self._collator(),
                                  batch_size=self.config.training.eval_batch_size, precision=self.precision_)

        return features, compute() if self.logits_cache is None else self.logits_cache.logits(features, compute)

    def predict(self, records):  # type: ignore[no-untyped-def,override]
        features, logits = self.predict_logits(records)
        return self.decode(records, features, logits)

    def embedding_pooling(self) -> str:
        """How token states become the sentence vector of ``embed`` (and of an export's ``embeddings``):
        the sequence head's pooling, so the vector is the one the classifier reads."""
        return str(getattr(self.config.training.head, "pooling", "mean"))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """``[len(texts), hidden]`` float32 unit-length sentence embeddings from the fine-tuned encoder, pooled
        as ``embedding_pooling`` says, truncated at ``training.max_length``; on the task's current engine."""
        self.check_is_fitted("model_")
        if isinstance(texts, str):
            raise TypeError("embed() takes a list of texts")
        return encode_texts(self.model_.backbone, self.tokenizer_, list(texts),
                            max_length=self.config.training.max_length,
                            batch_size=self.config.training.eval_batch_size, precision=self.precision_,
                            pooling=self.embedding_pooling())

    def export_common(self) -> dict[str, Any]:
        """Decision parameters every transformer task's export shares (subclasses add ``kind`` and theirs)."""
        return {"max_length": self.config.training.max_length, "truncation": "longest_first, right side"}

    def save(self, directory: Path) -> None:
        self.check_is_fitted("model_")
        save_model(self.model_, self.tokenizer_, directory)

    def state(self) -> dict[str, Any]:
        return {"labels": list(self.labels_)}

    def summary(self) -> dict[str, Any]:
        params = sum(p.numel() for p in self.model_.parameters())
        summary = {"precision": self.precision_, "parameters": int(params),
                   "backbone": {"source": self.config.training.backbone,
                                "model_type": getattr(self.model_.backbone.config, "model_type", None)}}
        if getattr(self, "backbone_digest_", None):
            summary["backbone"]["digest"] = self.backbone_digest_
        if self.distillation_info_:
            summary["distilled_from"] = dict(self.distillation_info_)
        if self.augmentation_info_:
            summary["augmentation"] = dict(self.augmentation_info_)
        return summary

    def use_engine(self, engine: str) -> None:
        self.check_is_fitted("model_")
        current = self.model_.backbone.engine if isinstance(self.model_.backbone, OnnxBackbone) else "torch"
        if engine == current:
            return
        if current != "torch":  # the PyTorch encoder was dropped when it was exported
            raise ConfigError(f"this task already runs on '{current}'; load the bundle again for '{engine}'")
        threads = configure_threads(self.config.training.num_threads)
        self.model_.cpu()  # ONNX Runtime runs on the CPU here; the head must sit beside its outputs
        self.model_.backbone = onnx_backbone(self.model_.backbone, self.tokenizer_, engine, num_threads=threads)
        self.precision_ = "fp32"  # ONNX Runtime returns fp32 states; autocast over the small head only costs

    def load_state(self, directory: Path, state: dict[str, Any]) -> None:
        self.labels_ = list(state["labels"])
        self.tokenizer_ = load_bundle_tokenizer(directory)
        self.model_ = load_model(directory, self._head_cls(), len(self.labels_), self._head_kwargs())
        configure_threads(self.config.training.num_threads)
        self.precision_ = resolve_precision(self.config.training.precision, hidden_size=self.model_.hidden_size())


def check_labels_known(records: Sequence[BaseModel], labels: Sequence[str], split: str,
                       path: str | Path | None, field: str, get: Any) -> None:
    """A validation/test label never seen in training cannot be learnt or scored: say which and where."""
    known = set(labels)
    for index, record in enumerate(records, start=1):
        for value in get(record):
            if value not in known:
                shown = ", ".join(sorted(known)[:12]) + (" ..." if len(known) > 12 else "")
                origin_path, origin_line = record.origin() if hasattr(record, "origin") else (None, None)
                raise DataError(
                    f"label '{value}' in {split} data was never seen in training; known labels: {shown}",
                    # in-memory rows count from 0: row 0 is a row, not "no line"
                    path=origin_path or path, line=origin_line if origin_line is not None else index, field=field,
                )

