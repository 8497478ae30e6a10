"""Fixtures of the customer-service pack tests: only this pack is loaded; tiny data written here."""

from __future__ import annotations

from pathlib import Path

import pytest
from verticals.testing import make_tiny_backbone, only_plugins

from .data import intent_rows, write_csv, write_faq

pytest.importorskip("verticals_customer_service")


@pytest.fixture(autouse=True, scope="module")
def _only_this_pack():
    with only_plugins("customer_service"):
        yield


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_backbone(tmp_path_factory.mktemp("backbone") / "tiny-bert")


@pytest.fixture(scope="session")
def intent_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("intent-data")
    return {
        "train": write_csv(directory / "train.csv", intent_rows(16, 0, seed=0)),
        "validation": write_csv(directory / "validation.csv", intent_rows(5, 12, seed=1)),
        "faq": write_faq(directory / "faq.csv"),
    }
