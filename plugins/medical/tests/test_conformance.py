from pathlib import Path
from typing import Any

from verticals.conformance import PackConformance

from .data import write_conll, write_jsonl


class TestMedicalPack(PackConformance):
    pack = "medical"

    def make_data(self, task: str, directory: Path) -> dict[str, Any]:
        return {"train": write_conll(directory / "train.conll", repeat=3),
                "validation": write_jsonl(directory / "dev.jsonl")}
