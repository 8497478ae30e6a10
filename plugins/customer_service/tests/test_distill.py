"""customer_service.intent distilled into a student: the pack's fit steps (index, out-of-scope calibration)
are redone for the student, and the student records its teacher."""

from __future__ import annotations

import json
from pathlib import Path

from verticals import api
from verticals.bundles.bundle import digest
from verticals.distill import distill
from verticals.testing import make_tiny_backbone

from .data import FAST, intent_rows, write_csv


def test_intent_student_is_a_calibrated_bundle(tmp_path: Path, tiny_backbone: Path,
                                               intent_data: dict[str, Path]) -> None:
    teacher = tmp_path / "teacher"
    api.train("customer_service.intent", intent_data["train"], validation=intent_data["validation"],
              output=teacher, overrides=[*FAST, f"task.faq={intent_data['faq']}"], backbone=str(tiny_backbone))
    unlabeled = write_csv(tmp_path / "unlabeled.csv", [{"text": row["text"]} for row in intent_rows(4, 0, seed=7)])
    student = distill(teacher, intent_data["train"], output=tmp_path / "student", unlabeled=unlabeled,
                      validation=intent_data["validation"], overrides=[*FAST, f"task.faq={intent_data['faq']}"],
                      backbone=str(make_tiny_backbone(tmp_path / "student-bert", seed=1, layers=1)))
    info = json.loads((tmp_path / "student" / "bundle.json").read_text(encoding="utf-8"))
    assert info["model"]["distilled_from"]["teacher_digest"] == digest(teacher)
    assert info["model"]["distilled_from"]["unlabeled_records"] > 0
    assert info["state"] != {} and "fallback_rate" in student.info.metrics["validation"]
    loaded = api.load(tmp_path / "student")
    assert loaded.labels == api.load(teacher).labels
    assert len(loaded.predict(["where is my parcel"])) == 1


def test_intent_student_defaults_to_the_measured_x2_transfer_set(tmp_path: Path, tiny_backbone: Path,
                                                                 intent_data: dict[str, Path]) -> None:
    """Issue 30: on Banking77's open-intent protocol (3 draws) the x2 transfer set validated above logits only,
    so intent students get it unless told otherwise (``--transfer-set 0``)."""
    teacher = tmp_path / "teacher"
    common = {"validation": intent_data["validation"], "overrides": [*FAST, "training.epochs=1",
                                                                     f"task.faq={intent_data['faq']}"]}
    api.train("customer_service.intent", intent_data["train"], output=teacher, backbone=str(tiny_backbone), **common)
    student = distill(teacher, intent_data["train"], output=tmp_path / "student", backbone=str(tiny_backbone),
                      **common)
    recorded = student.info.model["distilled_from"]
    assert recorded["transfer_multiplier"] == 2 and recorded["transfer_records"] > 0, recorded
    plain = distill(teacher, intent_data["train"], output=tmp_path / "plain", backbone=str(tiny_backbone),
                    transfer_multiplier=0, **common)
    assert plain.info.model["distilled_from"]["transfer_multiplier"] == 0
