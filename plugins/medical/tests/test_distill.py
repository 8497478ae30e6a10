"""Distilling medical.ner, whose records are encoded in sliding windows: every window of the student gets the
teacher's per-word probabilities, merged over the teacher's own windows and tokenisation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import verticals
from verticals import api
from verticals.backbones.loading import load_tokenizer
from verticals.bundles.bundle import digest
from verticals.cli import main
from verticals.distill import distill
from verticals.testing import make_tiny_backbone

from .data import SENTENCES, write_conll

# windows of 10 subwords sharing 4: the longer sentences below span several windows
WINDOWS = ["training.max_length=12", "task.stride=4"]
TEACHER_SET = ["training.epochs=8", "training.batch_size=8", "training.learning_rate=0.003", *WINDOWS]
LONG = [(" ".join(a.split() + b.split()), " ".join(ta.split() + tb.split()))
        for (a, ta), (b, tb) in zip(SENTENCES, SENTENCES[1:] + SENTENCES[:1])]


def test_each_student_window_gets_the_teachers_merged_word_probabilities(tmp_path: Path, tiny_backbone: Path) -> None:
    write_conll(tmp_path / "train.conll", LONG, repeat=2)
    teacher = api.train("medical.ner", tmp_path / "train.conll", output=tmp_path / "teacher",
                        backbone=str(tiny_backbone), overrides=["training.epochs=1", *WINDOWS]).task
    # the student's windows differ from the teacher's (8 subwords sharing 2)
    student, _, _ = api.build_task("medical.ner", overrides=["training.max_length=10", "task.stride=2"])
    student.labels_ = list(teacher.labels_)
    student.tokenizer_ = load_tokenizer(make_tiny_backbone(tmp_path / "student-bert", seed=1, layers=1))
    records = teacher.read(tmp_path / "train.conll")
    features = student.encode(records, with_labels=True)
    assert len(features) > len(records), "the test needs records split into several windows"
    targets = student.soft_targets(teacher, records, features)
    expected = teacher.merged_word_probabilities(records, *teacher.predict_logits(records))
    for feature, rows in zip(features, targets, strict=True):
        assert rows.shape == (len(feature["input_ids"]), len(student.labels_))
        positions = {position for position, _, _ in feature["words"]}
        for position, word, _ in feature["words"]:
            np.testing.assert_allclose(rows[position], expected[feature["record"]][word], rtol=1e-6)
        assert all(np.isnan(rows[p]).all() for p in range(len(rows)) if p not in positions)


def test_medical_student_follows_the_teacher_across_windows(tmp_path: Path, tiny_backbone: Path) -> None:
    """Disease and Chemical swapped in the student's gold tags: with alpha=1 it tags as the teacher does."""
    train = write_conll(tmp_path / "train.conll", LONG, repeat=3)
    api.train("medical.ner", train, output=tmp_path / "teacher", backbone=str(tiny_backbone), overrides=TEACHER_SET)
    swapped = tmp_path / "swapped.conll"
    text = train.read_text(encoding="utf-8")
    swapped.write_text(text.replace("Disease", "TMP").replace("Chemical", "Disease").replace("TMP", "Chemical"),
                       encoding="utf-8")
    # validation on the teacher's tags: selecting the epoch on the swapped ones would favour the gold labels
    distill(tmp_path / "teacher", swapped, output=tmp_path / "student", validation=train, alpha=1.0,
            unlabeled=["Aspirin eased the migraine of patients with cystic fibrosis ."],
            backbone=str(make_tiny_backbone(tmp_path / "student-bert", seed=1, layers=1)),
            overrides=TEACHER_SET)
    info = json.loads((tmp_path / "student" / "bundle.json").read_text(encoding="utf-8"))
    assert info["model"]["distilled_from"]["teacher_digest"] == digest(tmp_path / "teacher")
    texts = [text for text, _ in LONG]
    student_tags = [p.tags for p in verticals.load(tmp_path / "student").predict(texts)]
    teacher_tags = [p.tags for p in verticals.load(tmp_path / "teacher").predict(texts)]
    pairs = [(s, t) for st, tt in zip(student_tags, teacher_tags) for s, t in zip(st, tt)]
    assert sum(s == t for s, t in pairs) / len(pairs) >= 0.8, (student_tags, teacher_tags)
    assert any(t != "O" for tags in teacher_tags for t in tags), "a teacher tagging everything 'O' proves nothing"


