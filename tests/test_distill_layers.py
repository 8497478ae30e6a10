"""Distillation beyond logits (issue 30): cached teacher outputs, ensembles, intermediate layers, the student's
own schedule, and --resume across them. Tiny random models; seconds each."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import verticals
from safetensors import safe_open
from transformers import BertConfig, BertModel
from verticals.backbones.collate import Collator
from verticals.backbones.layer_distill import LayerDistiller, parse_layer_map, pooled_states
from verticals.backbones.loading import load_backbone
from verticals.backbones.model import distillation_loss
from verticals.bundles.bundle import digest
from verticals.distill import distill
from verticals.errors import ConfigError
from verticals.tasks.distillation import label_order
from verticals.tasks.teacher_outputs import TeacherLogitsCache
from verticals.tasks.text_classification import TextClassificationTask
from verticals.testing import make_tiny_backbone

from .conftest import WORDS, run_cli, text_rows, write_csv

FAST = ["training.epochs=2", "training.batch_size=8", "training.learning_rate=0.003"]
REVERSED = sorted(WORDS, reverse=True)


@pytest.fixture(scope="module")
def teachers(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> dict[str, Path]:
    """Two teachers of one task with different label orders (and seeds), one with another label set."""
    root = tmp_path_factory.mktemp("teachers")
    train = write_csv(root / "train.csv", text_rows(16, 0))
    validation = write_csv(root / "validation.csv", text_rows(4, 1))
    verticals.train("text-classification", train, validation=validation, output=root / "a",
                    overrides=[*FAST, "training.epochs=6"], backbone=str(tiny_backbone))
    verticals.train("text-classification", train, validation=validation, output=root / "b",
                    config={"labels": REVERSED}, overrides=[*FAST, "training.epochs=6", "training.seed=7"],
                    backbone=str(tiny_backbone))
    two = [row for row in text_rows(8, 0) if row["label"] != "account"]
    verticals.train("text-classification", write_csv(root / "two.csv", two), output=root / "two-labels",
                    overrides=["training.epochs=1"], backbone=str(tiny_backbone))
    return {"a": root / "a", "b": root / "b", "two": root / "two-labels"}


@pytest.fixture()
def teacher_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the teacher forwards of distillation: the computations the cache could not spare (distill
    routes every teacher's predict_logits through its cache; the student's own predictions do not count)."""
    calls: list[int] = []
    real = TeacherLogitsCache.logits

    def counted(self, features, compute):  # type: ignore[no-untyped-def]
        def forward():  # type: ignore[no-untyped-def]
            calls.append(len(features))
            return compute()
        return real(self, features, forward)

    monkeypatch.setattr(TeacherLogitsCache, "logits", counted)
    return calls


# ---- teacher-output cache ---------------------------------------------------------------------------------
def test_cache_reads_what_it_wrote_and_refuses_another_teachers_file(tmp_path: Path) -> None:
    features = [{"input_ids": [101, 7, 102]}, {"input_ids": [101, 8, 9, 102]}]
    calls: list[int] = []

    def compute() -> list[np.ndarray]:
        calls.append(1)
        return [np.array([0.5, -1.0, 2.0], np.float32), np.array([1.0, 0.0, -3.0], np.float32)]

    cache = TeacherLogitsCache(tmp_path, "a" * 64)
    first = cache.logits(features, compute)
    again = cache.logits(features, compute)
    assert len(calls) == 1 and all(np.array_equal(x, y) for x, y in zip(first, again))
    path = next(tmp_path.glob("*.safetensors"))
    with safe_open(str(path), framework="np") as handle:
        assert handle.metadata()["teacher_digest"] == "a" * 64  # safetensors, keyed inside too
    # another teacher: its own file, computed
    TeacherLogitsCache(tmp_path, "b" * 64).logits(features, compute)
    assert len(calls) == 2
    # a teacher whose digest shares the file name's 16-character prefix: the full digest inside decides
    other = TeacherLogitsCache(tmp_path, "a" * 16 + "c" * 48)
    assert other.path("x" * 64).name.startswith(path.name.split("-")[0])
    other.logits(features, compute)
    assert len(calls) == 3
    # other inputs: computed
    cache.logits([{"input_ids": [101, 5, 102]}], lambda: [np.zeros(3, np.float32)])
    assert cache.misses == 2 and cache.hits == 1
    # per-token logits (a tagger) round-trip with their lengths
    tagger = TeacherLogitsCache(tmp_path / "t", "d" * 64)
    rows = [np.arange(6, dtype=np.float32).reshape(3, 2), np.ones((4, 2), np.float32)]
    tagger.logits(features, lambda: rows)
    back = tagger.logits(features, lambda: [])
    assert [r.shape for r in back] == [(3, 2), (4, 2)] and np.array_equal(back[0], rows[0])


