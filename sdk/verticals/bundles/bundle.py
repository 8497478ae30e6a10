"""Bundles: a directory with the trained model, ``bundle.json`` and a sha256 ``manifest.json``.

Writes are atomic (a temporary sibling directory renamed into place), so a crash never leaves a
half-written bundle. Reading verifies every file against the manifest first.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..errors import BundleError
from . import outputs as _outputs
from .manifest import (  # noqa: F401 - re-exported: they lived here first, and callers and packs import them from here
    ALGORITHM,
    MANIFEST_FILE,
    _walk,
    digest,
    pinned_manifest,
    read_manifest,
    read_verified,
    verify,
    write_manifest,
)
from .outputs import (  # noqa: F401 - file_sha256 and write_file_marker re-exported: packs imported them from here
    check_file_output,
    check_file_replaceable,
    check_replaceable,
    claim,
    file_sha256,
    replace_file,
    write_failure,
    write_file_marker,
    write_marker,
)

BUNDLE_FILE = "bundle.json"
FORMAT_VERSION = 1


class BundleInfo(BaseModel):
    """The contents of ``bundle.json``. Unknown fields are kept, so newer bundles still load."""

    model_config = ConfigDict(extra="allow")

    format_version: int = FORMAT_VERSION
    task: str = Field(description="Full task name, e.g. 'finance.sentiment' or 'text-classification'.")
    task_type: str
    pack: str | None = None
    pack_version: str | None = None
    sdk_version: str
    labels: list[str] = Field(default_factory=list)
    state: dict[str, Any] = Field(default_factory=dict, description="Learned, JSON-serialisable task state.")
    config: dict[str, Any] = Field(description="The full layered RunConfig used for training.")
    metrics: dict[str, dict[str, float]] = Field(default_factory=dict, description="Split -> metrics.")
    data: dict[str, Any] = Field(default_factory=dict, description="Split -> data fingerprint.")
    model: dict[str, Any] = Field(default_factory=dict, description="Precision, parameter count, backbone.")
    versions: dict[str, str] = Field(default_factory=dict, description="Library versions used for training.")
    history: list[dict[str, Any]] = Field(default_factory=list, description=(
        "Per-epoch training history: epoch, train_loss, validation_loss, metrics (on metrics_on), "
        "learning_rate, elapsed_s, best; empty for bundles written before it was kept."))
    baseline: dict[str, Any] | None = Field(None, description=(
        "The majority-class baseline on the validation split: rule, metric (the primary one), baseline, "
        "validation (the model's score) and at_or_below (true: the model is no better than a constant)."))
    profile: dict[str, Any] | None = Field(None, description=(
        "What the model decided on its validation set (label counts, score histogram), the reference "
        "`verticals serve` compares recent traffic with (verticals.metrics.drift); None for bundles written "
        "before it was kept, or tasks whose predictions carry no decision."))
    intervals: dict[str, Any] = Field(default_factory=dict, description=(
        "Split -> 95% intervals of its metrics (verticals.metrics.significance.label_intervals): n, "
        "confidence, resamples, seed, metrics (name -> low, high, method) and per_label_f1; empty for tasks "
        "without label or tag predictions and for bundles written before they were kept."))
    created_at: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))



# Files that hold text or values taken from the training data or from files named in the config
# (task.faq, data.items): whoever receives the bundle receives these too. `inspect` flags them.
DATA_DERIVED = {
    BUNDLE_FILE: "labels, the full config (data file paths included) and data fingerprints",
    "fallback_index.json": "every training utterance and FAQ entry (task.faq: questions and answers)",
    "items.json": "the item catalogue (data.items): every item's text",
    "histories.json": "every training user's interaction history",
    "neighbours.safetensors": "item-item neighbours computed from the training interactions",
    "preprocessing.json": "category values and statistics of the training columns",
}


def data_derived(name: str, names: set[str] | frozenset[str] = frozenset()) -> str | None:
    """What data a bundle file carries, or None for weights and tokenizer files. ``names``: the bundle's
    files (a ``NAME.json`` beside a ``NAME.faiss`` is a retrieval index, whatever a pack called it)."""
    if name in DATA_DERIVED:
        return DATA_DERIVED[name]
    if name.endswith(".faiss"):
        return "retrieval index: one vector per indexed text (training data, FAQ or catalogue)"
    if name.endswith(".json") and f"{name[:-5]}.faiss" in names:
        return "retrieval index: the text of every indexed entry (training data, FAQ or catalogue)"
    return None


def bundle_contents(directory: str | Path, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Every listed file of a verified bundle: ``path``, ``bytes`` and ``data`` (what data it carries, or None)."""
    names = set(manifest["files"])
    return [{"path": name, "bytes": (Path(directory) / name).stat().st_size, "data": data_derived(name, names)}
            for name in sorted(names)]


def read_info(directory: str | Path, *, verified: bool = False) -> BundleInfo:
    directory = Path(directory)
    if not verified:
        verify(directory)
    try:  # the verified bytes (and, inside pinned_manifest, those of the pinned bundle)
        info = BundleInfo.model_validate_json(read_verified(directory, BUNDLE_FILE))
    except ValueError as exc:
        raise BundleError(f"{directory / BUNDLE_FILE}: not a valid bundle description ({exc})") from None
    if info.format_version > FORMAT_VERSION:
        warnings.warn(
            f"{directory} was written by a newer Verticals (bundle format {info.format_version} > "
            f"{FORMAT_VERSION}); loading it anyway, unknown fields are ignored",
            UserWarning,
            stacklevel=2,
        )
    return info


