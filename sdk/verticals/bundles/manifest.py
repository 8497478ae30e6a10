"""A bundle's ``manifest.json``: the sha256 of every file, written last and checked first.

:func:`verify` checks a folder against it (exactly the listed files, nothing else, no links);
:func:`read_verified` reads one file and checks the bytes read; :func:`pinned_manifest` makes one load read the
manifest once, so a bundle replaced on disk meanwhile fails the checks instead of mixing with the first.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from ..errors import BundleError
from .outputs import file_sha256

MANIFEST_FILE = "manifest.json"
ALGORITHM = "sha256"
_DIGEST = re.compile(r"[0-9a-f]{64}")


def _open(path: Path) -> int:
    """A descriptor of the regular file ``path``. O_NOFOLLOW: a file swapped for a symbolic link after the walk
    is refused rather than followed; O_NONBLOCK: a FIFO is refused rather than waited on (also one put there
    before the walk checked anything: a load opens its manifest first)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise BundleError(f"{path}: cannot read ({exc.strerror}); a bundle holds only regular files") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise BundleError(f"{path}: not a regular file; a bundle holds only regular files")
    return fd




def _walk(directory: Path) -> tuple[list[str], list[str]]:
    """Every regular file and every directory below ``directory`` as relative POSIX names, hidden ones
    included. Never follows a link: a symbolic link or a special file anywhere inside raises."""
    files: list[str] = []
    dirs: list[str] = []
    pending = [("", str(directory))]
    while pending:
        prefix, current = pending.pop()
        try:
            entries = list(os.scandir(current))
        except OSError as exc:
            raise BundleError(f"{current}: cannot list the bundle's files ({exc.strerror})") from None
        for entry in entries:
            name = prefix + entry.name
            if entry.is_symlink():
                raise BundleError(f"{directory}: '{name}' is a symbolic link; a bundle holds only its own "
                                  f"files, not links (refusing it; copy the bundle without links)")
            if entry.is_dir(follow_symlinks=False):
                dirs.append(name)
                pending.append((name + "/", entry.path))
            elif entry.is_file(follow_symlinks=False):
                files.append(name)
            else:
                raise BundleError(f"{directory}: '{name}' is not a regular file (a pipe, socket or device); "
                                  f"the bundle was modified (refusing it)")
    return sorted(files), sorted(dirs)


def _files(directory: Path) -> list[str]:
    return [name for name in _walk(directory)[0] if name != MANIFEST_FILE]


def write_manifest(directory: Path) -> dict[str, Any]:
    manifest = {"algorithm": ALGORITHM, "files": {name: file_sha256(directory / name) for name in _files(directory)}}
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def _check_entry(manifest_path: Path, name: object, expected: object) -> None:
    """A manifest names relative POSIX paths inside the bundle, each with a sha256 hex digest."""
    parts = name.split("/") if isinstance(name, str) else [""]
    if (not isinstance(name, str) or name == MANIFEST_FILE or "\\" in name or "\x00" in name
            or any(part in ("", ".", "..") for part in parts)):
        raise BundleError(f"{manifest_path}: manifest entry {name!r} is not a relative path inside the bundle "
                          f"(expected names like 'backbone/config.json'); the manifest was modified, refusing it")
    if not isinstance(expected, str) or not _DIGEST.fullmatch(expected):
        raise BundleError(f"{manifest_path}: manifest entry '{name}' has no sha256 digest (found {expected!r}, "
                          f"expected 64 hex digits); the manifest was modified, refusing it")


