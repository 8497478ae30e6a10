"""Recommendation feedback ("the item I wanted") exports as positive interactions the task reads back."""

from __future__ import annotations

import json
from pathlib import Path

from verticals import build_task
from verticals.operate.feedback import FeedbackStore
from verticals.operate.feedback_export import export_feedback
from verticals.operate.feedback_route import model_columns

COLUMNS = ["data.user_column=customer", "data.item_column=product"]


def test_wanted_items_become_interactions(tmp_path: Path) -> None:
    task, _, _ = build_task("recommendation.scoring", overrides=COLUMNS)
    columns = model_columns(task)
    assert columns["kind"] == "interactions"
    store = FeedbackStore(tmp_path / "fb.db")
    store.register_model("recs", "d1", "recommendation.scoring", "recommendation.scoring", [], columns)
    request = task.as_record({"customer": "u7", "k": 5}).model_dump(mode="json", exclude_none=True)
    for _ in range(2):  # the same correction twice: one interaction
        store.add_feedback("recs", "d1", prediction_id=None, record=request, predicted=None, label="i42", tags=None,
                           wrong=None, comment=None)
    store.close()
    result = export_feedback(tmp_path / "fb.db", "recs", tmp_path / "fix.jsonl")
    assert result.records == 1 and result.duplicates_merged == 1
    assert json.loads((tmp_path / "fix.jsonl").read_text(encoding="utf-8")) == {"customer": "u7", "product": "i42"}
    (back,) = task.read(tmp_path / "fix.jsonl")
    assert (back.user, back.item) == ("u7", "i42")
