"""Augmentation and transfer sets (verticals.data.augment, data.augment, distill --transfer-set): tiny data, seconds."""

from __future__ import annotations

import inspect
import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import verticals
from verticals.config import RunConfig
from verticals.data import augment
from verticals.data.augment import (
    EmbeddingNeighbours,
    augment_texts,
    augment_token_sentences,
    transfer_sentences,
    transfer_texts,
)
from verticals.tasks.text_classification import TextClassificationTask, TextRecord
from verticals.tasks.token_classification import BIO_TAG, repair_bio

from .conftest import FAST, run_cli, text_rows, write_csv

TEXTS = ["my card has not arrived yet", "how do I top up my account", "the refund is still pending today",
         "why was I charged twice for this", "please close my account now"]
VOCAB = {"[PAD]": 0, "[MASK]": 1, "card": 2, "cards": 3, "account": 4, "accounts": 5, "##ing": 6, "a": 7, "x1": 8}
WEIGHTS = np.array([[0, 0, 1], [0, 0, 1], [1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0.1, 0.9, 0], [1, 0, 0], [1, 0, 0],
                    [1, 0, 0]], dtype=np.float32)


def test_neighbours_are_whole_words_nearest_by_cosine() -> None:
    table = EmbeddingNeighbours.from_embeddings(VOCAB, WEIGHTS, ["card", "Account", "unknown"], k=2)
    assert table.lowercase  # no capitalised entry: an uncased vocabulary
    assert table.get("card")[0] == "cards" and table.get("account")[0] == "accounts"
    assert table.get("Card")[0] == "Cards"  # the word's case is kept
    # word pieces, special tokens, one-letter and non-alphabetic entries are never proposed
    assert not {"##ing", "ing", "[PAD]", "PAD", "a", "x1"} & {n for near in table.table.values() for n in near}
    assert table.get("unknown") == ()


def test_text_augmentation_is_deterministic_per_seed() -> None:
    first = augment_texts(TEXTS, copies=3, seed=7)
    assert first == augment_texts(TEXTS, copies=3, seed=7)
    assert first != augment_texts(TEXTS, copies=3, seed=8)
    assert len(first) > len(TEXTS) and all(text != TEXTS[i] for i, text in first)
    assert [i for i, _ in first] == sorted(i for i, _ in first)  # in source order


@pytest.mark.parametrize("operation", augment.TEXT_OPERATIONS)
def test_each_eda_operation_does_what_it_says(operation: str) -> None:
    neighbours = EmbeddingNeighbours({"card": ("cards",), "account": ("accounts",)}, lowercase=True)
    pool = [w for t in TEXTS for w in t.split()]
    for index, text in augment_texts(TEXTS, copies=2, operations=[operation], rate=0.3, seed=1,
                                     neighbours=neighbours):
        before, after = TEXTS[index].split(), text.split()
        if operation == "swap":
            assert Counter(before) == Counter(after)
        elif operation == "delete":
            assert 1 <= len(after) < len(before) and not Counter(after) - Counter(before)
        elif operation == "insert":
            assert len(after) > len(before) and set(Counter(after) - Counter(before)) <= set(pool)
        else:
            changed = [(b, a) for b, a in zip(before, after) if b != a]
            assert changed and all(a == neighbours.get(b)[0] for b, a in changed)


def test_generators_never_see_labels() -> None:
    for function in (augment_texts, transfer_texts, transfer_sentences):
        assert not [p for p in inspect.signature(function).parameters if "label" in p or "tag" in p]
    # through the task: permuting the labels changes no generated text, and each variant keeps its source's label
    task = TextClassificationTask(RunConfig(data={"augment": {"copies": 2}}))
    labels = ["a", "b", "c", "d", "e"]
    options = task.data_options.augment
    runs = []
    for permutation in (labels, labels[::-1]):
        records = [TextRecord(text=t, label=label) for t, label in zip(TEXTS, permutation)]
        variants = task.augment_records(records, options, None)
        by_text = {r.text: r.label for r in records}
        runs.append([v.text for v in variants])
        assert all(v.label in by_text.values() for v in variants)
    assert runs[0] == runs[1]


def _sentences(n: int, seed: int) -> tuple[list[list[str]], list[list[str]]]:
    rng = random.Random(seed)
    diseases = [["breast", "cancer"], ["ataxia"], ["von", "Willebrand", "disease"], ["colon", "carcinoma"]]
    genes = [["BRCA1"], ["APC", "gene"]]
    sentences, tags = [], []
    for _ in range(n):
        disease, gene = rng.choice(diseases), rng.choice(genes)
        words = ["mutations", "in", *gene, "cause", *disease, "."]
        sentences.append(words)
        tags.append(["O", "O", "B-Gene", *["I-Gene"] * (len(gene) - 1), "O", "B-Disease",
                     *["I-Disease"] * (len(disease) - 1), "O"])
    return sentences, tags


