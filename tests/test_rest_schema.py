"""The REST schema says what the server takes (issue 29 item 8): a bundle trained with a renamed text column
documents that column, with the record's own field name as the accepted alias; a predict request has no gold
label; and the server answers both names alike."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

import verticals  # noqa: E402

from .conftest import conll_text, text_rows, write_csv  # noqa: E402


def _input_schema(spec: dict, model: str) -> dict:
    request = spec["components"]["schemas"][f"{model}PredictRequest"]
    ref = next(item["$ref"] for item in request["properties"]["inputs"]["items"]["anyOf"] if "$ref" in item)
    return spec["components"]["schemas"][ref.rsplit("/", 1)[1]]


def test_a_renamed_text_column_is_documented_and_both_names_are_accepted(tmp_path: Path,
                                                                         tiny_backbone: Path) -> None:
    from fastapi.testclient import TestClient
    from verticals.delivery.serve import create_app

    rows = [{"ticket_text": row["text"], "label": row["label"]} for row in text_rows(8, 0)]
    predictor = verticals.train("text-classification", write_csv(tmp_path / "train.csv", rows),
                                output=tmp_path / "tickets", backbone=str(tiny_backbone), quiet=True,
                                overrides=["training.epochs=1", "data.text_column=ticket_text"])
    client = TestClient(create_app([predictor]))
    spec = client.get("/openapi.json").json()
    record = _input_schema(spec, "Tickets")
    assert list(record["properties"]) == ["ticket_text"] and record["required"] == ["ticket_text"]
    assert "'text'" in record["properties"]["ticket_text"]["description"]  # the alias, said where it applies
    assert "label" not in record["properties"]  # no gold label in a prediction input
    example = spec["paths"]["/v1/models/tickets/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert set(example["examples"]["record"]["value"]["inputs"][0]) <= set(record["properties"])

    answers = []
    for item in ({"ticket_text": "refund for my invoice"}, {"text": "refund for my invoice"},
                 "refund for my invoice"):
        result = client.post("/v1/models/tickets/predict", json={"inputs": [item]}).json()["results"][0]
        assert result["ok"], (item, result)
        answers.append(result["prediction"])
    assert answers[0] == answers[1] == answers[2]
    # the Python API takes the alias too, as the server does
    assert predictor.predict([{"text": "refund for my invoice"}])[0].to_dict() == answers[0]


def test_a_token_tagger_documents_tokens_without_gold_tags(tmp_path: Path, tiny_backbone: Path) -> None:
    from fastapi.testclient import TestClient
    from verticals.delivery.serve import create_app

    (tmp_path / "train.conll").write_text(conll_text(20, 0), encoding="utf-8")
    predictor = verticals.train("token-classification", tmp_path / "train.conll", output=tmp_path / "ner",
                                backbone=str(tiny_backbone), quiet=True, check=False,
                                overrides=["training.epochs=1"])
    spec = TestClient(create_app([predictor])).get("/openapi.json").json()
    record = _input_schema(spec, "Ner")
    assert "tokens" in record["properties"] and "tags" not in record["properties"]
