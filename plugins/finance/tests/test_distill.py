"""finance.sentiment students learn from a x2 transfer set unless told otherwise (issue 30: on PhraseBank's full
training split it beat logits only on validation for each of 3 seeds)."""

from pathlib import Path

from finance_testdata import write_phrasebank
from verticals import train
from verticals.distill import distill
from verticals.testing import make_tiny_backbone

FAST = ["training.epochs=1", "training.batch_size=8"]


def test_sentiment_student_defaults_to_the_measured_x2_transfer_set(tmp_path: Path) -> None:
    backbone = str(make_tiny_backbone(tmp_path / "tiny"))
    data = write_phrasebank(tmp_path / "train.txt", n=24)
    held_out = {"validation": write_phrasebank(tmp_path / "validation.txt", n=9, seed=1)}  # no hold-out from data
    train("finance.sentiment", data, output=tmp_path / "teacher", backbone=backbone, overrides=FAST, **held_out)
    student = distill(tmp_path / "teacher", data, output=tmp_path / "student", backbone=backbone, overrides=FAST,
                      **held_out)
    recorded = student.info.model["distilled_from"]
    assert recorded["transfer_multiplier"] == 2 and recorded["transfer_records"] == 2 * 24
    plain = distill(tmp_path / "teacher", data, output=tmp_path / "plain", backbone=backbone, overrides=FAST,
                    transfer_multiplier=0, **held_out)
    assert plain.info.model["distilled_from"]["transfer_multiplier"] == 0
