"""Backbones by name: a Hub id ("org/name") resolves through the Hugging Face cache, offline."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import verticals
from verticals.backbones.loading import resolve_backbone
from verticals.errors import ConfigError

from .conftest import FAST, run_cli, text_rows, write_csv

REVISION = "0123456789abcdef0123456789abcdef01234567"


def _cache_with(cache: Path, repo_id: str, model_dir: Path) -> Path:
    """The layout huggingface_hub writes: models--org--name/{refs/main, snapshots/<rev>/...}."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / REVISION
    shutil.copytree(model_dir, snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(REVISION)
    return snapshot


@pytest.fixture
def hub_cache(tmp_path, tiny_backbone, monkeypatch) -> Path:
    cache = tmp_path / "hub"
    _cache_with(cache, "acme/tiny-bert", tiny_backbone)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def test_a_cached_hub_id_resolves_offline(hub_cache, tmp_path):
    assert resolve_backbone("acme/tiny-bert") == hub_cache / "models--acme--tiny-bert" / "snapshots" / REVISION
    train = write_csv(tmp_path / "train.csv", text_rows(6, 0))
    predictor = verticals.train("text-classification", train, output=tmp_path / "b", overrides=FAST,
                                backbone="acme/tiny-bert")
    assert predictor.info.model["backbone"]["source"] == "acme/tiny-bert"


def test_a_hub_id_that_is_not_cached_says_how_to_fetch_it(hub_cache, tmp_path):
    with pytest.raises(ConfigError, match="not in the Hugging Face cache.*hf download acme/other"):
        resolve_backbone("acme/other")
    train = write_csv(tmp_path / "train.csv", text_rows(6, 0))
    result = run_cli("train", "text-classification", "--train", str(train), "--output", str(tmp_path / "b"),
                     "--backbone", "acme/other", env={"HF_HUB_CACHE": str(hub_cache), "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 2, result.stderr
    assert "not in the Hugging Face cache" in result.stderr and "hf download acme/other" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "b").exists()


def test_directories_and_registered_names_still_resolve(tiny_backbone, tmp_path):
    assert resolve_backbone(str(tiny_backbone)) == tiny_backbone
    assert (resolve_backbone("all-MiniLM-L6-v2") / "config.json").is_file()
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_backbone(str(tmp_path / "nowhere" / "model"))
    with pytest.raises(ConfigError, match="no backbone 'minilm'"):
        resolve_backbone("minilm")