def test_cli_distills_medical_ner(tmp_path: Path, tiny_backbone: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    write_conll(tmp_path / "train.conll", repeat=2)
    api.train("medical.ner", tmp_path / "train.conll", output=tmp_path / "teacher", backbone=str(tiny_backbone),
              overrides=["training.epochs=1", "training.batch_size=8"])
    code = main(["distill", str(tmp_path / "teacher"), "--train", str(tmp_path / "train.conll"), "--output",
                 str(tmp_path / "student"), "--backbone", str(tiny_backbone), "--set", "training.epochs=1"])
    err = capsys.readouterr().err
    assert code == 0 and "Traceback" not in err, err
    assert verticals.load(tmp_path / "student").task_name == "medical.ner"


@pytest.mark.parametrize("teacher_mask", [None, "own"])
def test_a_teacher_with_another_mask_token_reads_the_mask_teacher_mask_names(
        tmp_path: Path, tiny_backbone: Path, monkeypatch: pytest.MonkeyPatch, teacher_mask: str | None) -> None:
    """The x2 transfer set (the token tasks' default) masks words with the student's [MASK]; a teacher whose
    mask token is <mask> (as mpnet-base's) reads [MASK] there by default (the measured better student) and
    <mask> with teacher_mask="own", while the student's windows keep [MASK] either way."""
    write_conll(tmp_path / "train.conll", LONG, repeat=2)
    teacher_bert = make_tiny_backbone(tmp_path / "teacher-bert", mpnet_like=True)
    api.train("medical.ner", tmp_path / "train.conll", output=tmp_path / "teacher", backbone=str(teacher_bert),
              overrides=["training.epochs=1", *WINDOWS])
    read: list[list[str]] = []
    real = verticals.tasks.TokenClassificationTask.predict_logits

    def spied(self, records, *args, **kwargs):  # type: ignore[no-untyped-def]
        if self.tokenizer_.mask_token == "<mask>":
            read.extend(record.tokens for record in records)
        return real(self, records, *args, **kwargs)

    monkeypatch.setattr(verticals.tasks.TokenClassificationTask, "predict_logits", spied)
    chosen = {} if teacher_mask is None else {"teacher_mask": teacher_mask}
    student = distill(tmp_path / "teacher", tmp_path / "train.conll", output=tmp_path / "student",
                      backbone=str(tiny_backbone), overrides=["training.epochs=1", *WINDOWS], **chosen)
    assert student.info.model["distilled_from"]["transfer_records"] > 0
    assert student.info.model["distilled_from"]["teacher_mask"] == (teacher_mask or "student")
    theirs, ours = ("<mask>", "[MASK]") if teacher_mask == "own" else ("[MASK]", "<mask>")
    assert any(theirs in tokens for tokens in read) and not any(ours in tokens for tokens in read)


def test_an_ensemble_of_taggers_averages_their_merged_word_probabilities(tmp_path: Path, tiny_backbone: Path) -> None:
    """Two medical.ner teachers (other seeds, other windows): every student window's target is the mean of the
    two teachers' per-word probabilities, each merged over its own windows; distil() records both."""
    from verticals.tasks.distillation import averaged_targets

    write_conll(tmp_path / "train.conll", LONG, repeat=2)
    paths = [tmp_path / "teacher-a", tmp_path / "teacher-b"]
    teachers = [api.train("medical.ner", tmp_path / "train.conll", output=path, backbone=str(tiny_backbone),
                          overrides=["training.epochs=1", f"training.seed={seed}", *window]).task
                for path, seed, window in zip(paths, (1, 2), (WINDOWS, ["training.max_length=14", "task.stride=3"]))]
    student, _, _ = api.build_task("medical.ner", overrides=["training.max_length=10", "task.stride=2"])
    student.labels_ = list(teachers[0].labels_)
    student.tokenizer_ = load_tokenizer(make_tiny_backbone(tmp_path / "student-bert", seed=1, layers=1))
    student.teacher = teachers
    records = teachers[0].read(tmp_path / "train.conll")
    features = student.encode(records, with_labels=True)
    words = [t.merged_word_probabilities(records, *t.predict_logits(records)) for t in teachers]
    assert not np.allclose(words[0][0], words[1][0]), "two identical teachers would not test the average"
    for feature, rows in zip(features, averaged_targets(student, records, features), strict=True):
        for position, word, _ in feature["words"]:
            np.testing.assert_allclose(rows[position], (words[0][feature["record"]][word]
                                                        + words[1][feature["record"]][word]) / 2, rtol=1e-5)
    distilled = distill(paths, tmp_path / "train.conll", output=tmp_path / "student", transfer_multiplier=0,
                        backbone=str(tiny_backbone), overrides=["training.epochs=1", *WINDOWS])
    recorded = distilled.info.model["distilled_from"]["teachers"]
    assert [t["digest"] for t in recorded] == [digest(path) for path in paths]