@pytest.mark.parametrize("operation", augment.TOKEN_OPERATIONS)
def test_ner_variants_keep_tags_aligned_and_valid(operation: str) -> None:
    sentences, tags = _sentences(12, 0)
    neighbours = EmbeddingNeighbours({"mutations": ("variants",), "cause": ("causes",)}, lowercase=True)
    variants = augment_token_sentences(sentences, tags, copies=3, operations=[operation], rate=0.5, seed=3,
                                       neighbours=neighbours)
    assert variants == augment_token_sentences(sentences, tags, copies=3, operations=[operation], rate=0.5, seed=3,
                                               neighbours=neighbours)
    assert variants, operation
    mentions = {(" ".join(w[s:e]), k) for w, t in zip(sentences, tags) for k, s, e in augment._mentions(t)}
    by_tag = {(word, tag) for w, t in zip(sentences, tags) for word, tag in zip(w, t)}
    for index, words, new_tags in variants:
        assert len(words) == len(new_tags) and all(BIO_TAG.match(t) for t in new_tags)
        assert repair_bio(new_tags) == new_tags  # every I- continues its B-
        if operation == "mention":
            assert {(" ".join(words[s:e]), k) for k, s, e in augment._mentions(new_tags)} <= mentions
        elif operation == "token":
            assert new_tags == tags[index] and set(zip(words, new_tags)) <= by_tag
        else:
            assert new_tags == tags[index]


def test_transfer_set_is_n_times_seeded_and_masks() -> None:
    generated = transfer_texts(TEXTS, multiplier=4, seed=0, mask_token="[MASK]", p_mask=0.3)
    assert len(generated) == 4 * len(TEXTS) and [i for i, _ in generated] == [i for i in range(5) for _ in range(4)]
    assert generated == transfer_texts(TEXTS, multiplier=4, seed=0, mask_token="[MASK]", p_mask=0.3)
    assert generated != transfer_texts(TEXTS, multiplier=4, seed=1, mask_token="[MASK]", p_mask=0.3)
    assert any("[MASK]" in text for _, text in generated)
    sentences, _ = _sentences(6, 1)
    tokens = transfer_sentences(sentences, multiplier=3, seed=2, p_ngram=1.0, max_ngram=2)
    assert len(tokens) == 18 and all(1 <= len(words) <= 2 for _, words in tokens)


def _bundle(path: Path) -> dict:
    return json.loads((path / "bundle.json").read_text(encoding="utf-8"))


def test_augment_applies_to_the_training_split_only(tmp_path: Path, tiny_backbone: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    train = write_csv(tmp_path / "train.csv", text_rows(8, 0))
    validation = write_csv(tmp_path / "validation.csv", text_rows(3, 1))
    seen: list[list[str]] = []
    encode = TextClassificationTask.encode

    def spy(self, records, *, with_labels):  # type: ignore[no-untyped-def]
        seen.append([r.text for r in records])
        return encode(self, records, with_labels=with_labels)

    monkeypatch.setattr(TextClassificationTask, "encode", spy)
    predictor = verticals.train("text-classification", train, validation=validation, test=validation,
                                output=tmp_path / "b", backbone=str(tiny_backbone),
                                overrides=[*FAST, "data.augment.copies=2", "data.augment.rate=0.2"])
    recorded = _bundle(tmp_path / "b")["model"]["augmentation"]
    assert recorded["records"] == 24 and 40 <= recorded["added"] <= 48
    assert recorded["operations"] == ["swap", "delete", "insert", "neighbour"] and recorded["neighbour_words"] > 0
    train_texts = {row["text"] for row in text_rows(8, 0)}
    assert len(seen[0]) == 24 + recorded["added"] and train_texts < set(seen[0])
    validation_texts = sorted(row["text"] for row in text_rows(3, 1))
    assert sorted(seen[1]) == validation_texts  # validation encoded as given, not augmented
    assert predictor.info.metrics["test"] and predictor.info.config["data"]["augment"]["copies"] == 2


def test_token_augmentation_trains(tmp_path: Path, tiny_backbone: Path, token_data) -> None:  # type: ignore[no-untyped-def]
    verticals.train("token-classification", token_data["train"], validation=token_data["validation"],
                    output=tmp_path / "b", backbone=str(tiny_backbone),
                    overrides=[*FAST, "data.augment.copies=1", 'data.augment.operations=["mention", "token"]'])
    recorded = _bundle(tmp_path / "b")["model"]["augmentation"]
    assert recorded["records"] == 40 and recorded["added"] > 0 and recorded["operations"] == ["mention", "token"]


def test_without_augment_nothing_is_added(tmp_path: Path, tiny_backbone: Path, text_data) -> None:  # type: ignore[no-untyped-def]
    verticals.train("text-classification", text_data["train"], validation=text_data["validation"],
                    output=tmp_path / "b", backbone=str(tiny_backbone), overrides=FAST)
    info = _bundle(tmp_path / "b")
    assert "augmentation" not in info["model"] and "augment" not in info["config"]["data"]


@pytest.mark.parametrize(("setting", "fragment"), [
    ("data.augment.rate=2", "data.augment.rate: Input should be less than or equal to 0.5"),
    ("data.augment.copies=-1", "data.augment.copies: Input should be greater than or equal to 0"),
    ('data.augment.operations=["mention"]', "data.augment.operations.0: Input should be 'swap'"),
    ("data.augment.operations=[]", "data.augment.operations: List should have at least 1 item"),
    ("data.augment.copy=2", "did you mean data.augment.copies?"),
])
def test_bad_augment_config_is_one_line_and_exit_2(tmp_path: Path, text_data, setting: str, fragment: str) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("train", "text-classification", "--train", str(text_data["train"]), "--output",
                     str(tmp_path / "b"), "--set", setting)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert fragment in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "b").exists()


