"""Distillation: a student bundle learns a teacher bundle's predictions (tiny models, seconds)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import verticals
from verticals import api
from verticals.backbones.model import distillation_loss
from verticals.bundles.bundle import digest
from verticals.distill import distill
from verticals.testing import make_tiny_backbone

from .conftest import run_cli, text_rows, write_csv

TEACHER_SET = ["training.epochs=8", "training.batch_size=8", "training.learning_rate=0.003"]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> Path:
    root = tmp_path_factory.mktemp("teacher")
    train = write_csv(root / "train.csv", text_rows(16, 0))
    validation = write_csv(root / "validation.csv", text_rows(4, 1))
    verticals.train("text-classification", train, validation=validation, output=root / "bundle",
                    overrides=TEACHER_SET, backbone=str(tiny_backbone))
    return root / "bundle"


def test_student_learns_from_teacher_and_records_its_digest(teacher: Path, tmp_path: Path) -> None:
    student_backbone = make_tiny_backbone(tmp_path / "student-bert", seed=1, layers=1)
    train = write_csv(tmp_path / "train.csv", text_rows(8, 2))  # fewer labelled records than the teacher had
    unlabeled = [row["text"] for row in text_rows(8, 3)]
    student = distill(teacher, train, output=tmp_path / "student", unlabeled=unlabeled,
                      backbone=str(student_backbone), overrides=TEACHER_SET, temperature=2.0, alpha=0.7)
    info = json.loads((tmp_path / "student" / "bundle.json").read_text(encoding="utf-8"))
    recorded = info["model"]["distilled_from"]
    assert recorded["teacher_digest"] == digest(teacher)
    assert (recorded["temperature"], recorded["alpha"], recorded["unlabeled_records"]) == (2.0, 0.7, 24)
    assert recorded["transfer_multiplier"] == 0  # sentence labels: logits only was the best student measured
    assert info["model"]["backbone"]["source"] == str(student_backbone)
    loaded = verticals.load(tmp_path / "student")
    assert loaded.labels == verticals.load(teacher).labels
    texts = [row["text"] for row in text_rows(10, 4)]
    agree = [a.label == b.label for a, b in zip(loaded.predict(texts), verticals.load(teacher).predict(texts))]
    assert sum(agree) / len(agree) >= 0.6, "3 labels: chance agreement is about 0.33"
    assert student.info.metrics["validation"]["accuracy"] >= 0.6


def test_with_alpha_1_the_student_follows_the_teacher_not_the_labels(teacher: Path, tmp_path: Path) -> None:
    """Gold labels rotated (billing -> shipping -> account -> billing): a student that learnt from the labels
    would disagree with the teacher almost always; with alpha=1 it learns the teacher's answers only."""
    rotate = {"billing": "shipping", "shipping": "account", "account": "billing"}
    rows = [{**row, "label": rotate[row["label"]]} for row in text_rows(12, 5)]
    train = write_csv(tmp_path / "rotated.csv", rows)
    validation = write_csv(tmp_path / "validation.csv", text_rows(4, 1))
    distill(teacher, train, output=tmp_path / "student", validation=validation, alpha=1.0,
            backbone=str(make_tiny_backbone(tmp_path / "student-bert", seed=1, layers=1)), overrides=TEACHER_SET)
    texts = [row["text"] for row in text_rows(10, 6)]
    pairs = zip(verticals.load(tmp_path / "student").predict(texts), verticals.load(teacher).predict(texts))
    agree = [a.label == b.label for a, b in pairs]
    assert sum(agree) / len(agree) >= 0.6


def test_loss_matches_the_teacher_when_the_student_agrees() -> None:
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    same = distillation_loss(torch.log(probs), probs, None, torch.nn.CrossEntropyLoss(), 2.0, 1.0)
    other = distillation_loss(torch.log(probs.flip(-1)), probs, None, torch.nn.CrossEntropyLoss(), 2.0, 1.0)
    assert same.item() == pytest.approx(0.0, abs=1e-6) and other.item() > 0.1
    # unlabelled rows (-100) only: the gold term is left out instead of turning the loss into NaN
    unlabelled = distillation_loss(torch.log(probs), probs, torch.tensor([-100, -100]),
                                   torch.nn.CrossEntropyLoss(ignore_index=-100), 2.0, 0.5)
    assert torch.isfinite(unlabelled)


