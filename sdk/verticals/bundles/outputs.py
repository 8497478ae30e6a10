"""What the SDK may delete: only what it wrote and can prove it wrote.

Every directory the SDK writes carries proof of authorship. A bundle: a ``bundle.json`` that parses and a
``manifest.json`` listing exactly its files. A report, ONNX export or pack scaffold: the marker
``.verticals-output.json`` with the sha256 of every file written. A checkpoint folder: the same marker,
holding only ``checkpoint-N`` folders. ``--overwrite`` replaces only such a directory, of the same kind;
anything else is refused with exit 2, and no user-given path is ever passed to ``rmtree``.

Writers take an exclusive lock beside their output (``.NAME.lock``) for as long as they write, so two
runs never share an output or a checkpoint folder; under that lock the leftovers of a killed run
(``.NAME.tmp-XXXXXXXX``, ``.NAME.old-XXXXXXXX``, our exact naming) are cleaned up.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import stat
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import ConfigError, OutputWriteError, option

MARKER = ".verticals-output.json"
CHECKPOINT = re.compile(r"^checkpoint-\d+$")
# transformers' Trainer._save_checkpoint writes trainer_state.json after the weights, optimizer, scheduler
# and RNG states: a checkpoint is complete when that file is there and parses.
TRAINER_STATE = "trainer_state.json"
# errno values that say the machine could not store what was written (not that the input was wrong)
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}
# (lock path, thread) -> (fd, depth): a thread may re-enter its own lock (training, then writing its bundle);
# another thread of the same process is refused like another process
_HELD: dict[tuple[str, int], tuple[int, int]] = {}


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in 1 MiB blocks (bundles, exports and markers all use it)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _walk(directory: Path) -> tuple[list[str], list[str]]:
    """(regular files, symbolic links) below ``directory`` as relative POSIX paths; links are not followed."""
    files, links = [], []
    for root, dirs, names in os.walk(directory):
        for name in dirs + names:
            path = Path(root) / name
            if path.is_symlink():
                links.append(path.relative_to(directory).as_posix())
            elif name in names:
                files.append(path.relative_to(directory).as_posix())
    return sorted(files), sorted(links)


def _contains_cwd(path: Path) -> bool:
    try:
        Path.cwd().resolve().relative_to(path.resolve())
    except (ValueError, OSError):
        return False
    return True


def write_marker(directory: Path, kind: str, **extra: Any) -> None:
    """Record every file of ``directory`` with its sha256: the proof that a later ``--overwrite`` needs."""
    files = {name: file_sha256(directory / name) for name in _walk(directory)[0] if name != MARKER}
    marker = {"kind": kind, "algorithm": "sha256", "files": files, **extra}
    (directory / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")


def _read_marker(directory: Path) -> dict[str, Any] | None:
    try:
        marker = json.loads((directory / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and isinstance(marker.get("files"), dict) else None


# How to tell a bundle Verticals wrote, and whether one is intact: set by ``verticals.bundles.bundle`` (which owns the
# bundle format and imports this module), so this lower module never imports it back.
BundleProblem = Callable[[Path, list[str]], "str | None"]
BUNDLE_CHECKS: dict[str, Callable[..., Any]] = {}


def _bundle_problem(directory: Path, files: list[str]) -> str | None:
    check = BUNDLE_CHECKS.get("problem")
    if check is None:
        return "no bundle format is loaded to check it against"
    return check(directory, files)


def ownership_problem(path: str | Path, kind: str) -> str | None:
    """Why the existing ``path`` is not provably a ``kind`` Verticals wrote (None when it is).

    ``kind`` is 'bundle', 'checkpoints', or the kind a marker records ('report', 'export', 'pack')."""
    path = Path(path)
    if path.is_symlink():
        return "it is a symbolic link"
    if not path.is_dir():
        return "it is not a directory"
    if _contains_cwd(path):
        return "it contains the current directory"
    files, links = _walk(path)
    if links:
        return f"it holds the symbolic link '{links[0]}'"
    if kind == "bundle":
        return _bundle_problem(path, files)
    marker = _read_marker(path)
    if marker is None:
        return f"it has no {MARKER}, so Verticals did not write it"
    if marker.get("kind") != kind:
        return f"its {MARKER} says it holds a {marker.get('kind')!r}, not a {kind!r}"
    if kind == "checkpoints":
        foreign = sorted(e.name for e in path.iterdir()
                         if e.name != MARKER and not (CHECKPOINT.match(e.name) and e.is_dir()))
        return f"it holds '{foreign[0]}', which is not a checkpoint Verticals wrote" if foreign else None
    for name in files:
        if name != MARKER and name not in marker["files"]:
            return f"it holds '{name}', which Verticals did not write there"
    for name, expected in marker["files"].items():
        if name not in files or file_sha256(path / name) != expected:
            return f"'{name}' was changed or removed after Verticals wrote it"
    return None


def check_replaceable(output: str | Path, kind: str, overwrite: bool) -> None:
    """Fail before any work when ``output`` exists and may not be replaced (exit 2, saying why)."""
    output = Path(output)
    check_output_place(output)
    if not (output.exists() or output.is_symlink()):
        return
    if not overwrite:
        raise ConfigError(f"{output} already exists; choose another {option('output')} or pass "
                          f"{option('overwrite', True)}")
    if output.is_dir() and not output.is_symlink() and not any(output.iterdir()) and not _contains_cwd(output):
        return  # an empty directory: nothing to lose
    problem = ownership_problem(output, kind)
    if problem:
        raise ConfigError(f"{output} exists and {option('overwrite', True)} replaces only a {kind} Verticals wrote, "
                          f"but {problem}; refusing to delete it (choose another {option('output')}, or move it "
                          f"away yourself)")


def _leftover_pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"^\.{re.escape(name)}\.(tmp|old)-[0-9a-f]{{8}}$")


def _clean_leftovers(path: Path) -> None:
    """Remove what a killed writer of ``path`` left behind; roll back a replacement killed half-way."""
    # and those of the marker beside a single-file output (write_file_marker writes it the same way)
    patterns = (_leftover_pattern(path.name), _leftover_pattern(f".{path.name}{MARKER}"))
    try:
        entries = sorted(path.parent.iterdir(), key=lambda p: p.lstat().st_mtime)
    except OSError:
        return
    for entry in entries:
        match = patterns[0].match(entry.name) or patterns[1].match(entry.name)
        if not match or entry.is_symlink():
            continue
        if match.group(1) == "old" and entry.is_dir() and not (path.exists() or path.is_symlink()) \
                and _intact(entry):
            os.replace(entry, path)  # killed between the two renames: the previous output comes back
        elif entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _intact(directory: Path) -> bool:
    """A complete bundle or marked output (a half-deleted one is not rolled back into place)."""
    marker = _read_marker(directory)
    if marker is not None:
        return ownership_problem(directory, str(marker.get("kind"))) is None
    verified = BUNDLE_CHECKS.get("intact")
    return bool(verified and verified(directory)) and ownership_problem(directory, "bundle") is None


LOCK_MARK = b"verticals lock\n"
"""What our lock files hold: a file of that name holding anything else is the user's, never locked or removed."""