def test_augment_cannot_be_set_on_a_trained_bundle() -> None:
    from verticals.errors import ConfigError
    from verticals.predictor import data_overrides

    with pytest.raises(ConfigError, match="data.augment: fixed when the bundle was trained"):
        data_overrides(["data.augment.copies=2"])


def test_config_command_shows_augment() -> None:
    text = run_cli("config", "text-classification")
    assert text.returncode == 0 and "data.augment.copies : int = 0" in text.stdout, text.stdout
    assert "data.augment.operations" in text.stdout
    token = run_cli("config", "token-classification", "--json")
    names = {o["name"]: o for o in json.loads(token.stdout)["options"]["data"]}
    assert names["data.augment.operations"]["default"] == ["mention", "token"]


def test_distill_with_a_transfer_set_records_it(tmp_path: Path, tiny_backbone: Path, text_data) -> None:  # type: ignore[no-untyped-def]
    teacher = tmp_path / "teacher"
    verticals.train("text-classification", text_data["train"], validation=text_data["validation"], output=teacher,
                    backbone=str(tiny_backbone), overrides=FAST)
    small = write_csv(tmp_path / "small.csv", text_rows(4, 2))
    result = run_cli("distill", str(teacher), "--train", str(small), "--validation", str(text_data["validation"]),
                     "--output", str(tmp_path / "student"), "--backbone", str(tiny_backbone), "--transfer-set", "3",
                     *[arg for setting in FAST for arg in ("--set", setting)])
    assert result.returncode == 0, result.stderr
    recorded = _bundle(tmp_path / "student")["model"]["distilled_from"]
    assert recorded["transfer_multiplier"] == 3 and recorded["transfer_records"] == 3 * 12
    bad = run_cli("distill", str(teacher), "--train", str(small), "--output", str(tmp_path / "s2"),
                  "--transfer-set", "-1")
    assert bad.returncode == 2 and "--transfer-set" in bad.stderr and "Traceback" not in bad.stderr, bad.stderr


def test_token_distill_defaults_to_the_measured_x2_transfer_set(  # type: ignore[no-untyped-def]
        tmp_path: Path, tiny_backbone: Path, token_data) -> None:
    # issue 30: on NCBI-disease two generated sentences per record beat logits only on devel, so a token task's
    # student gets them unless told otherwise; --transfer-set 0 still trains on the records alone
    from verticals.distill import distill

    teacher = tmp_path / "teacher"
    verticals.train("token-classification", token_data["train"], validation=token_data["validation"],
                    output=teacher, backbone=str(tiny_backbone), overrides=FAST)
    student = distill(teacher, token_data["train"], output=tmp_path / "student", validation=token_data["validation"],
                      backbone=str(tiny_backbone), overrides=FAST)
    recorded = student.info.model["distilled_from"]
    assert recorded["transfer_multiplier"] == 2 and recorded["transfer_records"] == 80
    plain = distill(teacher, token_data["train"], output=tmp_path / "plain", validation=token_data["validation"],
                    backbone=str(tiny_backbone), overrides=FAST, transfer_multiplier=0)
    assert plain.info.model["distilled_from"]["transfer_multiplier"] == 0
    assert "transfer_records" not in plain.info.model["distilled_from"]


def test_medical_variants_drop_the_source_text_their_tokens_no_longer_match() -> None:
    medical = pytest.importorskip("verticals_medical.ner")
    task = medical.MedicalNERTask(RunConfig(data={"augment": {"copies": 2, "operations": ["mention"], "rate": 1.0}}))
    sentences, tags = _sentences(6, 2)
    records = [medical.MedicalRecord(tokens=s, tags=t, text=" ".join(s)) for s, t in zip(sentences, tags)]
    variants = task.augment_records(records, task.data_options.augment, None)
    assert variants and all(v.text is None and len(v.tokens) == len(v.tags) for v in variants)
    # each variant is a valid record of the task as it stands
    assert all(medical.MedicalRecord.model_validate(v.model_dump()) == v for v in variants)
