"""Bad input fails fast (before any training) with a DataError/ConfigError naming file, line and field."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from verticals import ConfigError, DataError, api

from .data import FAST, intent_rows, write_csv


def _train(data: dict[str, Path], tmp_path: Path, backbone: Path, *extra: str, train: Path | None = None) -> None:
    api.train("customer_service.intent", train or data["train"], validation=data["validation"],
              output=tmp_path / "bundle", overrides=[*FAST, *extra], backbone=str(backbone))


def test_faq_without_answers(intent_data, tmp_path, tiny_backbone) -> None:  # type: ignore[no-untyped-def]
    faq = write_csv(tmp_path / "faq.csv", [{"question": "where is my parcel", "intent": "track_order"}])
    with pytest.raises(DataError) as err:
        _train(intent_data, tmp_path, tiny_backbone, f"task.faq={faq}")
    assert err.value.field == "answer" and err.value.line == 2 and "answer" in str(err.value)


def test_faq_with_a_blank_answer(intent_data, tmp_path, tiny_backbone) -> None:  # type: ignore[no-untyped-def]
    faq = write_csv(tmp_path / "faq.csv", [{"question": "q1", "answer": "a1"}, {"question": "q2", "answer": " "}])
    with pytest.raises(DataError) as err:
        _train(intent_data, tmp_path, tiny_backbone, f"task.faq={faq}")
    assert (err.value.line, err.value.field) == (3, "answer")


@pytest.mark.parametrize("content", ["question,answer,intent\n", ""])
def test_empty_knowledge_base(intent_data, tmp_path, tiny_backbone, content) -> None:  # type: ignore[no-untyped-def]
    faq = tmp_path / "faq.csv"
    faq.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match="empty"):
        _train(intent_data, tmp_path, tiny_backbone, f"task.faq={faq}")


def test_faq_intent_must_be_trained(intent_data, tmp_path, tiny_backbone) -> None:  # type: ignore[no-untyped-def]
    faq = write_csv(tmp_path / "faq.csv", [{"question": "q", "answer": "a", "intent": "track_ordr"}])
    with pytest.raises(DataError, match="track_ordr") as err:
        _train(intent_data, tmp_path, tiny_backbone, f"task.faq={faq}")
    assert err.value.field == "intent"


def test_out_of_scope_label_missing_from_config(intent_data, tmp_path, tiny_backbone) -> None:  # type: ignore[no-untyped-def]
    # CLINC-style data labels out-of-scope rows 'oos', but task.oos_label still says 'out_of_scope'.
    rows = [dict(r, label="oos" if r["label"] == "out_of_scope" else r["label"]) for r in intent_rows(6, 4, 3)]
    train = write_csv(tmp_path / "train.csv", rows)
    with pytest.raises(DataError, match="task.oos_label=oos"):
        _train(intent_data, tmp_path, tiny_backbone, train=train)


def test_out_of_scope_label_listed_as_an_intent(intent_data, tmp_path, tiny_backbone) -> None:  # type: ignore[no-untyped-def]
    labels = '["refund_status","reset_password","track_order","out_of_scope"]'
    with pytest.raises(ConfigError, match="out-of-scope label"):
        _train(intent_data, tmp_path, tiny_backbone, f"labels={labels}")


def test_objective_needs_out_of_scope_examples(tmp_path, tiny_backbone) -> None:  # type: ignore[no-untyped-def]
    data = {"train": write_csv(tmp_path / "t.csv", intent_rows(6, 0, 0)),
            "validation": write_csv(tmp_path / "v.csv", intent_rows(2, 0, 1))}
    with pytest.raises(DataError, match="no training or validation record is labelled 'out_of_scope'"):
        _train(data, tmp_path, tiny_backbone, "task.objective=accuracy_at_oos_recall")


def test_cli_prints_one_line_and_exits_2(intent_data, tmp_path, tiny_backbone) -> None:  # type: ignore[no-untyped-def]
    faq = write_csv(tmp_path / "faq.csv", [{"question": "q", "answer": ""}])
    exe = shutil.which("verticals") or str(Path(sys.executable).parent / "verticals")
    proc = subprocess.run([exe, "train", "customer_service.intent", "--train", str(intent_data["train"]),
                           "--output", str(tmp_path / "b"), "--backbone", str(tiny_backbone),
                           "--set", f"task.faq={faq}"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "VERTICALS_PLUGINS": "customer_service"})
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.strip().splitlines() if ": warning: " not in line]  # data-check warnings
    assert len(lines) == 1 and "faq.csv:2" in lines[0] and "answer" in lines[0], proc.stderr
