"""``verticals compare`` on customer-service bundles: the pack's own metrics (out-of-scope, fallback) get
intervals through the task's score(), and the out-of-scope label counts as a decision like any intent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from verticals import api
from verticals.cli import main

from .data import FAST, intent_rows, write_csv


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path,
            intent_data: dict[str, Path]) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cs-compare")
    options = [*FAST, f"task.faq={intent_data['faq']}"]
    api.train("customer_service.intent", intent_data["train"], validation=intent_data["validation"],
              output=root / "a", overrides=options, backbone=str(tiny_backbone))
    api.train("customer_service.intent", intent_data["train"], validation=intent_data["validation"],
              output=root / "b", overrides=[*options, "training.epochs=1"], backbone=str(tiny_backbone))
    return {"a": root / "a", "b": root / "b", "test": write_csv(root / "test.csv", intent_rows(8, 6, seed=9))}


def test_pack_metrics_get_intervals_and_changed_records_name_intents(bundles, tmp_path, capsys) -> None:
    changed = tmp_path / "changed.jsonl"
    code = main(["compare", str(bundles["a"]), str(bundles["b"]), "--data", str(bundles["test"]), "--json",
                 "--resamples", "200", "--latency-records", "2", "--changed", str(changed)])
    report = json.loads(capsys.readouterr().out)
    assert code == report["verdict"]["exit_code"] and code in (0, 3)
    evaluation = api.load(bundles["b"]).evaluate(bundles["test"]).metrics
    rows = {m["name"]: m for m in report["metrics"]}
    assert {name: row["new"] for name, row in rows.items()} == pytest.approx(evaluation)
    assert {"in_scope_accuracy", "oos_recall", "fallback_rate"} <= set(rows)
    assert any("score()" in note and "oos_recall" in note for note in report["notes"])
    assert rows["oos_recall"]["delta_ci"][0] <= rows["oos_recall"]["delta"] <= rows["oos_recall"]["delta_ci"][1]
    assert report["mcnemar"] is not None and report["verdict"]["metric"] == "accuracy"
    lines = [json.loads(line) for line in changed.read_text().splitlines()]
    assert len(lines) == report["changed_count"]
    labels = {"track_order", "reset_password", "refund_status", "out_of_scope"}
    assert all({r["old"], r["new"], r["gold"]} <= labels for r in lines)
