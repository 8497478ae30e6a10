"""The Python API behind the CLI: ``train`` and ``load``."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TypeVar, overload

from pydantic import BaseModel

from ._version import __version__
from .backbones.engines import resolve_engine
from .backbones.loading import resolve_backbone
from .bundles.bundle import BundleInfo, check_output, digest, pinned_manifest, read_info, verify, write_bundle
from .bundles.checkpoints import (
    check_checkpoint_dir,
    last_complete_checkpoint,
    record_run,
    remove_checkpoints,
    resume_differences,
)
from .bundles.outputs import claim
from .config import (
    BASE_HIDDEN_SIZE,
    RunConfig,
    deep_merge,
    format_validation_error,
    hidden_size,
    resolve_config,
    split_defaults,
)
from .data import check_hold_out
from .data.records import data_fingerprint, source_name, split_indices
from .errors import BundleError, ConfigError, option
from .metrics.drift import build_profile, decision_fields
from .plugins.manager import get_catalog
from .predictor import Predictor
from .tasks.base import TaskType
from .tasks.distillation import resume_identity
from .tasks.intervals import evaluation_intervals
from .tasks.transformer import TransformerTask


def _library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("torch", "transformers", "accelerate", "peft", "faiss-cpu", "scikit-learn"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found


def build_task(task: str, config: str | Path | dict[str, Any] | None = None,
               overrides: Sequence[str] | dict[str, Any] | None = None,
               backbone: str | None = None) -> tuple[TaskType, Any, str | None]:
    """Resolve a task name and layer its configuration; returns (unfitted task, spec, pack name)."""
    catalog = get_catalog()
    spec, pack_name = catalog.task(task)
    plain, base = split_defaults(spec.defaults)
    task_cls = catalog.task_types.get(spec.task_type)
    if pack_name:
        _check_pack_defaults(task_cls, spec, pack_name, task, plain, base)
    extra: dict[str, Any] = {"training": {"backbone": backbone}} if backbone else {}

    def layer(pack_defaults: dict[str, Any]) -> RunConfig:
        defaults = deep_merge({"labels": list(spec.labels)}, pack_defaults)
        config_file = None
        if isinstance(config, dict):
            defaults = deep_merge(defaults, config)
        else:
            config_file = config
        run_config = resolve_config(defaults, config_file, list(overrides or []) if not isinstance(overrides, dict)
                                    else overrides, task=task)
        return resolve_config(run_config.model_dump(), None, extra) if extra else run_config

    run_config = layer(plain)
    # A base-size backbone (hidden size >= 768) gets the base variant of the defaults, under the user's values
    width = hidden_size(resolve_backbone(run_config.training.backbone))
    if width is not None and width >= BASE_HIDDEN_SIZE:
        run_config = layer(deep_merge(plain, base))
    return task_cls(run_config, task_name=task), spec, pack_name


def _check_pack_defaults(task_cls: type[TaskType], spec: Any, pack_name: str, task: str,
                         plain: dict[str, Any], base: dict[str, Any]) -> None:
    """A pack's own defaults (and their base-size variant) must validate before the user's options are layered
    on: a typo there is the pack's bug, reported with the pack's name, not as the user's configuration."""
    for variant in (plain, deep_merge(plain, base)):
        try:
            task_cls(resolve_config(deep_merge({"labels": list(spec.labels)}, variant), task=task), task_name=task)
        except ConfigError as exc:
            source = get_catalog().packs.source(pack_name)
            problem = str(exc).removeprefix("invalid configuration: ")
            raise ConfigError(f"pack '{pack_name}' ({source}) has invalid defaults for {task}: {problem}; this is "
                              f"a bug in the pack, not in your options: tell its author, or install another "
                              f"version of it") from None


def _is_main_process() -> bool:
    # Under torchrun every rank trains, but only rank 0 may write the bundle.
    return int(os.environ.get("RANK", "0")) == 0


