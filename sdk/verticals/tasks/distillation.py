"""A student task's side of distillation (verticals.distill): soft targets from one teacher or an ensemble,
and the teacher inputs and losses of intermediate-layer distillation.

An ensemble averages the teachers' probabilities (each teacher's outputs aligned to the student's label
order by label name; teachers with other label sets are refused before training, in verticals.distill).
Intermediate layers are matched against the first teacher.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel

from ..errors import ConfigError


@dataclass(frozen=True)
class LayerOptions:
    """``--layer-map`` (None/``auto``: uniform), ``--hidden-weight``, ``--attention-weight``."""

    layer_map: str | Sequence[tuple[int, int]] | None = None
    hidden_weight: float = 0.0
    attention_weight: float = 0.0

    @property
    def active(self) -> bool:
        return self.hidden_weight > 0 or self.attention_weight > 0


def teachers_of(task: Any) -> list[Any]:
    teacher = task.teacher
    return list(teacher) if isinstance(teacher, (list, tuple)) else [teacher]


def label_order(teacher_labels: Sequence[str], student_labels: Sequence[str]) -> list[int]:
    """Columns of the teacher's outputs, in the student's label order; another label set is refused."""
    if sorted(teacher_labels) != sorted(student_labels) or len(set(teacher_labels)) != len(teacher_labels):
        missing = sorted(set(student_labels) - set(teacher_labels))
        extra = sorted(set(teacher_labels) - set(student_labels))
        raise ConfigError(f"teachers must share one label set: a teacher lacks {missing[:8]} and has {extra[:8]} "
                          f"beyond the student's labels; distil from teachers of the same task and labels")
    position = {label: i for i, label in enumerate(teacher_labels)}
    return [position[label] for label in student_labels]


def resume_identity(info: dict[str, Any], unlabeled: Sequence[BaseModel]) -> dict[str, Any]:
    """What of ``model.distilled_from`` a ``--resume`` must share with the run that wrote the checkpoints: every
    option and each teacher's digest, but not where the teachers were read from (a moved teacher is the same
    teacher), and the unlabeled records' content, not only their count."""
    # where the teachers lie, and copies: teacher_digest is teacher_digests' first, epoch_factor is in the config
    left_out = {"teacher", "teachers", "transfer_records", "teacher_digest", "epoch_factor"}
    identity = {key: value for key, value in info.items() if key not in left_out}
    identity["teacher_digests"] = [teacher["digest"] for teacher in info.get("teachers", [])]
    identity["unlabeled_sha256"] = hashlib.sha256(
        json.dumps([record.model_dump(mode="json") for record in unlabeled], sort_keys=True).encode()).hexdigest()
    return identity


# distill(teacher_mask=...): what a teacher reads where the student reads its mask; the first is the default
TEACHER_MASKS = ("student", "own")


def as_teacher_reads(task: Any, teacher: Any, records: Sequence[BaseModel]) -> list[BaseModel]:
    """``records`` as ``teacher`` reads them for its soft targets (``soft_targets`` implementations call this; the
    student always keeps its own). ``task.distill_teacher_mask`` says how a transfer set's masked words reach it:
    ``"student"`` (the default), as the student reads them, so a teacher with another mask token reads the
    student's as ordinary pieces (mpnet reads MiniLM's ``[MASK]`` as ``[ mask ]``); ``"own"``, rewritten as the
    teacher's own mask token (:func:`with_teachers_mask`). The default is the measured better student: on
    NCBI-disease and PhraseBank the ``"own"`` targets were more often right on masked words, yet their students
    scored lower on validation and on test (issue 30; medical and finance READMEs)."""
    if getattr(task, "distill_teacher_mask", "student") == "own":
        return with_teachers_mask(task, teacher, records)
    return list(records)


def with_teachers_mask(task: Any, teacher: Any, records: Sequence[BaseModel]) -> list[BaseModel]:
    """``records`` with the student's mask token written as the teacher's, so that both models split every input
    into the same pieces (what self-attention relations compare)."""
    ours, theirs = task.mask_token(), teacher.mask_token()
    if ours == theirs:
        return list(records)
    out: list[BaseModel] = []
    for record in records:
        update: dict[str, Any] = {}
        text, tokens = getattr(record, "text", None), getattr(record, "tokens", None)
        if isinstance(text, str) and ours in text:
            update["text"] = text.replace(ours, theirs)
        if isinstance(tokens, list) and ours in tokens:
            update["tokens"] = [theirs if token == ours else token for token in tokens]
        out.append(record.model_copy(update=update) if update else record)
    return out