def test_cli_refuses_bad_options_and_non_bundles(tmp_path: Path, text_data) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("distill", str(tmp_path / "nothing"), "--train", str(text_data["train"]),
                     "--output", str(tmp_path / "s"))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    result = run_cli("distill", str(tmp_path / "nothing"), "--train", str(text_data["train"]),
                     "--output", str(tmp_path / "s"), "--alpha", "1.5")
    assert result.returncode == 2 and "--alpha" in result.stderr, result.stderr
    assert not (tmp_path / "s").exists()
    result = run_cli("distill", str(tmp_path / "nothing"), "--train", str(text_data["train"]),
                     "--output", str(tmp_path / "s"), "--teacher-mask", "theirs")
    assert result.returncode == 2 and "--teacher-mask" in result.stderr, result.stderr
    with pytest.raises(verticals.ConfigError, match="teacher_mask"):
        distill(tmp_path / "nothing", text_data["train"], output=tmp_path / "s", teacher_mask="theirs")
    assert not (tmp_path / "s").exists()


def test_token_student_follows_the_teacher_per_word(tmp_path: Path, tiny_backbone: Path, token_data) -> None:  # type: ignore[no-untyped-def]
    """PER and LOC swapped in the student's gold tags: with alpha=1 it tags as the teacher does."""
    teacher = tmp_path / "teacher"
    verticals.train("token-classification", token_data["train"], validation=token_data["validation"],
                    output=teacher, backbone=str(tiny_backbone), overrides=TEACHER_SET)
    swapped = tmp_path / "swapped.conll"
    text = token_data["train"].read_text(encoding="utf-8")
    swapped.write_text(text.replace("PER", "TMP").replace("LOC", "PER").replace("TMP", "LOC"), encoding="utf-8")
    distill(teacher, swapped, output=tmp_path / "student", validation=token_data["validation"], alpha=1.0,
            unlabeled=["Carol Smith flew to Oslo ."],
            backbone=str(make_tiny_backbone(tmp_path / "student-bert", seed=1, layers=1)), overrides=TEACHER_SET)
    info = json.loads((tmp_path / "student" / "bundle.json").read_text(encoding="utf-8"))
    assert info["model"]["distilled_from"]["teacher_digest"] == digest(teacher)
    texts = ["Alice Smith flew to Berlin .", "Dave Smith flew to Madrid ."]
    student_tags = [p.tags for p in verticals.load(tmp_path / "student").predict(texts)]
    teacher_tags = [p.tags for p in verticals.load(teacher).predict(texts)]
    pairs = [(s, t) for st, tt in zip(student_tags, teacher_tags) for s, t in zip(st, tt)]
    assert sum(s == t for s, t in pairs) / len(pairs) >= 0.8, (student_tags, teacher_tags)


