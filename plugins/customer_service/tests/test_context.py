"""``data.context_column``: the earlier turns of a conversation as classifier input.

The built data set below holds plain requests ("hello, my parcel and the courier please") and follow-ups
("and for the second one?") whose text is the same for every intent: only the turn before says which intent
a follow-up continues. A classifier without the context can only guess them; with it, it learns them.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from verticals import api
from verticals.cli import main

from .data import FAST, INTENTS, write_csv

FOLLOW_UPS = ["and for the second one?", "what about that one", "same question for the other one",
              "and the next one?"]
CONTEXT = ["data.context_column=history"]
# in_scope_rejection: the calibration rejects (almost) no in-scope query, so accuracy measures the classifier's
# reading of the context rather than the tiny random encoder's similarity scale
TRAINING = [*FAST, "training.epochs=8", "task.objective=in_scope_rejection"]


def conversation_rows(n_per_intent: int, seed: int) -> list[dict[str, Any]]:
    """Per intent: n plain requests (no earlier turns) and n follow-ups after a request of that intent."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for intent, words in INTENTS.items():
        for _ in range(n_per_intent):
            a, b = rng.sample(words, 2)
            rows.append({"text": f"hello, my {a} and the {b} please", "label": intent, "history": []})
            c, d = rng.sample(words, 2)
            rows.append({"text": rng.choice(FOLLOW_UPS), "label": intent,
                         "history": ["hi, I have two questions", f"my {c} and the {d}"]})
    rng.shuffle(rows)
    return rows


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def conversations(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("conversations")
    return {split: write_jsonl(directory / f"{split}.jsonl", conversation_rows(n, seed))
            for split, n, seed in (("train", 12, 0), ("validation", 4, 1), ("test", 8, 2))}


@pytest.fixture(scope="module")
def bundles(conversations: dict[str, Path], tiny_backbone: Path,
            tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same data and settings trained with and without the context column."""
    out = tmp_path_factory.mktemp("context-bundles")
    for name, extra in (("with", CONTEXT), ("without", [])):
        api.train("customer_service.intent", conversations["train"], validation=conversations["validation"],
                  output=out / name, overrides=[*TRAINING, *extra], backbone=str(tiny_backbone))
    return {"with": out / "with", "without": out / "without"}


def test_context_lifts_accuracy_on_follow_ups(bundles: dict[str, Path], conversations: dict[str, Path]) -> None:
    with_context = api.load(bundles["with"]).evaluate(conversations["test"]).metrics
    without = api.load(bundles["without"]).evaluate(conversations["test"]).metrics
    print(f"\ntest accuracy with context {with_context['accuracy']:.3f} (classifier "
          f"{with_context['classifier_accuracy']:.3f}); without {without['accuracy']:.3f} (classifier "
          f"{without['classifier_accuracy']:.3f})")
    # half the test rows are follow-ups: without context at most ~1/3 of them can be right
    assert without["classifier_accuracy"] <= 0.75
    assert with_context["accuracy"] >= 0.9
    assert with_context["accuracy"] >= without["accuracy"] + 0.2


def test_predict_reads_context_in_every_form(bundles: dict[str, Path], tmp_path: Path, capsys: Any) -> None:
    """Python records (list or separated string, under the column's name), the CLI on a file, and retrieval on
    the current utterance alone."""
    predictor = api.load(bundles["with"])
    turns = ["hi, I have two questions", "my password and the login"]
    asked = predictor.predict([{"text": "and for the second one?", "history": turns},
                               {"text": "and for the second one?", "history": "\n".join(turns)},
                               {"text": "and for the second one?", "history": ["my refund and the money"]}])
    assert [p.intent for p in asked] == ["reset_password", "reset_password", "refund_status"]
    assert asked[0].scores == pytest.approx(asked[1].scores)
    # the retrieval query is the utterance alone: the same nearest entries whatever the context
    task = predictor.task
    records = [task.as_record(r) for r in ({"text": "what about that one", "history": turns},
                                           {"text": "what about that one"})]
    _, vectors = task._forward(records)
    assert vectors[0] == pytest.approx(vectors[1], abs=1e-5)
    source = write_jsonl(tmp_path / "ask.jsonl", [{"text": "what about that one", "history": turns}])
    assert main(["predict", str(bundles["with"]), "--input", str(source), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["intent"] == "reset_password"
    # a CSV cell: the turns one per line (data.context_separator)
    cells = write_csv(tmp_path / "ask.csv", [{"text": "what about that one", "history": "\n".join(turns)},
                                             {"text": "what about that one", "history": ""}])
    from_csv = predictor.predict(str(cells))
    assert from_csv[0].intent == "reset_password"
    assert from_csv[1].scores == pytest.approx(predictor.predict(["what about that one"])[0].scores)


def test_without_the_option_the_task_is_the_plain_one(bundles: dict[str, Path]) -> None:
    """A 'history' key in the data is ignored unless data.context_column names it: same records, features and
    predictions as text alone, and bundle.json says nothing of context."""
    from verticals.tasks.text_classification import TextClassificationTask, TextRecord

    predictor = api.load(bundles["without"])
    task = predictor.task
    assert task.Record is TextRecord and task.data_options.context_column is None
    records = [task.as_record({"text": "what about that one", "history": ["my parcel"]}),
               task.as_record("what about that one")]
    assert records[0] == records[1]
    assert task.encode(records, with_labels=False) == TextClassificationTask.encode(task, records, with_labels=False)
    a, b = predictor.predict([{"text": "what about that one", "history": ["my parcel"]}, "what about that one"])
    # CI's CPU gave these two rows of one batch scores differing in the 9th decimal (cause not traced), so the
    # numbers are compared to 1e-6; used context would move them by far more. Everything else must be identical.
    assert a.scores == pytest.approx(b.scores, abs=1e-6) and a.confidence == pytest.approx(b.confidence, abs=1e-6)
    assert a.score == pytest.approx(b.score, abs=1e-6)
    assert (a.intent, a.label, a.out_of_scope, a.fallback, a.reason, a.answer, a.matches) == (
        b.intent, b.label, b.out_of_scope, b.fallback, b.reason, b.answer, b.matches)
    assert "context" not in (bundles["without"] / "bundle.json").read_text()


def test_serve_takes_and_documents_the_context(bundles: dict[str, Path]) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient
    from verticals.delivery.serve import create_app

    client = TestClient(create_app([api.load(bundles["with"])]))
    path = next(p for p in client.get("/openapi.json").json()["paths"] if p.endswith("/predict"))
    turns = ["hi, I have two questions", "my refund and the money"]
    answer = client.post(path, json={"inputs": [
        {"text": "what about that one", "history": turns}, {"text": "what about that one", "history": 3}]})
    assert answer.status_code == 200
    good, bad = answer.json()["results"]
    assert good["prediction"]["intent"] == "refund_status"
    by_sdk_name = client.post(path, json={"inputs": [{"text": "what about that one", "context": turns}]})
    assert by_sdk_name.json()["results"][0]["prediction"] == good["prediction"]
    assert not bad["ok"] and bad["error"]["field"] == "history" and "list of strings" in bad["error"]["message"]
    schema = json.dumps(client.get("/openapi.json").json())
    assert "Earlier turns of the conversation" in schema


@pytest.mark.parametrize("value,found", [(3, "int 3"), ({"turn": "my parcel"}, "dict"), ([1, 2], "valid string")])
def test_context_of_the_wrong_type(bundles: dict[str, Path], conversations: dict[str, Path], tmp_path: Path,
                                   capsys: Any, value: Any, found: str) -> None:
    rows = [json.loads(line) for line in conversations["validation"].read_text().splitlines()]
    rows[2]["history"] = value
    bad = write_jsonl(tmp_path / "bad.jsonl", rows)
    assert main(["evaluate", str(bundles["with"]), "--data", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.jsonl" in err[0] and ":3" in err[0] and "history" in err[0] and found in err[0], err


def test_missing_context_column(bundles: dict[str, Path], tmp_path: Path, capsys: Any) -> None:
    source = write_jsonl(tmp_path / "ask.jsonl", [{"text": "what about that one", "turns": ["my parcel"]}])
    assert main(["predict", str(bundles["with"]), "--input", str(source)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing column 'history'" in err[0] and "data.context_column" in err[0], err


def test_context_column_must_be_its_own(tiny_backbone: Path, conversations: dict[str, Path], capsys: Any) -> None:
    assert main(["train", "customer_service.intent", "--train", str(conversations["train"]), "--output",
                 "unused", "--set", "data.context_column=text"]) == 2
    assert "data.context_column" in capsys.readouterr().err


def test_pair_inputs_cut_the_oldest_turns_never_the_text(tiny_backbone: Path) -> None:
    from transformers import AutoTokenizer
    from verticals.tasks.conversation import conversation_features

    tok = AutoTokenizer.from_pretrained(tiny_backbone)
    text = "and for the second one?"
    turns = ["first of all a long greeting with many words in it", "my parcel and the courier"]
    (long, cut, alone, none) = [tok.convert_ids_to_tokens(f["input_ids"]) for f in conversation_features(
        tok, [text] * 4, [turns, ["the courier said a parcel would come today"], turns, []], 16)]
    assert long == ["[CLS]", "my", "parcel", "and", "the", "courier", "[SEP]",
                    "and", "for", "the", "second", "one", "?", "[SEP]"]  # the older turn dropped whole
    # the newest turn alone is too long: its start is cut, its end (closest to the text) kept
    assert cut == ["[CLS]", "courier", "said", "a", "parcel", "would", "come", "today", "[SEP]",
                   "and", "for", "the", "second", "one", "?", "[SEP]"]
    assert tok.convert_ids_to_tokens(conversation_features(tok, [text], [turns], 9)[0]["input_ids"]) == \
        ["[CLS]", "and", "for", "the", "second", "one", "?", "[SEP]"]  # no room: the text alone, as without
    assert none == tok.convert_ids_to_tokens(tok(text)["input_ids"]) and alone == long


def test_export_predict_py_reads_context_as_the_sdk(bundles: dict[str, Path], tmp_path: Path) -> None:
    """predict.py (no Verticals) builds the same pair inputs, cut the same way, and retrieves on the text."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    import subprocess
    import sys

    from verticals.testing import run_export_reference

    out = tmp_path / "onnx"
    assert main(["export", str(bundles["with"]), "--output", str(out)]) == 0
    meta = json.loads((out / "export.json").read_text())
    assert meta["fields"]["context"] == "history" and meta["decision"]["context"]["separator"] == "\n"
    turns = ["hi, I have two questions", "my refund and the money"]
    many = [f"my parcel and the courier, message {i} of a long chat about nothing in particular" for i in range(20)]
    inputs: list[Any] = [{"text": "what about that one", "history": turns},
                         {"text": "and for the second one?", "history": "\n".join(turns)},
                         "and the next one?", {"text": "hello, my password and the login please", "history": []},
                         {"text": "what about that one", "history": many},  # older turns dropped
                         {"text": "what about that one", "history": [" ".join(many)]}]  # the newest turn cut
    predictor = api.load(bundles["with"])
    predictor.task.precision_ = "fp32"  # ONNX runs fp32
    expected = predictor.predict(inputs)
    got = run_export_reference(out, inputs)
    assert [g["intent"] for g in got] == [e.intent for e in expected]
    for g, e in zip(got, expected):
        assert g["scores"] == pytest.approx(e.scores, abs=1e-4)
        assert g["reason"].split(" ")[:3] == e.reason.split(" ")[:3]
        assert [m["similarity"] for m in g["matches"]] == pytest.approx([m.similarity for m in e.matches], abs=1e-4)
    # the SDK's own ONNX engine (what `serve --engine auto` picks) gets the segment ids of the pair too
    on_onnx = api.load(bundles["with"], engine="onnx").predict(inputs)
    assert [p.intent for p in on_onnx] == [e.intent for e in expected]
    assert [p.scores for p in on_onnx] == [pytest.approx(e.scores, abs=1e-4) for e in expected]
    bad = subprocess.run([sys.executable, str(out / "predict.py"), str(out)], capture_output=True, text=True,
                         input=json.dumps({"text": "what about that one", "history": {"a": 1}}) + "\n", check=False)
    assert bad.returncode == 2 and "line 1" in bad.stderr and "'history'" in bad.stderr


def test_context_column_can_be_renamed_not_switched_after_training(bundles: dict[str, Path]) -> None:
    from verticals import ConfigError

    turns = ["hi, I have two questions", "my password and the login"]
    renamed = api.load(bundles["with"]).predict([{"text": "what about that one", "turns": turns}],
                                                overrides=["data.context_column=turns"])
    assert renamed[0].intent == "reset_password"
    with pytest.raises(ConfigError, match="trained without data.context_column"):
        api.load(bundles["without"]).with_overrides(["data.context_column=history"])
    with pytest.raises(ConfigError, match="trained with data.context_column"):
        api.load(bundles["with"]).with_overrides({"data": {"context_column": None}})
    with pytest.raises(ConfigError, match="earlier turns of a conversation"):  # it would explain the text alone
        api.load(bundles["with"]).explain([{"text": "what about that one", "history": turns}])