def averaged_targets(task: Any, records: Sequence[BaseModel], features: list[dict[str, Any]]) -> list[np.ndarray]:
    """Each teacher's soft targets for the student's ``features``, columns in the student's label order,
    averaged over the teachers (NaN rows, which carry no target, are NaN for every teacher)."""
    total: list[np.ndarray] | None = None
    teachers = teachers_of(task)
    for teacher in teachers:
        order = label_order(list(teacher.labels_), list(task.labels_))
        targets = [np.asarray(t, dtype=np.float64)[..., order] for t in task.soft_targets(teacher, records, features)]
        total = targets if total is None else [a + b for a, b in zip(total, targets, strict=True)]
    assert total is not None
    return [(t / len(teachers)).astype(np.float32) for t in total]


def add_layer_distillation(task: Any, records: Sequence[BaseModel], features: list[dict[str, Any]],
                           model: Any, options: LayerOptions) -> None:
    """Give every training feature what its layer losses need from the first teacher (its tokenisation of the
    record for attention relations; else its pooled states of the mapped layers, computed once) and attach the
    intermediate-layer losses (and their training-only projections) to the student ``model``."""
    from ..backbones.layer_distill import LayerDistiller, parse_layer_map

    teacher = teachers_of(task)[0]
    teacher_features = teacher.encode(with_teachers_mask(task, teacher, records), with_labels=False)
    if len(teacher_features) != len(features):
        raise ConfigError(f"{task.task_name}: intermediate-layer distillation needs one model input per record for "
                          f"teacher and student; this task splits records into windows")
    if options.attention_weight > 0:
        differ = misaligned_inputs(teacher.tokenizer_, task.tokenizer_, teacher_features, features)
        if differ:
            raise ConfigError(f"--attention-weight: teacher and student split {differ} of {len(features)} training "
                              f"inputs into different tokens; self-attention relations compare token positions, so "
                              f"both tokenizers must split every input alike. Use --hidden-weight, which compares "
                              f"pooled states")
    student_backbone = model.backbone
    teacher_backbone = teacher.model_.backbone
    pairs = parse_layer_map(options.layer_map, int(student_backbone.config.num_hidden_layers),
                            int(teacher_backbone.config.num_hidden_layers))
    if options.attention_weight > 0:  # relations are per token pair: the teacher runs beside the student
        for feature, theirs in zip(features, teacher_features, strict=True):
            feature["teacher_input_ids"] = list(theirs["input_ids"])
            feature["teacher_attention_mask"] = list(theirs["attention_mask"])
            if "token_type_ids" in theirs:
                feature["teacher_token_type_ids"] = list(theirs["token_type_ids"])
    else:  # pooled states only: computed once (and cached with the teacher's logits), no teacher forward per step
        for feature, pooled in zip(features, teacher_pooled_states(teacher, teacher_features, pairs), strict=True):
            feature["teacher_pooled"] = pooled
    model.layer_distiller = LayerDistiller(student_backbone, teacher_backbone, pairs,
                                           hidden_weight=options.hidden_weight,
                                           attention_weight=options.attention_weight)


def misaligned_inputs(teacher_tokenizer: Any, student_tokenizer: Any, teacher_features: Sequence[dict[str, Any]],
                      features: Sequence[dict[str, Any]]) -> int:
    """How many inputs the two tokenizers split into different token sequences. Equal ids are not required:
    mpnet's vocabulary numbers BERT's uncased wordpieces differently ([CLS] is 0 there, 101 here) yet splits
    every text alike, and attention relations only need the positions to line up (special tokens by place)."""
    def pieces(tokenizer: Any, special: set[int], ids: Sequence[int]) -> list[str]:
        return ["\0special" if i in special else token
                for i, token in zip(ids, tokenizer.convert_ids_to_tokens(list(ids)), strict=True)]

    theirs, ours = set(teacher_tokenizer.all_special_ids), set(student_tokenizer.all_special_ids)
    return sum(pieces(teacher_tokenizer, theirs, t["input_ids"]) != pieces(student_tokenizer, ours, s["input_ids"])
               for t, s in zip(teacher_features, features, strict=True))


def teacher_pooled_states(teacher: Any, teacher_features: list[dict[str, Any]],
                          pairs: Sequence[tuple[int, int]]) -> list[np.ndarray]:
    """The teacher's pooled states of the mapped layers for its own tokenisation of the training inputs,
    through the teacher's output cache when distill set one (keyed by teacher digest, inputs and layers)."""
    from ..backbones.layer_distill import pooled_states

    layers = [t for _, t in pairs]

    def compute() -> list[np.ndarray]:
        return pooled_states(teacher.model_.backbone, teacher_features, teacher._collator(), layers,
                             batch_size=teacher.config.training.eval_batch_size, precision=teacher.precision_)

    cache = getattr(teacher, "logits_cache", None)
    if cache is None:
        return compute()
    return cache.of_kind("pooled-" + "+".join(map(str, layers))).logits(teacher_features, compute)


def detach_layer_distillation(model: Any) -> None:
    """After training: hooks removed, teacher released, projection dropped (the bundle never holds it)."""
    distiller = getattr(model, "layer_distiller", None)
    if distiller is not None:
        distiller.close()
        model.layer_distiller = None
