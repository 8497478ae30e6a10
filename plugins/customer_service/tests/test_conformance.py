"""The core conformance kit, run on the customer-service pack."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from verticals.conformance import PackConformance

from .data import FAST, intent_rows, write_csv, write_faq


class TestCustomerServicePack(PackConformance):
    pack = "customer_service"
    overrides = tuple(FAST)

    def make_data(self, task: str, directory: Path) -> dict[str, Any]:
        return {
            "train": write_csv(directory / "train.csv", intent_rows(12, 6, seed=0)),
            "validation": write_csv(directory / "validation.csv", intent_rows(4, 8, seed=1)),
            "overrides": [f"task.faq={write_faq(directory / 'faq.csv')}"],
        }
