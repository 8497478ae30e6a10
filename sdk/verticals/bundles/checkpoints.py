"""Checkpoint folders: made and adopted only as Verticals' own (a marker of kind 'checkpoints' holding only
``checkpoint-N`` folders), the run that wrote them recorded so that a resume with other data or options is
refused, and removed after training only when provably ours."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

from ..errors import ConfigError, option
from .outputs import CHECKPOINT, MARKER, TRAINER_STATE, _contains_cwd, _read_marker, ownership_problem, write_marker


def check_checkpoint_dir(directory: str | Path, output: str | Path) -> None:
    """Before training: the checkpoint folder must be new, empty, or one Verticals made for checkpoints."""
    directory, output = Path(directory), Path(output)
    a, b = directory.resolve(), output.resolve()
    if a == b or a.is_relative_to(b) or b.is_relative_to(a):
        raise ConfigError(f"training.checkpoint_dir={directory} overlaps {option('output')} {output}; use a folder "
                          f"of its own")
    if not (directory.exists() or directory.is_symlink()):
        return
    if directory.is_dir() and not directory.is_symlink() and not _contains_cwd(directory) \
            and not any(directory.iterdir()):
        return
    problem = ownership_problem(directory, "checkpoints")
    if problem:
        raise ConfigError(f"training.checkpoint_dir={directory} exists and {problem}; Verticals deletes "
                          f"checkpoints it wrote, so it needs a new or empty folder of its own (or the one an "
                          f"earlier run made)")


def prepare_checkpoint_dir(directory: str | Path, resume: bool) -> Path | None:
    """Create or reuse our checkpoint folder; drop old (fresh run) or incomplete (resume) checkpoints.

    Returns the last complete checkpoint when resuming, else None."""
    directory = Path(directory)
    if not directory.exists():
        directory.mkdir(parents=True)
        write_marker(directory, "checkpoints", created=True)
    elif _read_marker(directory) is None and not any(directory.iterdir()):
        write_marker(directory, "checkpoints", created=False)
    problem = ownership_problem(directory, "checkpoints")
    if problem:
        raise ConfigError(f"training.checkpoint_dir={directory}: {problem}; refusing to use it")
    for entry in sorted(directory.iterdir()):
        if CHECKPOINT.match(entry.name) and (not resume or not checkpoint_complete(entry)):
            shutil.rmtree(entry)
    return last_complete_checkpoint(directory) if resume else None


# What a resumed run must share with the run that wrote the checkpoints (data, labels, options): recorded in
# the checkpoint folder's marker, so `--resume` after a change is refused instead of silently restoring old
# weights under a bundle.json that claims the new data. Options that only say where things go may differ.
RESUME_FREE_OPTIONS = {"training.checkpoint_dir", "training.keep_checkpoints", "training.report_to",
                       "training.logging_dir", "training.num_threads", "training.epochs",
                       "training.early_stopping_patience"}


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def resume_differences(directory: str | Path, run: dict[str, Any]) -> list[str]:
    """What differs between ``run`` and the run recorded with the checkpoints in ``directory`` ([] if nothing
    is recorded: a folder without checkpoints, or one written before this check existed)."""
    marker = _read_marker(Path(directory)) if Path(directory).is_dir() else None
    if not marker or not isinstance(marker.get("run"), dict) or last_complete_checkpoint(Path(directory)) is None:
        return []
    before, now = _flatten(marker["run"]), _flatten(json.loads(json.dumps(run, default=str)))
    return [f"{key}: {before.get(key, '(unset)')!r} then, {now.get(key, '(unset)')!r} now"
            for key in sorted(set(before) | set(now))
            if before.get(key) != now.get(key) and key.removeprefix("config.") not in RESUME_FREE_OPTIONS]


def record_run(directory: str | Path, run: dict[str, Any]) -> bool:
    """Create (or adopt) the checkpoint folder and record ``run`` in its marker; True when it was created now."""
    directory = Path(directory)
    marker = _read_marker(directory) if directory.is_dir() else None
    if not directory.exists():
        directory.mkdir(parents=True)
        write_marker(directory, "checkpoints", created=True, run=json.loads(json.dumps(run, default=str)))
        return True
    if marker is None and any(directory.iterdir()):
        return False  # not ours: prepare_checkpoint_dir refuses it with the reason
    created = bool(marker.get("created")) if marker else False
    write_marker(directory, "checkpoints", created=created, run=json.loads(json.dumps(run, default=str)))
    return False


def checkpoint_complete(checkpoint: Path) -> bool:
    try:
        json.loads((checkpoint / TRAINER_STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return True


def last_complete_checkpoint(directory: Path) -> Path | None:
    """The highest-step complete checkpoint (a run killed while saving leaves an incomplete one)."""
    if not directory.is_dir():
        return None
    found = [p for p in directory.iterdir() if CHECKPOINT.match(p.name) and p.is_dir() and checkpoint_complete(p)]
    return max(found, key=lambda p: int(p.name.split("-")[1]), default=None)


def remove_checkpoints(directory: str | Path) -> None:
    """After training: delete our checkpoints and marker, and the folder itself if we created it."""
    directory = Path(directory)
    marker = _read_marker(directory) if directory.is_dir() else None
    if marker is None or ownership_problem(directory, "checkpoints"):
        if directory.exists():
            warnings.warn(f"left {directory} in place: Verticals cannot prove it holds only its checkpoints",
                          UserWarning, stacklevel=2)
        return
    try:
        for entry in directory.iterdir():
            if CHECKPOINT.match(entry.name) and entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
        (directory / MARKER).unlink()
        if marker.get("created"):
            directory.rmdir()  # fails, leaving it, if anything else appeared meanwhile
    except OSError as exc:
        warnings.warn(f"could not remove the checkpoints in {directory}: {exc}", UserWarning, stacklevel=2)


def remove_incomplete_checkpoints(directory: str | Path) -> None:
    """After a write failed (a full disk): delete the checkpoint being written, which can never be resumed,
    and the whole checkpoint folder when no complete checkpoint is left in it."""
    directory = Path(directory)
    if not directory.is_dir() or _read_marker(directory) is None:
        return  # not provably ours: leave it
    if last_complete_checkpoint(directory) is None:
        remove_checkpoints(directory)
        return
    for entry in directory.iterdir():
        ours = CHECKPOINT.match(entry.name) and entry.is_dir() and not entry.is_symlink()
        if ours and not checkpoint_complete(entry):
            shutil.rmtree(entry, ignore_errors=True)
