"""The Verticals conformance kit: registration, defaults, training, bundle round trip, metrics."""

from __future__ import annotations

import json
from pathlib import Path

from verticals.conformance import PackConformance

DATA = Path(__file__).resolve().parents[1] / "data"


class TestPack(PackConformance):
    pack = "insurance"

    def make_data(self, task: str, directory: Path) -> dict:
        return {"train": DATA / "train.jsonl", "validation": DATA / "validation.jsonl"}


def test_data_uses_declared_labels() -> None:
    from verticals import get_catalog

    declared = set(get_catalog().packs.get("insurance").task("claim_triage").labels)
    for name in ("train.jsonl", "validation.jsonl"):
        for line in (DATA / name).read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            found = set(record["tags"]) if "tags" in record else {record["label"]}
            assert found <= declared, f"{name}: {found - declared} not declared in the pack"