def test_rerun_reuses_teacher_outputs_and_a_new_teacher_recomputes(teachers: dict[str, Path], tmp_path: Path,
                                                                    teacher_calls: list[int]) -> None:
    teacher = tmp_path / "teacher"
    shutil.copytree(teachers["a"], teacher)
    train = write_csv(tmp_path / "train.csv", text_rows(6, 2))
    student = str(make_tiny_backbone(tmp_path / "student-bert", seed=1, layers=1, hidden_size=16))
    run = {"output": tmp_path / "s", "backbone": student, "overrides": FAST, "unlabeled": ["my invoice and bill"]}
    distill(teacher, train, **run)
    assert len(teacher_calls) == 1, "one teacher forward over training + unlabelled texts"
    assert list((tmp_path / "s.teacher-outputs").glob("*.safetensors"))
    distill(teacher, train, **run, overwrite=True)
    assert len(teacher_calls) == 1, "a rerun reads the cached outputs"
    # the teacher at the same path is replaced by another bundle: its digest differs, so it is asked again
    shutil.rmtree(teacher)
    shutil.copytree(teachers["b"], teacher)
    distill(teacher, train, **run, overwrite=True)
    assert len(teacher_calls) == 2
    info = json.loads((tmp_path / "s" / "bundle.json").read_text(encoding="utf-8"))
    assert info["model"]["distilled_from"]["teacher_digest"] == digest(teachers["b"])


# ---- ensemble ---------------------------------------------------------------------------------------------
def test_label_order_aligns_by_name_and_refuses_other_sets() -> None:
    assert label_order(["c", "a", "b"], ["a", "b", "c"]) == [1, 2, 0]
    with pytest.raises(ConfigError, match="one label set"):
        label_order(["a", "b"], ["a", "b", "c"])


def test_ensemble_of_teachers_with_different_label_orders(teachers: dict[str, Path], tmp_path: Path) -> None:
    a, b = verticals.load(teachers["a"]), verticals.load(teachers["b"])
    assert a.labels != b.labels and sorted(a.labels) == sorted(b.labels)
    train = write_csv(tmp_path / "train.csv", text_rows(6, 2))
    student = distill([teachers["a"], teachers["b"]], train, output=tmp_path / "s", alpha=1.0,
                      backbone=str(make_tiny_backbone(tmp_path / "student-bert", seed=1, layers=1)),
                      overrides=[*FAST, "training.epochs=6"])
    recorded = student.info.model["distilled_from"]["teachers"]
    assert [t["digest"] for t in recorded] == [digest(teachers["a"]), digest(teachers["b"])]
    assert student.labels == a.labels
    # the averaged target is in the student's order: the student agrees with what both teachers say
    texts = [row["text"] for row in text_rows(6, 4)]
    both = [x.label for x, y in zip(a.predict(texts), b.predict(texts)) if x.label == y.label]
    mine = [p.label for p, x, y in zip(verticals.load(tmp_path / "s").predict(texts), a.predict(texts),
                                        b.predict(texts)) if x.label == y.label]
    assert both and sum(m == t for m, t in zip(mine, both)) / len(both) >= 0.6


