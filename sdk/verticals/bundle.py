"""Bundles: a directory with the trained model, ``bundle.json`` and a sha256 ``manifest.json``.

Writes are atomic (a temporary sibling directory renamed into place), so a crash never leaves a
half-written bundle. Reading verifies every file against the manifest first.
"""

from __future__ import annotations

import hashlib
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

from ._outputs import check_file_output, check_replaceable, claim, write_marker
from .errors import BundleError

BUNDLE_FILE = "bundle.json"
MANIFEST_FILE = "manifest.json"
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
    created_at: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _files(directory: Path) -> list[str]:
    return sorted(
        p.relative_to(directory).as_posix()
        for p in directory.rglob("*")
        if p.is_file() and p.relative_to(directory).as_posix() != MANIFEST_FILE
    )


def write_manifest(directory: Path) -> dict[str, Any]:
    manifest = {"algorithm": "sha256", "files": {name: _sha256(directory / name) for name in _files(directory)}}
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def verify(directory: str | Path) -> dict[str, Any]:
    """Check every file against the manifest; raise :class:`BundleError` naming the first problem."""
    directory = Path(directory)
    if not directory.is_dir():
        raise BundleError(f"{directory}: not a bundle directory (does not exist)")
    manifest_path = directory / MANIFEST_FILE
    if not manifest_path.is_file():
        raise BundleError(f"{directory}: incomplete bundle, {MANIFEST_FILE} is missing")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        listed: dict[str, str] = dict(manifest["files"])
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
        raise BundleError(f"{manifest_path}: unreadable manifest; the bundle is damaged") from None
    for name, expected in listed.items():
        path = directory / name
        if not path.is_file():
            raise BundleError(f"{directory}: incomplete bundle, '{name}' listed in the manifest is missing")
        if _sha256(path) != expected:
            raise BundleError(
                f"{path}: sha256 does not match the manifest; the bundle was modified after it was written "
                f"(refusing to load it)"
            )
    extra = sorted(set(_files(directory)) - set(listed))
    if extra:
        raise BundleError(f"{directory}: file '{extra[0]}' is not in the manifest; the bundle was modified")
    return manifest


def digest(directory: str | Path) -> str:
    """sha256 of ``manifest.json``: one string that pins every file of the bundle. A consultant sends it with
    the bundle (by another channel); the client compares it with ``verticals inspect``. The manifest alone
    proves a bundle is intact, not that it is the one that was sent: anyone can rewrite a manifest."""
    return _sha256(Path(directory) / MANIFEST_FILE)


def read_info(directory: str | Path, *, verified: bool = False) -> BundleInfo:
    directory = Path(directory)
    if not verified:
        verify(directory)
    try:
        info = BundleInfo.model_validate_json((directory / BUNDLE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BundleError(f"{directory / BUNDLE_FILE}: not a valid bundle description ({exc})") from None
    if info.format_version > FORMAT_VERSION:
        warnings.warn(
            f"{directory} was written by a newer Verticals (bundle format {info.format_version} > "
            f"{FORMAT_VERSION}); loading it anyway, unknown fields are ignored",
            UserWarning,
            stacklevel=2,
        )
    return info


def check_output(output: str | Path, overwrite: bool, kind: str = "bundle") -> Path:
    """Fail before training, not after, when the output cannot be written: it exists without
    ``overwrite``, or it is not provably a ``kind`` Verticals wrote (see :mod:`verticals._outputs`)."""
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
            yield tmp
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


def write_bundle(output: str | Path, info: BundleInfo, save: Callable[[Path], None], *,
                 overwrite: bool = False) -> Path:
    """Save model files with ``save(tmpdir)``, add bundle.json and the manifest, then rename into place."""
    with atomic_directory(output, overwrite, kind="bundle") as tmp:
        save(tmp)
        (tmp / BUNDLE_FILE).write_text(info.model_dump_json(indent=2) + "\n", encoding="utf-8")
        write_manifest(tmp)
    return Path(output)


@contextmanager
def atomic_file(path: str | Path, encoding: str = "utf-8") -> Iterator[Any]:
    """Write a text file under a temporary name and rename it into place only when complete."""
    path = Path(path)
    check_file_output(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with claim(path):
        tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            with open(tmp, "w", encoding=encoding) as handle:
                yield handle
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