def _wait_for_all_ranks() -> None:
    """Under DDP: block until every rank got here (no-op in a single process)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def train(
    task: str,
    train: Any,
    *,
    output: str | Path,
    validation: Any = None,
    test: Any = None,
    config: str | Path | dict[str, Any] | None = None,
    overrides: Sequence[str] | dict[str, Any] | None = None,
    backbone: str | None = None,
    overwrite: bool = False,
    resume: bool = False,
    callbacks: Sequence[Any] = (),
    check: bool = True,
    quiet: bool = False,
) -> Predictor[Any]:
    """Validate all data, fine-tune, and write a verified bundle to ``output``; return its predictor.

    ``task`` is a generic task type ('text-classification') or 'PACK.TASK'. ``train``, ``validation`` and
    ``test`` are each a file path (CSV, TSV, JSONL/JSON, CoNLL, Parquet), a pandas DataFrame, a
    ``datasets.Dataset`` or a list of dicts. ``overrides`` are ``KEY=VALUE`` strings as on the CLI (or a
    nested dict); they win over ``config``, which wins over the pack's defaults. ``callbacks`` are
    ``transformers.TrainerCallback`` objects handed to the Trainer of tasks that fine-tune with it (every
    transformer task); tasks with their own loop (finance.fraud, recommendation) refuse them, and
    ``training.report_to``, with a :class:`ConfigError` before training. Each epoch is logged to the
    ``verticals`` logger and kept in ``bundle.json`` as ``history``; while training runs those lines are
    shown on stderr, as the CLI shows them, unless ``quiet=True`` or logging is configured for that logger.
    ``check`` runs the cheap data checks of ``verticals check`` first (duplicates, conflicts, leakage, rare
    labels, truncation) and warns with :class:`~verticals.tasks.data_findings.DataCheckWarning` for each
    finding; it never refuses.
    """
    from .console import training_output

    with training_output(quiet):
        model, spec, pack_name = build_task(task, config, overrides, backbone)
        return train_task(model, spec, pack_name, task, train, output=output, validation=validation, test=test,
                          overwrite=overwrite, resume=resume, callbacks=callbacks, check=check)


def train_task(model: TaskType, spec: Any, pack_name: str | None, task: str, train: Any, *, output: str | Path,
               validation: Any = None, test: Any = None, overwrite: bool = False, resume: bool = False,
               callbacks: Sequence[Any] = (), info_extra: dict[str, Any] | None = None,
               check: bool = True) -> Predictor[Any]:
    """:func:`train` for a task :func:`build_task` built (and the caller may have set up, as
    :func:`verticals.distill.distill` does). ``info_extra`` adds top-level fields to ``bundle.json`` (``verticals
    tune`` records its study there)."""
    if (callbacks or model.config.training.report_to) and not model.supports_trainer_callbacks:
        raise ConfigError(f"{task} is not trained by transformers.Trainer, so callbacks and training.report_to "
                          f"cannot apply to it; its per-epoch history is kept in bundle.json (verticals inspect)")
    if callbacks:
        from transformers import TrainerCallback

        for callback in callbacks:
            if not isinstance(callback, TrainerCallback) and not (
                    isinstance(callback, type) and issubclass(callback, TrainerCallback)):
                raise ConfigError(f"callbacks: expected transformers.TrainerCallback objects, got "
                                  f"{type(callback).__name__} {callback!r}")
    output = Path(output)
    checkpoint_dir = Path(model.config.training.checkpoint_dir or f"{output}.checkpoints")
    with ExitStack() as held:
        if _is_main_process():
            # Fail fast, before reading data: another run writing here, an output we may not replace, or a
            # checkpoint folder that is not ours. --resume continues checkpoints; it never implies --overwrite.
            held.enter_context(claim(output, "training into"))
            held.enter_context(claim(checkpoint_dir, "keeping checkpoints in"))
            check_output(output, overwrite)
            check_checkpoint_dir(checkpoint_dir, output)
        return _train(model, spec, pack_name, task, train, output, validation, test, checkpoint_dir,
                      overwrite=overwrite, resume=resume, callbacks=callbacks, info_extra=info_extra,
                      check=check)


def _train(model: TaskType, spec: Any, pack_name: str | None, task: str, train: Any, output: Path,
           validation: Any, test: Any, checkpoint_dir: Path, *,
           overwrite: bool, resume: bool, callbacks: Sequence[Any],
           info_extra: dict[str, Any] | None = None, check: bool = True) -> Predictor[Any]:
    # Every record of every split is validated before any training starts.
    train_records = model.read(train)
    validation_records = model.read(validation) if validation is not None else None
    test_records = model.read(test) if test is not None else None
    fingerprints: dict[str, Any] = {"train": data_fingerprint(train, train_records)}
    given = {"train": train_records, "validation": validation_records, "test": test_records}  # as the user gave them
    if validation_records is None:
        keys = [model.stratify_key(r) for r in train_records]
        train_idx, val_idx = split_indices(None if any(k is None for k in keys) else keys, len(train_records),
                                           model.data_options.validation_fraction, model.config.training.seed)
        check_hold_out(None if any(k is None for k in keys) else keys, train_idx,
                       model.data_options.validation_fraction, source_name(train))
        validation_records = [train_records[i] for i in val_idx]
        train_records = [train_records[i] for i in train_idx]
        fingerprints["validation"] = {"held_out_from": "train", "records": len(validation_records),
                                      "fraction": model.data_options.validation_fraction}
    else:
        fingerprints["validation"] = data_fingerprint(validation, validation_records)
    model.prepare(train_records)
    model.check_split(validation_records, "validation", source_name(validation if validation is not None else train))
    if test_records is not None:
        model.check_split(test_records, "test", source_name(test))
        fingerprints["test"] = data_fingerprint(test, test_records)
    # after every refusal above: a run that cannot start says only why, not what would merely be worth a look
    if check and _is_main_process():
        from .tasks.data_checks import cheap_warnings
        from .tasks.data_findings import DataCheckWarning

        for line in cheap_warnings(model, given):
            warnings.warn(line, DataCheckWarning, stacklevel=4)  # the caller of train()

    run = {"data": {split: fp.get("sha256", fp) for split, fp in fingerprints.items()},
           "labels": list(getattr(model, "labels_", [])), "config": model.config.model_dump(mode="json")}
    if getattr(model, "distillation_info_", None):  # a student: weights learnt from these teachers and options
        run["distillation"] = resume_identity(model.distillation_info_, model.distill_unlabeled)
    if resume:
        differences = resume_differences(checkpoint_dir, run)
        if differences:
            resume_option = option("resume", True)
            raise ConfigError(f"{resume_option}: the checkpoints in {checkpoint_dir} were written by a run with other "
                              f"data, labels or options ({'; '.join(differences[:4])}"
                              f"{'; ...' if len(differences) > 4 else ''}); resuming would restore that run's weights "
                              f"under this run's description. Run again without {resume_option} to start fresh, or "
                              f"restore the first run's data and options")
    created = record_run(checkpoint_dir, run) if _is_main_process() else False
    model.checkpoint_dir = checkpoint_dir
    model.logging_dir = model.config.training.logging_dir or os.environ.get("TENSORBOARD_LOGGING_DIR") \
        or f"{output}.runs"
    model.resume = resume
    model.validation_held_out = validation is None  # messages about validation data then name the hold-out
    model.callbacks = list(callbacks)
    try:
        model.fit(train_records, validation_records)
    except BaseException:
        if created and last_complete_checkpoint(checkpoint_dir) is None:
            remove_checkpoints(checkpoint_dir)  # made for this run, which failed before its first checkpoint
        raise

    # The validation predictions also give the drift profile `verticals serve` compares traffic with; a task
    # with its own evaluate (recommendation) or no decision in its predictions has none.
    # The same predictions give each split's score intervals (tasks.intervals), which cards show beside them.
    profile = None
    metrics: dict[str, dict[str, float]] = {}
    intervals: dict[str, Any] = {}
    scored = type(model).evaluate is TaskType.evaluate and bool(decision_fields(model.Prediction))
    for split, records in (("validation", validation_records), ("test", test_records)):
        if records is None:
            continue
        if not scored:
            metrics[split] = model.evaluate(records).metrics
            continue
        predictions = model.predict(records)
        evaluation = model.score(records, predictions)
        metrics[split] = evaluation.metrics
        found = evaluation_intervals(model, records, predictions, evaluation)
        if found:
            intervals[split] = found
        if split == "validation":
            profile = build_profile(predictions)
    baseline = _baseline(model, train_records, validation_records, metrics["validation"])
    pack_version = get_catalog().packs.get(pack_name).version if pack_name else None
    info = BundleInfo(
        task=task, task_type=spec.task_type, pack=pack_name, pack_version=pack_version, sdk_version=__version__,
        labels=list(getattr(model, "labels_", [])), state=model.state(), config=model.config.model_dump(),
        metrics=metrics, data=fingerprints, model=model.summary(), versions=_library_versions(),
        history=list(getattr(model, "history_", [])), baseline=baseline, profile=profile, intervals=intervals,
        **(info_extra or {}),
    )
    _wait_for_all_ranks()  # no rank may still be reading the best checkpoint when rank 0 deletes it
    written = None
    if _is_main_process():
        write_bundle(output, info, model.save, overwrite=overwrite)
        written = digest(output)  # still under this run's claim on the output: the bundle just written
        if not model.config.training.keep_checkpoints:
            remove_checkpoints(checkpoint_dir)
    return Predictor(model, info, output, digest=written)


def _baseline(model: TaskType, train: Sequence[Any], validation: Sequence[Any],
              validation_metrics: dict[str, float]) -> dict[str, Any] | None:
    """Compare the validation score with the majority-class baseline; warn (once, at the end of training)
    when the model does no better. The entry goes to bundle.json, where `verticals inspect` shows it."""
    from .metrics.baseline import baseline_check, baseline_warning

    found = model.majority_baseline(train, validation)
    if found is None:
        return None
    entry = baseline_check(*found, validation_metrics, primary_metric=model.primary_metric,
                           greater_is_better=model.greater_is_better)
    message = baseline_warning(entry or {})
    if message and _is_main_process():
        warnings.warn(message, UserWarning, stacklevel=5)  # the caller of train()
    return entry


def _lenient_config(values: dict[str, Any], path: Path) -> RunConfig:
    """A bundle written by a newer Verticals may carry options we do not know: drop them with a warning
    instead of refusing the bundle (the weights and the manifest are what matter)."""
    from pydantic import ValidationError

    values = deep_merge({}, values)
    for _ in range(50):
        try:
            return RunConfig.model_validate(values)
        except ValidationError as exc:
            unknown = [e["loc"] for e in exc.errors() if e["type"] == "extra_forbidden"]
            if not unknown:
                problems = format_validation_error(exc, "bundle.json has an invalid config")
                raise BundleError(f"{path}: {problems}") from None
            for loc in unknown:
                parent = values
                for key in loc[:-1]:
                    parent = parent[key]
                parent.pop(loc[-1], None)
                warnings.warn(f"{path}: ignoring unknown config option {'.'.join(map(str, loc))} "
                              f"(bundle written by a newer Verticals?)", UserWarning, stacklevel=3)
    raise BundleError(f"{path}: bundle.json config could not be read")


PredictionT = TypeVar("PredictionT", bound=BaseModel)
Overrides = Sequence[str] | dict[str, Any] | None


@overload
def load(path: str | Path, *, engine: str = "torch", overrides: Overrides = None,
         prediction: None = None) -> Predictor[Any]: ...


@overload
def load(path: str | Path, *, engine: str = "torch", overrides: Overrides = None,
         prediction: type[PredictionT]) -> Predictor[PredictionT]: ...


def load(path: str | Path, *, engine: str = "torch", overrides: Overrides = None,
         prediction: type[BaseModel] | None = None) -> Predictor[Any]:
    """Verify a bundle against its manifest and return a predictor; refuse tampered/incomplete bundles.

    ``engine`` picks where the encoder runs at inference (:mod:`verticals.backbones.engines`): 'torch' (default:
    the exact training-time numerics), 'onnx' (ONNX Runtime, fp32, ~3x lower single-query latency on
    CPU), 'onnx-int8' (quantised: faster still, numbers change slightly) or 'auto' ('onnx' where it
    applies, else 'torch'). ``overrides`` sets ``data.*`` options for reading other data than the training
    files, e.g. ``["data.text_column=utterance"]`` (see :meth:`Predictor.with_overrides`).

    ``prediction`` (e.g. ``TextPrediction``) types the result for a type checker,
    ``Predictor[TextPrediction]``, and is checked: a bundle whose task predicts another model is refused."""
    path = Path(path)
    # one manifest for the whole load: a bundle replaced on disk meanwhile fails its checks, never mixes in
    with pinned_manifest(path) as bundle_digest:
        return _load_pinned(path, engine, overrides, prediction, bundle_digest)


def _load_pinned(path: Path, engine: str, overrides: Overrides, prediction: type[BaseModel] | None,
                 bundle_digest: str | None) -> Predictor[Any]:
    verify(path)
    info = read_info(path, verified=True)
    catalog = get_catalog()
    if info.pack and info.pack not in catalog.packs:
        broken = catalog.not_loaded(info.pack) if any(b.name == info.pack for b in catalog.broken) else ""
        raise BundleError(
            f"{path}: needs the '{info.pack}' pack" + (broken.rstrip(";") if broken else
                                                      f", which is not installed (pip install "
                                                      f"verticals-{info.pack.replace('_', '-')})"))
    if info.task_type not in catalog.task_types:
        raise BundleError(f"{path}: needs task type '{info.task_type}', which no installed plugin provides")
    run_config = _lenient_config(info.config, path)
    task_cls = catalog.task_types.get(info.task_type)
    if prediction is not None and not issubclass(task_cls.Prediction, prediction):
        raise ConfigError(f"{path}: task '{info.task}' predicts {task_cls.Prediction.__name__}, not "
                          f"{prediction.__name__}; pass prediction={task_cls.Prediction.__name__} or leave it out")
    task = task_cls.load(path, run_config, info.state | {"labels": info.labels}, task_name=info.task)
    engine = resolve_engine(engine, isinstance(task, TransformerTask))
    task.use_engine(engine)
    predictor = Predictor(task, info, path, engine=engine, digest=bundle_digest)
    return predictor.with_overrides(overrides) if overrides else predictor