def _open_lock(lock: Path) -> int:
    """Open (creating) our lock file; refuse a file of that name that Verticals did not write."""
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
        os.write(fd, LOCK_MARK)
        return fd
    except FileExistsError:
        pass
    try:
        fd = os.open(lock, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return _open_lock(lock)  # its holder just removed it
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ConfigError(f"{lock} is a symbolic link, not a Verticals lock file; remove or rename it") from None
        raise
    content = os.pread(fd, len(LOCK_MARK) + 1, 0)
    # empty: a run killed between creating and marking it
    if content not in (b"", LOCK_MARK) or not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ConfigError(f"{lock} is in the way: Verticals keeps its lock beside the output under that name and "
                          f"this file is not one of its locks; rename it or choose another output")
    return fd


@contextmanager
def claim(path: str | Path, what: str = "writing to") -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (via ``.NAME.lock`` beside it) and clean a killed run's leftovers.

    Non-blocking: a second writer fails at once with exit 2. Re-entrant within one thread."""
    path = Path(os.path.abspath(path))
    if not path.name or path.parent == path:
        raise ConfigError(f"{path}: give a named file or folder as output")
    lock = path.parent / f".{path.name}.lock"
    key = (str(lock), threading.get_ident())
    if key in _HELD:
        fd, depth = _HELD[key]
        _HELD[key] = (fd, depth + 1)
    else:
        while True:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd = _open_lock(lock)
            except OSError as exc:
                raise ConfigError(f"{path}: cannot write there ({exc.strerror}); choose a folder you can write "
                                  f"to") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise ConfigError(f"another Verticals process is {what} {path} (it holds {lock}); wait for it to "
                                  f"finish or choose another path") from None
            try:
                same = os.stat(lock).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # the holder we waited on removed this lock file: lock the new one
        _HELD[key] = (fd, 1)
        _clean_leftovers(path)
    try:
        yield
    finally:
        fd, depth = _HELD[key]
        if depth > 1:
            _HELD[key] = (fd, depth - 1)
        else:
            del _HELD[key]
            lock.unlink(missing_ok=True)  # unlinked while still locked, so no one locks a stale file
            os.close(fd)


def write_failure(exc: BaseException, path: str | Path) -> OutputWriteError | None:
    """The one-line error for an output that could not be written because the disk is full (or a quota, a
    file size limit, a read-only file system), naming ``path``; None for any other exception.

    A full disk shows up as an OSError without a file name (the write, or the flush when the file is closed)
    or as safetensors' SafetensorError, which carries the OS error code only in its text."""
    code = exc.errno if isinstance(exc, OSError) else None
    if type(exc).__name__ == "SafetensorError":
        found = re.search(r"(?:code: |os error )(\d+)", str(exc))
        code = int(found.group(1)) if found else None
    if code not in _WRITE_ERRNOS:
        return None
    return OutputWriteError(f"cannot write {path}: {os.strerror(code)}; the partial output was removed: free "
                            f"some space (or raise the limit) and run again, or choose another {option('output')}")


def refuse_same_file(input: str | Path, output: str | Path) -> None:
    """Predictions must never replace the records they are made from (also via links)."""
    a, b = Path(input), Path(output)
    same = os.path.abspath(a) == os.path.abspath(b) or a.resolve() == b.resolve()
    if not same and a.exists() and b.exists():
        same = os.path.samefile(a, b)  # hard links and bind mounts
    if same:
        raise ConfigError(f"{option('output')} {output} is the {option('input')} file; predictions would replace the "
                          f"records they are made from; choose another {option('output')}")


def check_file_output(path: str | Path) -> None:
    """A file output is renamed into place: never over a folder, a device such as /dev/null, or a pipe, and
    never inside a bundle or another output Verticals wrote."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise ConfigError(f"{option('output')} {path} exists and is not a regular file (a folder, device or pipe), "
                          f"which writing the predictions would replace; choose a file name")
    check_output_place(path)


# ---- where an output may go, and which single files may be replaced -----------------------------------------
def _written_folder(directory: Path) -> str | None:
    """What Verticals wrote ``directory`` as ('bundle', 'report', ...), judged by its proof files, or None."""
    try:
        if (directory / "manifest.json").is_file() and (directory / "bundle.json").is_file():
            return "bundle"
        if (directory / MARKER).is_file():
            marker = _read_marker(directory)
            return str(marker.get("kind")) if marker else "output"
    except OSError:
        return None
    return None


def check_output_place(output: str | Path, name: str | None = None) -> None:
    """Refuse an output that is inside a bundle or another folder Verticals wrote (an export, a report).

    Such a folder lists its files in a manifest or marker: one more file makes the bundle unloadable (and a
    file of the same name as one of its own, e.g. ``bundle.json``, destroys it). Checked on the real path, so
    a link into a bundle is refused too. ``name``: how messages name the option (default: the output's)."""
    output = Path(os.path.abspath(output))
    name = name or option("output")
    for candidate in (output.parent, *output.parent.parents):
        if candidate.exists() and not candidate.is_dir():  # mkdir would fail with FileExistsError
            raise ConfigError(f"{name} {output}: {candidate} is a file, not a folder, so nothing can be "
                              f"written under it; choose an output in a folder")
        for where in {candidate, candidate.resolve()}:
            kind = _written_folder(where)
            if kind:
                raise ConfigError(f"{name} {output} is inside {where}, a {kind} Verticals wrote: a file "
                                  f"added there is not in its manifest and would make it fail verification (or replace "
                                  f"one of its own files); choose an output outside it")


def file_marker(path: str | Path) -> Path:
    """The proof that Verticals wrote the single file ``path``: ``.NAME.verticals-output.json`` beside it."""
    path = Path(path)
    return path.parent / f".{path.name}{MARKER}"


def write_file_marker(path: str | Path, kind: str, *, sha256: str | None = None,
                      previous: str | None = None) -> None:
    """Record ``path`` with its sha256 (``sha256``: that of the file about to be renamed onto it, when given),
    so that ``--overwrite`` may replace it; ``previous`` also vouches for the file still there until then."""
    path = Path(path)
    marker = {"kind": kind, "algorithm": "sha256", "file": path.name, "sha256": sha256 or file_sha256(path)}
    if previous is not None and previous != marker["sha256"]:
        marker["previous_sha256"] = previous
    proof = file_marker(path)
    tmp = proof.parent / f".{proof.name}.tmp-{uuid.uuid4().hex[:8]}"  # a killed write's: _clean_leftovers
    tmp.write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, proof)


def replace_file(tmp: Path, path: Path, kind: str | None) -> None:
    """Rename the complete file ``tmp`` onto ``path``; with ``kind``, keep its marker true at every moment: a
    kill before, during or after the rename leaves a marker vouching for whatever file is at ``path``."""
    if kind is None:
        os.replace(tmp, path)
        return
    new = file_sha256(tmp)
    # the old file's sha256 as its marker records it: the caller checked the two match, under the lock
    old = _recorded_sha256(path)
    write_file_marker(path, kind, sha256=new, previous=old)  # the new file, and the old until the rename
    os.replace(tmp, path)
    write_file_marker(path, kind, sha256=new)  # the new file alone


def _recorded_sha256(path: Path) -> str | None:
    proof = file_marker(path)
    if not _is_file_marker(proof, path.name):
        return None
    recorded = json.loads(proof.read_text(encoding="utf-8")).get("sha256")
    return recorded if isinstance(recorded, str) else None


def _is_file_marker(proof: Path, name: str) -> bool:
    """Whether ``proof`` is a record :func:`write_file_marker` wrote for the file ``name`` (never replace another)."""
    if proof.is_symlink() or not proof.is_file():
        return False
    try:
        marker = json.loads(proof.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and marker.get("file") == name and marker.get("algorithm") == "sha256"


def file_problem(path: str | Path, kind: str) -> str | None:
    """Why the existing file ``path`` is not provably a ``kind`` Verticals wrote and left unchanged (None if it is)."""
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        return "it is not a regular file"
    if path.stat().st_size == 0:
        return None  # an empty file: nothing to lose
    try:
        marker = json.loads(file_marker(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        marker = None
    if not isinstance(marker, dict) or marker.get("file") != path.name:
        return f"there is no {file_marker(path).name} beside it, so Verticals did not write it"
    if marker.get("kind") != kind:
        return f"{file_marker(path).name} says it holds {marker.get('kind')!r}, not {kind!r}"
    # previous_sha256: a run killed while renaming its new file onto this one (replace_file)
    if file_sha256(path) not in {marker.get("sha256"), marker.get("previous_sha256")}:
        return "it was changed after Verticals wrote it"
    return None


def check_file_replaceable(path: str | Path, kind: str, overwrite: bool) -> None:
    """The single-file form of :func:`check_replaceable`: a new path is fine; an existing file is replaced only
    with ``overwrite`` and only when Verticals wrote it as ``kind`` and nobody changed it since."""
    path = Path(path)
    check_file_output(path)
    proof = file_marker(path)
    if (proof.exists() or proof.is_symlink()) and not _is_file_marker(proof, path.name):
        raise ConfigError(f"{proof} is in the way: Verticals records beside {path.name} that it wrote it, under that "
                          f"name, and this file is not such a record; rename it or choose another {option('output')}")
    if not (path.exists() or path.is_symlink()):
        return
    if not overwrite:
        raise ConfigError(f"{path} already exists; choose another {option('output')} or pass "
                          f"{option('overwrite', True)}")
    problem = file_problem(path, kind)
    if problem:
        raise ConfigError(f"{path} exists and {option('overwrite', True)} replaces only a {kind} file Verticals wrote, "
                          f"but {problem}; refusing to replace it (choose another {option('output')}, or move "
                          f"it away yourself)")
