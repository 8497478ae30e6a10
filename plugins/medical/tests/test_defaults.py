"""The pack's learning rate depends on the backbone's size: 3e-4 for the embedded MiniLM-sized models, 5e-5
(chosen on NCBI-disease devel, README "How the defaults were chosen") for a base-size one such as mpnet-base."""

from __future__ import annotations

from pathlib import Path

import pytest
from verticals import api
from verticals.testing import make_base_width_config


@pytest.fixture(scope="module")
def base_width(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_base_width_config(tmp_path_factory.mktemp("base-width"))


def _learning_rate(backbone: Path, overrides: list[str] | None = None) -> float:
    task, _, _ = api.build_task("medical.ner", overrides=overrides, backbone=str(backbone))
    return float(task.config.training.learning_rate)


def test_base_size_backbone_gets_the_base_learning_rate(base_width: Path, tiny_backbone: Path) -> None:
    assert _learning_rate(base_width) == 5e-5
    assert _learning_rate(tiny_backbone) == 3e-4
    assert _learning_rate(base_width, ["training.learning_rate=1e-5"]) == 1e-5  # the user's value wins