class _DuplicateKey(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen


_PINNED: ContextVar[tuple[Path, bytes] | None] = ContextVar("verticals_pinned_manifest", default=None)


@contextmanager
def pinned_manifest(directory: str | Path) -> Iterator[str | None]:
    """Read ``directory``'s manifest once: inside the block every check against it (:func:`verify`,
    :func:`read_verified`) uses those bytes, so a bundle replaced on disk during a load fails its checks
    instead of mixing with the first. Yields the digest of the pinned bytes (None when there is no manifest
    to read: verify then says why). A ContextVar: threads started inside the block do not see the pin unless
    run in a copy of the context (``contextvars.copy_context().run``)."""
    directory = Path(directory)
    try:
        with os.fdopen(_open(directory / MANIFEST_FILE), "rb") as handle:
            data = handle.read()
    except BundleError:
        yield None
        return
    # by the path as given, not resolved: a bundle reached through a link flipped to another during the load
    # must fail the checks, not find the pin under the new target and read that bundle's manifest
    token = _PINNED.set((Path(os.path.abspath(directory)), data))
    try:
        yield hashlib.sha256(data).hexdigest()
    finally:
        _PINNED.reset(token)


def _manifest_bytes(manifest_path: Path) -> bytes:
    pinned = _PINNED.get()
    if pinned is not None and pinned[0] == Path(os.path.abspath(manifest_path.parent)):
        return pinned[1]
    with os.fdopen(_open(manifest_path), "rb") as handle:
        return handle.read()


def read_manifest(directory: Path) -> dict[str, Any]:
    """Parse and check ``manifest.json`` (shape, algorithm, entries) without hashing any file."""
    manifest_path = directory / MANIFEST_FILE
    try:
        manifest = json.loads(_manifest_bytes(manifest_path).decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
        listed = manifest["files"]
        algorithm = manifest.get("algorithm")
    except _DuplicateKey as exc:  # json keeps the last of two: a forged entry could hide behind a real one
        raise BundleError(f"{manifest_path}: '{exc.args[0]}' is listed twice; the manifest was modified, "
                          f"refusing it") from None
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError, UnicodeDecodeError, RecursionError):
        raise BundleError(f"{manifest_path}: unreadable manifest; the bundle is damaged") from None
    if algorithm != ALGORITHM:
        raise BundleError(f"{manifest_path}: manifest algorithm {algorithm!r} is not supported; expected "
                          f"'{ALGORITHM}' (refusing the bundle)")
    if not isinstance(listed, dict):
        raise BundleError(f"{manifest_path}: unreadable manifest ('files' is not an object); the bundle is damaged")
    for name, expected in listed.items():
        _check_entry(manifest_path, name, expected)
    return manifest


def verify(directory: str | Path, *, unlisted_ok: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Check the bundle against its manifest; raise :class:`BundleError` naming the first problem.

    The bundle holds exactly the listed files: no symbolic links, no special files, no unlisted file or
    directory (hidden ones included), every listed name a relative path inside the bundle whose sha256
    matches. The directory itself may be reached through a link; nothing inside it may be one.
    ``unlisted_ok``: top-level files allowed beside the listed ones (an export's output marker, written
    after its manifest).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise BundleError(f"{directory}: not a bundle directory (does not exist)")
    if not (directory / MANIFEST_FILE).is_file():
        raise BundleError(f"{directory}: incomplete bundle, {MANIFEST_FILE} is missing")
    manifest = read_manifest(directory)
    listed: dict[str, str] = manifest["files"]
    files, dirs = _walk(directory)
    present = set(files) - {MANIFEST_FILE} - set(unlisted_ok)
    for name in listed:
        if name not in present:
            raise BundleError(f"{directory}: incomplete bundle, '{name}' listed in the manifest is missing")
    extra = sorted(present - set(listed))
    if extra:
        raise BundleError(f"{directory}: file '{extra[0]}' is not in the manifest; the bundle was modified")
    needed = {"/".join(name.split("/")[:i]) for name in listed for i in range(1, name.count("/") + 1)}
    extra_dirs = sorted(set(dirs) - needed)
    if extra_dirs:
        raise BundleError(f"{directory}: directory '{extra_dirs[0]}' is not in the manifest; the bundle was modified")
    for name, expected in listed.items():
        if file_sha256(directory / name) != expected:
            raise BundleError(
                f"{directory / name}: sha256 does not match the manifest; the bundle was modified after it was "
                f"written (refusing to load it)"
            )
    return manifest


def read_verified(directory: str | Path, name: str) -> bytes:
    """The bytes of one manifest-listed file, read once and checked against the manifest: what is loaded
    is exactly what was verified, even if the file changes on disk afterwards."""
    directory = Path(directory)
    expected = read_manifest(directory)["files"].get(name)
    if expected is None:
        raise BundleError(f"{directory}: '{name}' is not in the manifest; the bundle is incomplete")
    with os.fdopen(_open(directory / name), "rb") as handle:
        data = handle.read()
    if hashlib.sha256(data).hexdigest() != expected:
        raise BundleError(f"{directory / name}: sha256 does not match the manifest; the bundle was modified "
                          f"after it was written (refusing to load it)")
    return data


def digest(directory: str | Path) -> str:
    """sha256 of ``manifest.json``: one string that pins every file of the bundle. A consultant sends it with
    the bundle (by another channel); the client compares it with ``verticals inspect``. The manifest alone
    proves a bundle is intact, not that it is the one that was sent: anyone can rewrite a manifest."""
    manifest_path = Path(directory) / MANIFEST_FILE
    pinned = _PINNED.get()
    if pinned is not None and pinned[0] == Path(os.path.abspath(manifest_path.parent)):
        return hashlib.sha256(pinned[1]).hexdigest()  # the manifest this load or check pinned
    return file_sha256(manifest_path)
