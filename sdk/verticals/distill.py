"""Train big, serve small: a student learns a teacher bundle's predictions (knowledge distillation).

The student is trained exactly as ``verticals.train`` trains the teacher's task (same pack steps, such as
fallback calibration, redone for the student), with one change to the loss: each training record's target
is the teacher's probability distribution, softened by a temperature, mixed with the gold label where there
is one. Unlabelled in-domain texts add examples whose only target is the teacher's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .config import deep_merge, user_options
from .errors import ConfigError, option
from .predictor import Predictor
from .tasks.text_classification import TextClassificationTask
from .tasks.token_classification import TokenClassificationTask
from .tasks.transformer import TransformerTask


def distill(
    teacher: str | Path | Sequence[str | Path],
    train: Any,
    *,
    output: str | Path,
    unlabeled: Any = None,
    validation: Any = None,
    test: Any = None,
    config: str | Path | dict[str, Any] | None = None,
    overrides: Sequence[str] | dict[str, Any] | None = None,
    backbone: str | None = None,
    temperature: float = 2.0,
    alpha: float = 0.5,
    student_temperature: float | None = None,
    epochs: float | None = None,
    learning_rate: float | None = None,
    layer_map: str | Sequence[tuple[int, int]] | None = None,
    hidden_weight: float = 0.0,
    attention_weight: float = 0.0,
    overwrite: bool = False,
    resume: bool = False,
    teacher_cache: str | Path | None = None,
    transfer_multiplier: int | None = None,
    teacher_mask: str = "student",
) -> Predictor[Any]:
    """Distil the bundle at ``teacher`` into a student bundle at ``output`` and return the student.

    The student is the teacher's task with the default backbone (the embedded MiniLM) unless ``backbone``
    or ``training.backbone`` says otherwise; ``config``/``overrides`` work as in :func:`verticals.train`.
    ``unlabeled`` (a file, a list of texts...) adds records without labels. The loss is
    ``alpha * T * Ts * KL(teacher_T || student_Ts) + (1 - alpha) * cross-entropy(gold)`` with ``T =
    temperature`` and ``Ts = student_temperature`` (default: T), plus the intermediate-layer terms below.

    * ``teacher`` may be a list of bundles (an ensemble): their probabilities are averaged, each aligned to the
      first teacher's label order by label name; teachers with different label sets are refused.
    * Teacher outputs (raw logits) are computed once per input set and kept in ``<output>.teacher-outputs``,
      keyed by each teacher's bundle digest and the inputs: a rerun or ``resume`` reuses them, another teacher
      recomputes them. ``teacher_cache`` names another folder, e.g. one shared by several students.
    * ``hidden_weight`` > 0: pooled hidden states of student layers learn the first teacher's through a
      training-only projection (PKD); ``attention_weight`` > 0: MiniLMv2 self-attention relations (both models
      must share a tokenizer). ``layer_map`` pairs ``"student:teacher,..."`` layers (1-based) or ``"auto"``
      (default: uniform). Both weights default to 0 (logits only): no layer loss beat logits only on
      validation where measured (docs/backbones.md).
    * ``epochs`` and ``learning_rate`` set the student's ``training.epochs``/``training.learning_rate``
      (default: the task's training defaults, the epochs times the task's measured
      ``default_student_epoch_factor``: 2 for token classification, 1 for text classification); they win over
      ``overrides``. Selection of the best epoch is on validation, as in :func:`verticals.train`; test data is
      only scored.

    bundle.json records the teachers' digests under ``model.distilled_from``. ``resume`` continues an
    interrupted run from its last complete epoch checkpoint, as in :func:`verticals.train`, and refuses checkpoints
    written with other teachers (digests), options or unlabeled records.
    ``transfer_multiplier`` (``--transfer-set N``) adds N generated inputs per training record (masking,
    embedding-neighbour replacement, n-gram sampling: :mod:`verticals.data.augment`) whose only target is the
    teacher's; they are generated from the training split's texts, never its labels. ``None`` (the default)
    takes the task's measured default: 2 for token classification (NER), 0 for text classification.
    ``teacher_mask`` (``--teacher-mask``): where a transfer set masks a word with the student's mask token, the
    teacher reads that token as the student wrote it (``"student"``, the measured default) or its own
    (``"own"``); self-attention relations always give the teacher its own (:mod:`verticals.tasks.distillation`).
    """
    from . import api
    from .tasks.distillation import TEACHER_MASKS, LayerOptions, label_order
    from .tasks.teacher_outputs import TeacherLogitsCache

    _check_options(temperature, student_temperature, alpha, epochs, learning_rate, hidden_weight, attention_weight,
                   layer_map)
    if transfer_multiplier is not None and (isinstance(transfer_multiplier, bool)
                                            or not isinstance(transfer_multiplier, int)
                                            or not 0 <= transfer_multiplier <= 100):
        raise ConfigError(f"{option('transfer_multiplier', cli='--transfer-set')}: expected a whole number of "
                          f"generated inputs per training record from 0 to 100, found {transfer_multiplier!r}")
    if teacher_mask not in TEACHER_MASKS:
        raise ConfigError(f"{option('teacher_mask', cli='--teacher-mask')}: expected one of "
                          f"{', '.join(TEACHER_MASKS)}, found {teacher_mask!r}")
    paths = [teacher] if isinstance(teacher, (str, Path)) else list(teacher)
    if not paths:
        raise ConfigError("distill: give at least one teacher bundle")
    for path in paths:
        if Path(output).resolve() == Path(path).resolve():
            raise ConfigError(f"{option('output')} {output} is the teacher bundle {path}; write the student to another "
                              "directory")
    predictors = [api.load(path) for path in paths]
    tasks: list[Any] = [p.task for p in predictors]  # text/token classification tasks, checked below
    for path, predictor in zip(paths, predictors, strict=True):
        if not isinstance(predictor.task, (TextClassificationTask, TokenClassificationTask)):
            raise ConfigError(f"{path}: task '{predictor.info.task}' is neither text nor token classification; "
                              f"distillation supports those and the packs built on them")
        if predictor.info.task != predictors[0].info.task:
            raise ConfigError(f"{path}: task '{predictor.info.task}' differs from the first teacher's "
                              f"'{predictors[0].info.task}'; an ensemble's teachers must solve one task")
    first_labels = list(tasks[0].labels_)
    for path, task_ in zip(paths[1:], tasks[1:]):
        try:
            label_order(list(task_.labels_), first_labels)
        except ConfigError:
            raise ConfigError(f"{path}: its labels {sorted(task_.labels_)[:8]} are not the first teacher's "
                              f"{sorted(first_labels)[:8]}; an ensemble's teachers must share one label set") from None
    task = predictors[0].info.task
    labels = {"labels": first_labels}  # the student answers with the (first) teacher's labels, in order
    merged_config: str | Path | dict[str, Any] = labels
    if isinstance(config, dict):
        merged_config = deep_merge(labels, config)
    elif config is not None:
        from .config import read_config_file

        merged_config = deep_merge(labels, read_config_file(config))
    own = {key: value for key, value in (("epochs", epochs), ("learning_rate", learning_rate)) if value is not None}
    student, spec, pack_name = api.build_task(task, merged_config, _schedule(overrides, own), backbone)
    if not isinstance(student, TransformerTask):  # a pack may register its own subclass for the task name
        raise ConfigError(f"task '{task}' does not build a transformer task here; it cannot learn from a teacher")
    epoch_factor = 1.0  # what multiplied the task's epochs: recorded, and said by the CLI
    if student.default_student_epoch_factor != 1.0 and not _epochs_given(epochs, merged_config, overrides):
        # The task's measured factor times the pack's budget; min_steps as resolved, since epochs set alone
        # would turn the small-data stretch off (config.resolve_config)
        training = student.config.training
        epoch_factor = student.default_student_epoch_factor
        own |= {"epochs": training.epochs * epoch_factor, "min_steps": training.min_steps}
        student, spec, pack_name = api.build_task(task, merged_config, _schedule(overrides, own), backbone)
    digests = [p.digest for p in predictors]  # of the teachers loaded
    cache_dir = Path(teacher_cache) if teacher_cache is not None else Path(f"{output}.teacher-outputs")
    for task_, teacher_digest in zip(tasks, digests, strict=True):
        task_.logits_cache = TeacherLogitsCache(cache_dir, teacher_digest)
    student.teacher = tasks[0] if len(tasks) == 1 else tasks
    student.distill_temperature, student.distill_alpha = float(temperature), float(alpha)
    student.distill_student_temperature = float(student_temperature) if student_temperature else None
    student.distill_layers = LayerOptions(layer_map, float(hidden_weight), float(attention_weight))
    student.distill_unlabeled = student.read(unlabeled, require_labels=False) if unlabeled is not None else []
    if transfer_multiplier is None:
        transfer_multiplier = student.default_transfer_multiplier
    student.distill_transfer_multiplier = transfer_multiplier
    student.distill_teacher_mask = teacher_mask
    student.distillation_info_ = {
        "teacher": str(paths[0]), "teacher_digest": digests[0], "teacher_task": task,
        "teacher_backbone": predictors[0].info.model.get("backbone", {}).get("source"),
        "teachers": [{"path": str(path), "digest": d, "backbone": p.info.model.get("backbone", {}).get("source")}
                     for path, d, p in zip(paths, digests, predictors, strict=True)],
        "temperature": float(temperature), "alpha": float(alpha),
        "student_temperature": float(student_temperature or temperature),
        "layer_map": layer_map if isinstance(layer_map, str) or layer_map is None else [list(p) for p in layer_map],
        "hidden_weight": float(hidden_weight), "attention_weight": float(attention_weight),
        "unlabeled_records": len(student.distill_unlabeled), "transfer_multiplier": transfer_multiplier,
        "teacher_mask": teacher_mask, "epoch_factor": epoch_factor,
    }
    return api.train_task(student, spec, pack_name, task, train, output=output, validation=validation, test=test,
                          overwrite=overwrite, resume=resume)


def _check_options(temperature: float, student_temperature: float | None, alpha: float, epochs: float | None,
                   learning_rate: float | None, hidden_weight: float, attention_weight: float,
                   layer_map: Any) -> None:
    def positive(name: str, value: float) -> None:
        if not value > 0 or value != value or value == float("inf"):
            raise ConfigError(f"{name}: expected a positive number, found {value}")

    positive("--temperature", temperature)
    for name, value in (("--student-temperature", student_temperature), ("--epochs", epochs),
                        ("--learning-rate", learning_rate)):
        if value is not None:
            positive(name, value)
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"--alpha: expected a number from 0 (gold labels only) to 1 (teacher only), found {alpha}")
    for name, value in (("--hidden-weight", hidden_weight), ("--attention-weight", attention_weight)):
        if not 0.0 <= value < float("inf"):
            raise ConfigError(f"{name}: expected a weight >= 0 (0 = off), found {value}")
    if layer_map is not None and not (hidden_weight > 0 or attention_weight > 0):
        raise ConfigError("--layer-map: no intermediate-layer loss is on; give --hidden-weight and/or "
                          "--attention-weight > 0 as well")


def _epochs_given(epochs: float | None, config: str | Path | dict[str, Any],
                  overrides: Sequence[str] | dict[str, Any] | None) -> bool:
    """Whether the user chose the student's epochs: ``--epochs``, or ``training.epochs`` in a config or ``--set``
    (taken literally, as everywhere else)."""
    user = user_options(config, overrides)
    return epochs is not None or "epochs" in (user.get("training") or {})


def _schedule(overrides: Sequence[str] | dict[str, Any] | None,
              own: dict[str, Any]) -> Sequence[str] | dict[str, Any] | None:
    """The student's own ``training`` options (``own``), after (so over) the user's overrides."""
    if not own:
        return overrides
    if isinstance(overrides, dict):  # nested, as resolve_config merges it
        return deep_merge(overrides, {"training": own})
    return [*(overrides or []), *(f"training.{key}={json.dumps(value)}" for key, value in own.items())]