def test_cli_refuses_an_ensemble_with_another_label_set(teachers: dict[str, Path], tmp_path: Path) -> None:
    train = write_csv(tmp_path / "train.csv", text_rows(4, 2))
    result = run_cli("distill", "--teacher", str(teachers["a"]), "--teacher", str(teachers["two"]),
                     "--train", str(train), "--output", str(tmp_path / "s"))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "one label set" in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "s").exists()
    result = run_cli("distill", str(teachers["a"]), "--train", str(train), "--output", str(tmp_path / "s"),
                     "--layer-map", "1:2")
    assert result.returncode == 2 and "--layer-map" in result.stderr, result.stderr


# ---- intermediate layers ----------------------------------------------------------------------------------
def _bert(hidden: int, layers: int, heads: int, seed: int) -> BertModel:
    torch.manual_seed(seed)
    return BertModel(BertConfig(vocab_size=100, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                                intermediate_size=hidden * 2, max_position_embeddings=64))


@pytest.mark.parametrize(("hidden_weight", "attention_weight"), [(1.0, 0.0), (0.0, 1.0), (1.0, 1.0)])
def test_layer_losses_with_mismatched_widths_are_finite_and_decrease(hidden_weight: float,
                                                                     attention_weight: float) -> None:
    teacher, student = _bert(64, 4, 4, 0), _bert(32, 2, 2, 1)  # other widths, depths and head counts
    pairs = parse_layer_map("auto", 2, 4)
    assert pairs == [(1, 2), (2, 4)]
    distiller = LayerDistiller(student, teacher, pairs, hidden_weight=hidden_weight, attention_weight=attention_weight)
    assert distiller.projections[0].weight.shape == (64, 32)
    ids = torch.randint(1, 100, (4, 12))
    mask = torch.ones_like(ids)
    mask[2:, 9:] = 0  # padding is ignored
    params = [*student.parameters(), *distiller.parameters()]
    assert not any(p.requires_grad for p in teacher.parameters())
    optimizer = torch.optim.Adam(params, lr=3e-3)
    losses = []
    for _ in range(8):
        distiller.begin()
        hidden = student(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
        loss = distiller.loss(hidden, mask, {"input_ids": ids, "attention_mask": mask})
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(np.isfinite(losses)) and losses[0] > 0
    assert losses[-1] < losses[0], losses
    distiller.close()
    assert not distiller._hooks


def test_attention_relations_from_a_teacher_whose_vocabulary_numbers_the_same_pieces_otherwise(
        tiny_backbone: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """mpnet-base numbers BERT's uncased wordpieces otherwise ([CLS] = 0, not 101) and masks with ``<mask>``,
    yet splits every text as MiniLM does, so attention relations line up position by position: comparing ids
    refused that pair, and the transfer set's ``[MASK]`` reached the relations' teacher as the three words
    ``[ mask ]`` (misaligned). Soft targets keep the default ``--teacher-mask student``. A tokenizer that splits
    the training texts otherwise is still refused before training, with exit 2."""
    train = write_csv(tmp_path / "train.csv", text_rows(6, 2))
    shifted = make_tiny_backbone(tmp_path / "shifted", seed=3, mpnet_like=True)
    verticals.train("text-classification", train, output=tmp_path / "teacher", overrides=FAST, backbone=str(shifted))
    read: dict[str, list[str]] = {"[MASK]": [], "<mask>": []}  # texts each tokenizer encoded, by its mask token
    encode = TextClassificationTask.encode

    def spied(self, records, *, with_labels):  # type: ignore[no-untyped-def]
        read[self.tokenizer_.mask_token] += [record.text for record in records]
        return encode(self, records, with_labels=with_labels)

    monkeypatch.setattr(TextClassificationTask, "encode", spied)
    student = distill(tmp_path / "teacher", train, output=tmp_path / "s", backbone=str(tiny_backbone),
                      attention_weight=1.0, transfer_multiplier=2, epochs=1, overrides=["training.batch_size=8"])
    recorded = student.info.model["distilled_from"]
    assert recorded["attention_weight"] == 1.0 and recorded["transfer_records"] > 0, recorded
    assert any("[MASK]" in text for text in read["[MASK]"]), "the student reads its transfer set's masks"
    teacher_read = read["<mask>"]
    assert any("<mask>" in text for text in teacher_read), "relations: the teacher reads its own mask token"
    assert any("[MASK]" in text for text in teacher_read), "soft targets: as the student reads (--teacher-mask)"
    monkeypatch.undo()
    assert len(verticals.load(tmp_path / "s").predict(["my invoice"])) == 1

    split = make_tiny_backbone(tmp_path / "split", seed=3, without_pieces=("bill", "price"))  # split otherwise
    verticals.train("text-classification", train, output=tmp_path / "teacher2", overrides=FAST, backbone=str(split))
    result = run_cli("distill", str(tmp_path / "teacher2"), "--train", str(train), "--output", str(tmp_path / "s2"),
                     "--backbone", str(tiny_backbone), "--attention-weight", "1")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "--attention-weight" in result.stderr and "into different tokens" in result.stderr, result.stderr
    assert not (tmp_path / "s2").exists()


def test_token_and_text_records_reach_the_teacher_with_the_mask_token_teacher_mask_names() -> None:
    """A tagger's transfer set masks whole words. With teacher_mask "own" the teacher gets its own mask word,
    tags stay as they were, and records without the student's mask token are passed through as they are; by
    default ("student", the measured better student) it reads the records as the student does."""
    from types import SimpleNamespace

    from verticals.tasks.distillation import as_teacher_reads, with_teachers_mask
    from verticals.tasks.text_classification import TextRecord
    from verticals.tasks.token_classification import TokenRecord
    from verticals.tasks.transformer import TransformerTask

    assert TransformerTask.distill_teacher_mask == "student"
    student = SimpleNamespace(mask_token=lambda: "[MASK]", distill_teacher_mask="own")
    teacher = SimpleNamespace(mask_token=lambda: "<mask>")
    plain = TextRecord(text="my invoice")
    records = [TokenRecord(tokens=["the", "[MASK]", "disease"], tags=["O", "B-Disease", "I-Disease"]),
               TextRecord(text="my [MASK] and the [MASK]"), plain]
    tokens, text, same = as_teacher_reads(student, teacher, records)
    assert tokens.tokens == ["the", "<mask>", "disease"] and tokens.tags == ["O", "B-Disease", "I-Disease"]
    assert text.text == "my <mask> and the <mask>" and same is plain
    assert records[0].tokens[1] == "[MASK]", "the student's own records are left alone"
    assert as_teacher_reads(student, student, records) == records
    assert with_teachers_mask(student, teacher, records)[1].text == text.text
    student.distill_teacher_mask = "student"
    assert as_teacher_reads(student, teacher, records) == records
    assert with_teachers_mask(student, teacher, records)[1].text == text.text, "attention relations: always own"


def test_pooled_teacher_states_give_the_loss_of_a_live_teacher_forward() -> None:
    """Hidden-state distillation from states computed once (batched, length-sorted, each batch padded to its
    own longest) equals the loss computed with the teacher running beside the student."""
    teacher, student = _bert(64, 4, 4, 0), _bert(32, 2, 2, 1)
    teacher.eval()
    pairs = parse_layer_map("auto", 2, 4)
    distiller = LayerDistiller(student, teacher, pairs, hidden_weight=1.0, attention_weight=0.0)
    generator = torch.Generator().manual_seed(3)
    lengths = [12, 9, 5, 12]
    features = [{"input_ids": torch.randint(1, 100, (n,), generator=generator).tolist(), "attention_mask": [1] * n}
                for n in lengths]
    pooled = pooled_states(teacher, features, Collator(0), [t for _, t in pairs], batch_size=3)
    assert [p.shape for p in pooled] == [(2, 64)] * 4
    batch = Collator(0)(features)
    hidden = student(**batch, output_hidden_states=True).hidden_states
    live = distiller.loss(hidden, batch["attention_mask"], dict(batch))
    cached = distiller.loss(hidden, batch["attention_mask"], None, torch.from_numpy(np.stack(pooled)))
    assert cached.item() == pytest.approx(live.item(), rel=1e-4) and live.item() > 0


def test_hidden_states_alone_run_no_teacher_forward_while_the_student_trains(
        teachers: dict[str, Path], tmp_path: Path, teacher_calls: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    """--hidden-weight without --attention-weight: the teacher's pooled states are computed once and cached
    beside its logits (a rerun computes nothing); training steps read them instead of running the teacher."""
    steps: list[bool] = []
    real = LayerDistiller.loss

    def recorded(self, student_hidden, attention_mask, teacher_inputs=None, teacher_pooled=None):  # type: ignore[no-untyped-def]
        steps.append(teacher_pooled is not None and teacher_inputs is None)
        return real(self, student_hidden, attention_mask, teacher_inputs, teacher_pooled)

    monkeypatch.setattr(LayerDistiller, "loss", recorded)
    train = write_csv(tmp_path / "train.csv", text_rows(6, 2))
    student_bert = str(make_tiny_backbone(tmp_path / "student-bert", seed=1, layers=1, hidden_size=16))
    run = {"output": tmp_path / "s", "backbone": student_bert, "hidden_weight": 1.0, "overrides": FAST}
    distill(teachers["a"], train, **run)
    assert steps and all(steps), "every training step used the precomputed states"
    assert len(teacher_calls) == 2, "one teacher pass for the logits, one for the pooled states"
    assert len(list((tmp_path / "s.teacher-outputs").glob("*-pooled-*.safetensors"))) == 1
    distill(teachers["a"], train, **run, overwrite=True)
    assert len(teacher_calls) == 2, "a rerun reads both from the cache"
    assert verticals.load(tmp_path / "s").task.model_.layer_distiller is None


def test_layer_map_option_is_checked() -> None:
    assert parse_layer_map("1:2,2:4", 2, 4) == [(1, 2), (2, 4)]
    with pytest.raises(ConfigError, match="out of range"):
        parse_layer_map("3:4", 2, 4)
    with pytest.raises(ConfigError, match="STUDENT:TEACHER"):
        parse_layer_map("2-4", 2, 4)


def test_student_temperature_is_separate_from_the_teachers() -> None:
    probs = torch.tensor([[0.7, 0.2, 0.1]])
    ce = torch.nn.CrossEntropyLoss()
    same = distillation_loss(torch.log(probs), probs, None, ce, 2.0, 1.0, 2.0)
    sharper = distillation_loss(torch.log(probs), probs, None, ce, 2.0, 1.0, 1.0)
    assert same.item() == pytest.approx(0.0, abs=1e-6) and sharper.item() > 1e-3


def test_layer_distillation_resumes_with_cached_teacher_outputs(teachers: dict[str, Path], tmp_path: Path,
                                                                 teacher_calls: list[int]) -> None:
    """Hidden + attention losses from a 32-wide teacher into a 16-wide student, the student's own schedule,
    then an interrupted run resumed: the teacher outputs come from the cache, training continues, and the
    student bundle is a plain bundle (no projection) that loads and predicts."""
    train = write_csv(tmp_path / "train.csv", text_rows(6, 2))
    student_bert = str(make_tiny_backbone(tmp_path / "student-bert", seed=1, layers=1, hidden_size=16))
    common = {"output": tmp_path / "s", "backbone": student_bert, "hidden_weight": 1.0, "attention_weight": 0.5,
              "layer_map": "1:2", "learning_rate": 0.003, "student_temperature": 1.0,
              "overrides": ["training.batch_size=8", "training.keep_checkpoints=true"]}
    distill(teachers["a"], train, epochs=1, **common)
    assert len(teacher_calls) == 1
    resumed = distill(teachers["a"], train, epochs=2, resume=True, overwrite=True, **common)
    assert len(teacher_calls) == 1, "--resume reads the cached teacher outputs"
    assert resumed.task.trainer_.epochs_run_ == pytest.approx(2.0)
    assert [entry["epoch"] for entry in resumed.info.history] == [2]
    info = json.loads((tmp_path / "s" / "bundle.json").read_text(encoding="utf-8"))
    recorded = info["model"]["distilled_from"]
    assert (recorded["hidden_weight"], recorded["attention_weight"], recorded["layer_map"]) == (1.0, 0.5, "1:2")
    assert recorded["student_temperature"] == 1.0 and info["config"]["training"]["epochs"] == 2
    assert info["config"]["training"]["learning_rate"] == 0.003
    plain = make_tiny_backbone(tmp_path / "plain", seed=1, layers=1, hidden_size=16)
    loaded = verticals.load(tmp_path / "s")
    assert loaded.task.model_.layer_distiller is None
    head = 16 * 3 + 3  # hidden -> 3 labels
    backbone = sum(p.numel() for p in load_backbone(str(plain)).parameters())
    assert info["model"]["parameters"] <= backbone + head + 16 * 16 + 16, "no 16 -> 32 projection in the bundle"
    assert len(loaded.predict(["my invoice"])) == 1


def test_resume_with_an_ensemble_a_transfer_set_and_cached_layer_states(teachers: dict[str, Path], tmp_path: Path,
                                                                         teacher_calls: list[int]) -> None:
    """Everything at once: two teachers with different label orders, a generated transfer set and hidden-state
    distillation, interrupted after epoch 1 and resumed to 2: every teacher output (both teachers' logits, the
    pooled states) comes from the cache, the transfer set is generated again identically, training continues."""
    train = write_csv(tmp_path / "train.csv", text_rows(6, 2))
    student_bert = str(make_tiny_backbone(tmp_path / "student-bert", seed=1, layers=1, hidden_size=16))
    common = {"output": tmp_path / "s", "backbone": student_bert, "hidden_weight": 1.0, "transfer_multiplier": 2,
              "learning_rate": 0.003, "overrides": ["training.batch_size=8", "training.keep_checkpoints=true"]}
    distill([teachers["a"], teachers["b"]], train, epochs=1, **common)
    assert len(teacher_calls) == 3, "logits of each teacher, pooled states of the first, once each"
    resumed = distill([teachers["a"], teachers["b"]], train, epochs=2, resume=True, overwrite=True, **common)
    assert len(teacher_calls) == 3, "--resume recomputes no teacher output"
    assert resumed.task.trainer_.epochs_run_ == pytest.approx(2.0)
    assert [entry["epoch"] for entry in resumed.info.history] == [2]
    recorded = resumed.info.model["distilled_from"]
    assert [t["digest"] for t in recorded["teachers"]] == [digest(teachers["a"]), digest(teachers["b"])]
    assert recorded["transfer_multiplier"] == 2 and 0 < recorded["transfer_records"] <= 2 * 18  # duplicates dropped
    assert resumed.task.model_.layer_distiller is None and len(resumed.predict(["my invoice"])) == 1


def test_a_file_we_did_not_write_at_the_cache_path_is_never_replaced(tmp_path: Path) -> None:
    features = [{"input_ids": [1, 2, 3]}, {"input_ids": [4, 5]}]
    cache = TeacherLogitsCache(tmp_path / "mine", "a" * 64)
    cache.logits(features, lambda: [np.zeros(3, np.float32), np.ones(3, np.float32)])
    name = next((tmp_path / "mine").glob("*.safetensors")).name
    theirs = TeacherLogitsCache(tmp_path / "theirs", "a" * 64)
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / name).write_text("a user's file", encoding="utf-8")
    got = theirs.logits(features, lambda: [np.zeros(3, np.float32), np.ones(3, np.float32)])
    assert len(got) == 2 and (tmp_path / "theirs" / name).read_text(encoding="utf-8") == "a user's file"
