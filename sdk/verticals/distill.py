"""Train big, serve small: a student learns a teacher bundle's predictions (knowledge distillation).

The student is trained exactly as ``verticals.train`` trains the teacher's task (same pack steps, such as
fallback calibration, redone for the student), with one change to the loss: each training record's target
is the teacher's probability distribution, softened by a temperature, mixed with the gold label where there
is one. Unlabelled in-domain texts add examples whose only target is the teacher's.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .bundles.bundle import digest
from .config import deep_merge
from .errors import ConfigError
from .predictor import Predictor
from .tasks.text_classification import TextClassificationTask
from .tasks.token_classification import TokenClassificationTask
from .tasks.transformer import TransformerTask


def distill(
    teacher: str | Path,
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
    overwrite: bool = False,
    resume: bool = False,
    transfer_multiplier: int = 0,
) -> Predictor[Any]:
    """Distil the bundle at ``teacher`` into a student bundle at ``output`` and return the student.

    The student is the teacher's task with the default backbone (the embedded MiniLM) unless ``backbone``
    or ``training.backbone`` says otherwise; ``config``/``overrides`` work as in :func:`verticals.train`.
    ``unlabeled`` (a file, a list of texts...) adds records without labels. The loss is
    ``alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * cross-entropy(gold)`` with ``T =
    temperature``. bundle.json records the teacher's digest under ``model.distilled_from``. ``resume``
    continues an interrupted run from its last complete epoch checkpoint, as in :func:`verticals.train`.
    ``transfer_multiplier`` (``--transfer-set N``) adds N generated inputs per training record (masking,
    embedding-neighbour replacement, n-gram sampling: :mod:`verticals.data.augment`) whose only target is the
    teacher's; they are generated from the training split's texts, never its labels.
    """
    from . import api

    if not temperature > 0 or temperature != temperature or temperature == float("inf"):
        raise ConfigError(f"--temperature: expected a positive number, found {temperature}")
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"--alpha: expected a number from 0 (gold labels only) to 1 (teacher only), found {alpha}")
    if isinstance(transfer_multiplier, bool) or not isinstance(transfer_multiplier, int) \
            or not 0 <= transfer_multiplier <= 100:
        raise ConfigError(f"--transfer-set: expected a whole number of generated inputs per training record from 0 "
                          f"to 100, found {transfer_multiplier!r}")
    if Path(output).resolve() == Path(teacher).resolve():
        raise ConfigError(f"--output {output} is the teacher bundle; write the student to another directory")
    teacher_predictor = api.load(teacher)
    teacher_task = teacher_predictor.task
    if not isinstance(teacher_task, (TextClassificationTask, TokenClassificationTask)):
        raise ConfigError(f"{teacher}: task '{teacher_predictor.info.task}' is neither text nor token "
                          f"classification; distillation supports those and the packs built on them")
    task = teacher_predictor.info.task
    labels = {"labels": list(teacher_task.labels_)}  # the student answers with the teacher's labels, in order
    merged_config: str | Path | dict[str, Any] = labels
    if isinstance(config, dict):
        merged_config = deep_merge(labels, config)
    elif config is not None:
        from .config import read_config_file

        merged_config = deep_merge(labels, read_config_file(config))
    student, spec, pack_name = api.build_task(task, merged_config, overrides, backbone)
    if not isinstance(student, TransformerTask):  # a pack may register its own subclass for the task name
        raise ConfigError(f"task '{task}' does not build a transformer task here; it cannot learn from a teacher")
    student.teacher = teacher_task
    student.distill_temperature, student.distill_alpha = float(temperature), float(alpha)
    student.distill_unlabeled = student.read(unlabeled, require_labels=False) if unlabeled is not None else []
    student.distill_transfer_multiplier = transfer_multiplier
    student.distillation_info_ = {
        "teacher": str(teacher), "teacher_digest": digest(teacher), "teacher_task": task,
        "teacher_backbone": teacher_predictor.info.model.get("backbone", {}).get("source"),
        "temperature": float(temperature), "alpha": float(alpha), "unlabeled_records": len(student.distill_unlabeled),
        "transfer_multiplier": transfer_multiplier,
    }
    return api.train_task(student, spec, pack_name, task, train, output=output, validation=validation, test=test,
                          overwrite=overwrite, resume=resume)
