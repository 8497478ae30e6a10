"""Fraud feedback exports as training rows the fraud task reads back: declared columns + the 0/1 label."""

from __future__ import annotations

import csv
from pathlib import Path

from finance_testdata import fraud_overrides
from verticals import build_task
from verticals.operate.feedback import FeedbackStore
from verticals.operate.feedback_export import export_feedback
from verticals.operate.feedback_route import model_columns


def test_fraud_corrections_become_labelled_transactions(tmp_path: Path) -> None:
    task, _, _ = build_task("finance.fraud", overrides=fraud_overrides())
    store = FeedbackStore(tmp_path / "fb.db")
    store.register_model("fraud", "d1", "finance.fraud", "finance.fraud", ["0", "1"], model_columns(task))
    record = task.as_record({"amount": "950.5", "v1": 2.5, "category": "online", "merchant": "quick cash"})
    dumped = record.model_dump(mode="json", exclude_none=True)
    store.add_feedback("fraud", "d1", prediction_id=None, record=dumped, predicted=None, label="1", tags=None,
                       wrong=None, comment=None)
    other = task.as_record({"amount": 12, "v1": 0.1, "category": "grocery", "merchant": "corner shop"})
    store.add_feedback("fraud", "d1", prediction_id="p2", record=other.model_dump(mode="json", exclude_none=True),
                       predicted={"label": 1, "score": 0.7, "threshold": 0.5}, label=None, tags=None, wrong=True,
                       comment=None)  # flagged, and the user says wrongly: legitimate
    store.close()
    export_feedback(tmp_path / "fb.db", "fraud", tmp_path / "fix.csv")
    with open(tmp_path / "fix.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert set(rows[0]) == {"amount", "v1", "category", "merchant", "is_fraud"}
    assert [(r["merchant"], r["is_fraud"]) for r in rows] == [("quick cash", "1"), ("corner shop", "0")]
    back = task.read(tmp_path / "fix.csv")  # the task's own reader accepts it as labelled training data
    assert [r.label for r in back] == [1, 0] and back[0].amount == 950.5
