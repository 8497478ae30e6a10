"""The Python API behind the CLI: ``train`` and ``load``."""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._plugins import get_catalog
from ._version import __version__
from .bundle import BundleInfo, check_output, read_info, verify, write_bundle
from .config import RunConfig, deep_merge, resolve_config
from .data import fingerprint, split_indices
from .engines import resolve_engine
from .errors import BundleError, ConfigError
from .predictor import Predictor
from .tasks.base import TaskType


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
    defaults = deep_merge({"labels": list(spec.labels)}, spec.defaults)
    config_file = None
    if isinstance(config, dict):
        defaults = deep_merge(defaults, config)
    else:
        config_file = config
    extra: dict[str, Any] = {"training": {"backbone": backbone}} if backbone else {}
    run_config = resolve_config(defaults, config_file, list(overrides or []) if not isinstance(overrides, dict)
                                else overrides)
    if extra:
        run_config = resolve_config(run_config.model_dump(), None, extra)
    task_cls = catalog.task_types.get(spec.task_type)
    return task_cls(run_config, task_name=task), spec, pack_name


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
    train: str | Path,
    *,
    output: str | Path,
    validation: str | Path | None = None,
    test: str | Path | None = None,
    config: str | Path | dict[str, Any] | None = None,
    overrides: Sequence[str] | dict[str, Any] | None = None,
    backbone: str | None = None,
    overwrite: bool = False,
    resume: bool = False,
    callbacks: Sequence[Any] = (),
) -> Predictor:
    """Validate all data, fine-tune, and write a verified bundle to ``output``; return its predictor.

    ``task`` is a generic task type ('text-classification') or 'PACK.TASK'. ``overrides`` are
    ``KEY=VALUE`` strings as on the CLI (or a nested dict); they win over ``config``, which wins over the
    pack's defaults. ``callbacks`` are ``transformers.TrainerCallback`` objects handed to the Trainer of
    tasks that fine-tune with it (every transformer task); tasks with their own loop (finance.fraud,
    recommendation) refuse them, and ``training.report_to``, with a :class:`ConfigError` before training.
    Each epoch is logged to the ``verticals`` logger and kept in ``bundle.json`` as ``history``.
    """
    model, spec, pack_name = build_task(task, config, overrides, backbone)
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
    if _is_main_process():
        check_output(output, overwrite or resume)

    # Every record of every split is validated before any training starts.
    train_records = model.read(train)
    validation_records = model.read(validation) if validation else None
    test_records = model.read(test) if test else None
    fingerprints: dict[str, Any] = {"train": fingerprint(train, len(train_records))}
    if validation_records is None:
        keys = [model.stratify_key(r) for r in train_records]
        train_idx, val_idx = split_indices(None if any(k is None for k in keys) else keys, len(train_records),
                                           model.data_options.validation_fraction, model.config.training.seed)
        validation_records = [train_records[i] for i in val_idx]
        train_records = [train_records[i] for i in train_idx]
        fingerprints["validation"] = {"held_out_from": "train", "records": len(validation_records),
                                      "fraction": model.data_options.validation_fraction}
    else:
        fingerprints["validation"] = fingerprint(validation, len(validation_records))
    model.prepare(train_records)
    model.check_split(validation_records, "validation", validation or train)
    if test_records is not None:
        model.check_split(test_records, "test", test)
        fingerprints["test"] = fingerprint(test, len(test_records))

    model.checkpoint_dir = model.config.training.checkpoint_dir or f"{output}.checkpoints"
    model.logging_dir = model.config.training.logging_dir or os.environ.get("TENSORBOARD_LOGGING_DIR") \
        or f"{output}.runs"
    model.resume = resume
    model.callbacks = list(callbacks)
    model.fit(train_records, validation_records)

    metrics = {"validation": model.evaluate(validation_records).metrics}
    if test_records is not None:
        metrics["test"] = model.evaluate(test_records).metrics
    pack_version = get_catalog().packs.get(pack_name).version if pack_name else None
    info = BundleInfo(
        task=task, task_type=spec.task_type, pack=pack_name, pack_version=pack_version, sdk_version=__version__,
        labels=list(getattr(model, "labels_", [])), state=model.state(), config=model.config.model_dump(),
        metrics=metrics, data=fingerprints, model=model.summary(), versions=_library_versions(),
        history=list(getattr(model, "history_", [])),
    )
    _wait_for_all_ranks()  # no rank may still be reading the best checkpoint when rank 0 deletes it
    if _is_main_process():
        write_bundle(output, info, model.save, overwrite=overwrite or resume)
        if not model.config.training.keep_checkpoints:
            shutil.rmtree(model.checkpoint_dir, ignore_errors=True)
    return Predictor(model, info, output)


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
                raise BundleError(f"{path}: bundle.json has an invalid config ({exc.errors()[0]['msg']})") from None
            for loc in unknown:
                parent = values
                for key in loc[:-1]:
                    parent = parent[key]
                parent.pop(loc[-1], None)
                warnings.warn(f"{path}: ignoring unknown config option {'.'.join(map(str, loc))} "
                              f"(bundle written by a newer Verticals?)", UserWarning, stacklevel=3)
    raise BundleError(f"{path}: bundle.json config could not be read")


def load(path: str | Path, *, engine: str = "torch") -> Predictor:
    """Verify a bundle against its manifest and return a predictor; refuse tampered/incomplete bundles.

    ``engine`` picks where the encoder runs at inference (:mod:`verticals.engines`): 'torch' (default:
    the exact training-time numerics), 'onnx' (ONNX Runtime, fp32, ~3x lower single-query latency on
    CPU), 'onnx-int8' (quantised: faster still, numbers change slightly) or 'auto' ('onnx' where it
    applies, else 'torch')."""
    path = Path(path)
    verify(path)
    info = read_info(path, verified=True)
    catalog = get_catalog()
    if info.pack and info.pack not in catalog.packs:
        raise BundleError(
            f"{path}: needs the '{info.pack}' pack, which is not installed "
            f"(pip install verticals-{info.pack.replace('_', '-')})"
        )
    if info.task_type not in catalog.task_types:
        raise BundleError(f"{path}: needs task type '{info.task_type}', which no installed plugin provides")
    run_config = _lenient_config(info.config, path)
    task_cls = catalog.task_types.get(info.task_type)
    task = task_cls.load(path, run_config, info.state | {"labels": info.labels}, task_name=info.task)
    engine = resolve_engine(engine, task)
    task.use_engine(engine)
    return Predictor(task, info, path, engine=engine)