def _ownership_problem(directory: Path, files: list[str]) -> str | None:
    """Why ``directory`` is not provably a bundle Verticals wrote: its bundle.json must parse and its manifest
    must list every file it holds."""
    try:
        BundleInfo.model_validate_json((directory / BUNDLE_FILE).read_text(encoding="utf-8"))
        listed = json.loads((directory / MANIFEST_FILE).read_text(encoding="utf-8"))["files"]
        listed = set(listed) if isinstance(listed, dict) else None
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        listed = None
    if listed is None:
        return f"it has no readable {BUNDLE_FILE} and {MANIFEST_FILE}, so it is not a bundle Verticals wrote"
    unlisted = sorted(set(files) - listed - {MANIFEST_FILE})
    if unlisted:
        return f"it holds '{unlisted[0]}', which its {MANIFEST_FILE} does not list"
    return None


def _is_intact(directory: Path) -> bool:
    try:
        verify(directory)
    except (BundleError, OSError, ValueError):
        return False
    return True


_outputs.BUNDLE_CHECKS.update(problem=_ownership_problem, intact=_is_intact)


def check_output(output: str | Path, overwrite: bool, kind: str = "bundle") -> Path:
    """Fail before training, not after, when the output cannot be written: it exists without
    ``overwrite``, or it is not provably a ``kind`` Verticals wrote (see :mod:`verticals.bundles.outputs`)."""
    output = Path(output)
    check_replaceable(output, kind, overwrite)
    output.parent.mkdir(parents=True, exist_ok=True)
    return output


@contextmanager
def atomic_directory(output: str | Path, overwrite: bool = False, kind: str | None = None) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success it replaces ``output`` in one rename.

    ``kind`` names what is written ('bundle', 'report', 'export', 'pack'); other than a bundle (whose
    manifest is the proof), the directory gets a marker listing its files. ``overwrite`` replaces only an
    existing output of the same kind that Verticals provably wrote; without ``kind`` nothing is replaced.
    The output is locked while it is written, and leftovers of a killed writer are cleaned first."""
    output = Path(output)
    with claim(output):
        check_replaceable(output, kind or "output", overwrite and kind is not None)  # fail before the work
        output.parent.mkdir(parents=True, exist_ok=True)
        tmp = output.parent / f".{output.name}.tmp-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            try:
                yield tmp
            except Exception as exc:  # a full disk: one line naming the output (the finally removes tmp)
                failure = write_failure(exc, output)
                if failure is None:
                    raise
                raise failure from None
            if kind not in (None, "bundle"):
                write_marker(tmp, kind)
            if output.exists() or output.is_symlink():
                check_replaceable(output, kind or "output", overwrite and kind is not None)  # still ours?
                if output.is_dir() and not output.is_symlink() and not any(output.iterdir()):
                    output.rmdir()  # empty: nothing to keep
                    os.replace(tmp, output)
                else:
                    old = output.parent / f".{output.name}.old-{uuid.uuid4().hex[:8]}"
                    os.replace(output, old)
                    os.replace(tmp, output)
                    shutil.rmtree(old, ignore_errors=True)  # what we just proved ours, under its own name
            else:
                os.replace(tmp, output)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


def _umask() -> int:
    try:  # Linux reports it without changing it (os.umask can only be read by setting it)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def apply_umask(directory: Path) -> None:
    """Give every file below ``directory`` the mode the user's umask gives a new file (0644 under 022).
    safetensors writes its files 0600 (a private temporary file renamed into place), which would keep a
    delivered model from every other user of the client's server."""
    mask = _umask()
    files, dirs = _walk(directory)
    for name in files:
        os.chmod(directory / name, 0o666 & ~mask)
    for name in dirs:
        os.chmod(directory / name, 0o777 & ~mask)


def write_bundle(output: str | Path, info: BundleInfo, save: Callable[[Path], None], *,
                 overwrite: bool = False) -> Path:
    """Save model files with ``save(tmpdir)``, add bundle.json and the manifest, then rename into place."""
    with atomic_directory(output, overwrite, kind="bundle") as tmp:
        save(tmp)
        (tmp / BUNDLE_FILE).write_text(info.model_dump_json(indent=2) + "\n", encoding="utf-8")
        apply_umask(tmp)
        write_manifest(tmp)
    return Path(output)


@contextmanager
def atomic_file(path: str | Path, encoding: str = "utf-8", *, kind: str | None = None,
                overwrite: bool = False) -> Iterator[Any]:
    """Write a text file under a temporary name and rename it into place only when complete.

    With ``kind`` ('card', 'predictions', ...) the file is a user-facing output: an existing file is replaced
    only with ``overwrite`` and only if Verticals wrote it as that kind (a marker beside it records its sha256)."""
    path = Path(path)
    check_file_output(path)
    if kind is not None:
        check_file_replaceable(path, kind, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    with claim(path):
        if kind is not None:
            check_file_replaceable(path, kind, overwrite)  # still replaceable now that we hold the lock
        tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            with open(tmp, "w", encoding=encoding) as handle:
                yield handle
            replace_file(tmp, path, kind)
        except Exception as exc:  # a full disk (often only when the file is closed): one line naming the path
            failure = write_failure(exc, path)
            if failure is None:
                raise
            raise failure from None
        finally:
            if tmp.exists():
                tmp.unlink()
