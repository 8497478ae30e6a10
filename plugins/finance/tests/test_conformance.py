from pathlib import Path
from typing import Any

from finance_testdata import fraud_overrides, fraud_rows, write_csv, write_phrasebank
from verticals.conformance import PackConformance


class TestFinancePack(PackConformance):
    pack = "finance"

    def make_data(self, task: str, directory: Path) -> dict[str, Any]:
        if task == "finance.sentiment":
            return {"train": write_phrasebank(directory / "train.txt", 24, seed=0),
                    "validation": write_phrasebank(directory / "validation.txt", 9, seed=1)}
        return {"train": write_csv(directory / "train.csv", fraud_rows(64, seed=0)),
                "validation": write_csv(directory / "validation.csv", fraud_rows(32, seed=1)),
                "overrides": fraud_overrides(text=True)}