@pytest.mark.parametrize(("given", "expected"), [
    ({}, (6.0, 300)),  # twice the core's 3 epochs; min_steps as a fine-tune resolves it (small-data stretch)
    ({"overrides": ["training.epochs=2"]}, (2.0, None)),  # the user's epochs are literal
    ({"overrides": {"training": {"epochs": 2}}}, (2.0, None)),
    ({"config": {"training": {"epochs": 4}}}, (4.0, None)),
    ({"epochs": 5.0}, (5.0, None)),
])
def test_token_students_get_twice_the_epochs_unless_given(given: dict[str, Any], expected: tuple[float, int | None],
                                                          tmp_path: Path, tiny_backbone: Path,
                                                          token_data: dict[str, Path],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """NCBI-disease (issue 30): students with twice the fine-tune's epochs won on devel, so a token task's
    student gets twice the task's budget unless the user chose one (--epochs, or training.epochs anywhere)."""
    teacher = tmp_path / "teacher"
    verticals.train("token-classification", token_data["train"], output=teacher, backbone=str(tiny_backbone),
                    overrides=["training.epochs=1"])
    trained: list[Any] = []
    monkeypatch.setattr(api, "train_task", lambda student, *args, **kwargs: trained.append(student))
    distill(teacher, token_data["train"], output=tmp_path / "student", backbone=str(tiny_backbone), **given)
    training = trained[0].config.training
    assert (training.epochs, training.min_steps) == expected
    assert trained[0].distillation_info_["epoch_factor"] == (1.0 if given else 2.0)


def test_cli_says_the_epoch_budget_it_chose(tmp_path: Path, tiny_backbone: Path, token_data: dict[str, Path]) -> None:
    teacher = tmp_path / "teacher"
    verticals.train("token-classification", token_data["train"], output=teacher, backbone=str(tiny_backbone),
                    overrides=["training.epochs=1"])
    common = [str(teacher), "--train", str(token_data["train"]), "--backbone", str(tiny_backbone)]
    # min_steps off (not the epochs): the budget is the task's 3 epochs, twice
    chosen = run_cli("distill", *common, "--output", str(tmp_path / "a"), "--set", "training.min_steps=null")
    assert chosen.returncode == 0, chosen.stderr
    assert "epoch budget 6: 2x the task's" in chosen.stdout
    given = run_cli("distill", *common, "--output", str(tmp_path / "b"), "--epochs", "1")
    assert given.returncode == 0 and "epoch budget" not in given.stdout, given.stderr


def test_text_students_keep_the_tasks_epochs(teacher: Path, tmp_path: Path, tiny_backbone: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    trained: list[Any] = []
    monkeypatch.setattr(api, "train_task", lambda student, *args, **kwargs: trained.append(student))
    distill(teacher, write_csv(tmp_path / "train.csv", text_rows(8, 2)), output=tmp_path / "student",
            backbone=str(tiny_backbone))
    fine_tune = api.build_task("text-classification")[0].config.training
    assert trained[0].config.training.epochs == fine_tune.epochs


def test_an_interrupted_distillation_resumes_from_its_checkpoints(teacher: Path, tmp_path: Path) -> None:
    """A long distillation (a base-size teacher on CPU) must not start over after an interruption: the
    student continues from its last complete epoch checkpoint, as ``verticals train --resume`` does."""
    train = write_csv(tmp_path / "train.csv", text_rows(8, 2))
    student_backbone = str(make_tiny_backbone(tmp_path / "student-bert", seed=1, layers=1))
    kept = TEACHER_SET[1:] + ["training.epochs=2", "training.keep_checkpoints=true"]
    distill(teacher, train, output=tmp_path / "student", backbone=student_backbone, overrides=kept)
    assert sorted((tmp_path / "student.checkpoints").glob("checkpoint-*")), "per-epoch checkpoints are kept"
    resumed = distill(teacher, train, output=tmp_path / "student", backbone=student_backbone,
                      overrides=TEACHER_SET[1:] + ["training.epochs=3"], resume=True, overwrite=True)
    # resumed after epoch 2 of 3: one more epoch is trained, the first two are not repeated
    assert resumed.task.trainer_.epochs_run_ == pytest.approx(3.0)
    assert [entry["epoch"] for entry in resumed.info.history] == [3]
    assert resumed.info.model["distilled_from"]["teacher_digest"] == digest(teacher)


@pytest.mark.parametrize("changed", [{"temperature": 4.0}, {"alpha": 0.9}, {"teacher_mask": "own"},
                                     {"transfer_multiplier": 1}, {"unlabeled": ["a question nobody asked"]},
                                     {"teacher": "other"}], ids=lambda c: next(iter(c)))
@pytest.mark.filterwarnings("ignore:validation accuracy")  # the one-epoch other teacher learns nothing
def test_resume_is_refused_when_the_distillation_differs(teacher: Path, tmp_path: Path, tiny_backbone: Path,
                                                          changed: dict) -> None:
    """The checkpoints hold weights learnt from one teacher with one temperature, alpha, transfer set...:
    resuming them under other distillation options (or from another teacher) would write a bundle whose
    ``distilled_from`` describes a run that never happened, so it is refused as other data or options are."""
    train = write_csv(tmp_path / "train.csv", text_rows(8, 2))
    student_backbone = str(make_tiny_backbone(tmp_path / "student-bert", seed=1, layers=1))
    kept = TEACHER_SET[1:] + ["training.epochs=1", "training.keep_checkpoints=true"]
    first = {"temperature": 2.0, "alpha": 0.5, "teacher_mask": "student", "transfer_multiplier": 0}
    distill(teacher, train, output=tmp_path / "student", backbone=student_backbone, overrides=kept, **first)
    if "teacher" in changed:  # the same task and labels, other weights: another digest
        other = tmp_path / "other-teacher"
        verticals.train("text-classification", train, output=other, backbone=str(tiny_backbone),
                        overrides=["training.epochs=1", "training.batch_size=8"])
        changed = {"teacher": other}
    options = {**first, **changed}
    with pytest.raises(verticals.ConfigError, match="other data, labels or options") as refused:
        distill(options.pop("teacher", teacher), train, output=tmp_path / "student", backbone=student_backbone,
                overrides=TEACHER_SET[1:] + ["training.epochs=2"], resume=True, overwrite=True, **options)
    assert "distillation." in str(refused.value), str(refused.value)
    # the same options resume
    resumed = distill(teacher, train, output=tmp_path / "student", backbone=student_backbone,
                      overrides=TEACHER_SET[1:] + ["training.epochs=2"], resume=True, overwrite=True, **first)
    assert [entry["epoch"] for entry in resumed.info.history] == [2]


def test_cli_distill_resume_flag(teacher: Path, tmp_path: Path) -> None:
    train = write_csv(tmp_path / "train.csv", text_rows(8, 2))
    result = run_cli("distill", str(teacher), "--train", str(train), "--output", str(tmp_path / "s"),
                     "--backbone", str(make_tiny_backbone(tmp_path / "student-bert", seed=1, layers=1)),
                     "--set", "training.epochs=1", "--resume", "--quiet")
    # nothing to resume from: a warning, then training from the start
    assert result.returncode == 0 and "no complete checkpoint" in result.stderr, result.stderr
    assert (tmp_path / "s" / "bundle.json").is_file()
