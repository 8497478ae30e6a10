"""Train / evaluate / predict / bundle round trip from the CLI and Python, on the tiny backbone."""

import json

import pytest
import verticals
from verticals.cli import main

from .data import write_conll, write_jsonl

LONG = ("The girl had cystic fibrosis and was given aspirin . " * 12).strip()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, tiny_backbone):  # type: ignore[no-untyped-def]
    directory = tmp_path_factory.mktemp("cli")
    train = write_conll(directory / "train.conll", repeat=4)
    dev = write_jsonl(directory / "dev.jsonl")
    code = main(["train", "medical.ner", "--train", str(train), "--validation", str(dev),
                 "--output", str(directory / "bundle"), "--backbone", str(tiny_backbone), "--json",
                 "--set", "training.epochs=2", "--set", "training.batch_size=8",
                 "--set", "training.max_length=24", "--set", "task.stride=8"])
    assert code == 0
    return directory


def test_evaluate_json_reports_entity_metrics(bundle, capsys) -> None:  # type: ignore[no-untyped-def]
    capsys.readouterr()
    assert main(["evaluate", str(bundle / "bundle"), "--data", str(bundle / "dev.jsonl"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"precision", "recall", "f1", "token_accuracy"} <= set(result["metrics"])
    assert result["task"] == "medical.ner" and result["n"] == 6


def test_predict_raw_text_returns_offsets(bundle, capsys) -> None:  # type: ignore[no-untyped-def]
    capsys.readouterr()
    text = "Süß: Crohn’s disease, treated with aspirin."
    assert main(["predict", str(bundle / "bundle"), text, LONG, "--json"]) == 0
    short, long = json.loads(capsys.readouterr().out)
    expected_tokens = verticals.load(bundle / "bundle").task.as_record(LONG).tokens
    assert len(long["tags"]) == len(long["tokens"]) == len(expected_tokens)
    for row, source in ((short, text), (long, LONG)):
        for entity in row["entities"]:
            assert source[entity["start"]:entity["end"]] == entity["text"]


def test_python_round_trip_and_long_documents(bundle) -> None:  # type: ignore[no-untyped-def]
    predictor = verticals.load(bundle / "bundle")
    features = predictor.task.encode([predictor.task.as_record(LONG)], with_labels=False)
    assert len(features) > 3  # 24 tokens per window: the document is read in overlapping windows
    before = predictor.predict([LONG, {"tokens": ["lupus", "nephritis"]}])
    again = verticals.load(bundle / "bundle").predict([LONG, {"tokens": ["lupus", "nephritis"]}])
    def shown(predictions):  # type: ignore[no-untyped-def]
        return [(p.tags, [(e.type, e.start, e.end, round(e.score, 3)) for e in p.entities]) for p in predictions]

    assert shown(before) == shown(again)
