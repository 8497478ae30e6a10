import json

import pytest
import verticals
from verticals.tasks.token_classification import bio_labels, repair_bio, spans

from .conftest import run_cli


def test_repair_bio_is_conlleval_style():
    assert repair_bio(["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-PER"]) == [
        "B-PER", "I-PER", "O", "B-LOC", "B-LOC", "B-PER"]


def test_spans_and_label_order():
    assert spans(["B-PER", "I-PER", "O", "B-LOC", "B-LOC"]) == [("PER", 0, 2), ("LOC", 3, 4), ("LOC", 4, 5)]
    assert bio_labels({"O", "I-LOC", "B-PER", "B-LOC"}) == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


@pytest.fixture
def trained(tmp_path, tiny_backbone, token_data):
    return verticals.train("token-classification", token_data["train"], validation=token_data["validation"],
                           output=tmp_path / "ner", backbone=str(tiny_backbone),
                           overrides=["training.epochs=6", "training.batch_size=8", "training.learning_rate=0.003"])


def test_train_evaluate_predict_entities(trained, tmp_path, token_data):
    metrics = trained.info.metrics["validation"]
    assert {"precision", "recall", "f1", "token_accuracy"} <= set(metrics)
    assert metrics["token_accuracy"] > 0.6, "a tiny model must learn the trivially regular tags"
    loaded = verticals.load(tmp_path / "ner")
    prediction = loaded.predict(["Alice Smith flew to Oslo ."])[0]
    assert prediction.tokens == ["Alice", "Smith", "flew", "to", "Oslo", "."]
    assert len(prediction.tags) == 6
    for entity in prediction.entities:
        assert entity.text == " ".join(prediction.tokens[entity.start:entity.end])
    evaluation = loaded.evaluate(token_data["validation"])
    assert evaluation.metrics == pytest.approx(metrics, abs=1e-6)
    assert set(evaluation.per_label) <= {"PER", "LOC"}


def test_cli_evaluate_json_has_entity_metrics(trained, tmp_path, token_data):
    result = run_cli("evaluate", str(tmp_path / "ner"), "--data", str(token_data["validation"]), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["task"] == "token-classification" and report["n"] == 10
    assert {"precision", "recall", "f1"} <= set(report["metrics"])


def test_jsonl_input(tmp_path, tiny_backbone):
    data = tmp_path / "t.jsonl"
    rows = [{"tokens": ["Bob", "went", "to", "Oslo"], "tags": ["B-PER", "O", "O", "B-LOC"]}] * 12
    data.write_text("\n".join(json.dumps(r) for r in rows))
    predictor = verticals.train("token-classification", data, output=tmp_path / "b", backbone=str(tiny_backbone),
                                overrides=["training.epochs=1"])
    assert predictor.labels == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
