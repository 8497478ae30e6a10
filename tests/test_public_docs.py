"""/openapi.json is public, also with an API key: its examples never carry training text, and with a key
nothing from the bundle but field names (issue 29 item 3)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

import verticals  # noqa: E402

from .conftest import text_rows, write_csv  # noqa: E402

TOKEN = "zqxjvpriv"
LABELS = {"billing": "acme_billing_desk", "shipping": "acme_shipping_desk", "account": "acme_account_desk"}


def test_examples_hold_no_training_text_and_with_a_key_no_labels(tmp_path: Path, tiny_backbone: Path) -> None:
    from fastapi.testclient import TestClient
    from verticals.delivery.serve import create_app

    rows = [{"ticket_text": f"{row['text']} {TOKEN}{i}", "label": LABELS[row["label"]]}
            for i, row in enumerate(text_rows(8, 0))]
    predictor = verticals.train("text-classification", write_csv(tmp_path / "train.csv", rows),
                                output=tmp_path / "b", backbone=str(tiny_backbone),
                                overrides=["training.epochs=1", "data.text_column=ticket_text"])
    for api_key in (None, "k" * 32):
        client = TestClient(create_app([predictor], api_key=api_key))
        schema = client.get("/openapi.json")
        assert schema.status_code == 200 and TOKEN not in schema.text
        assert TOKEN not in client.get("/docs").text
        path = "/v1/models/b/predict"
        body = schema.json()["paths"][path]["post"]
        request = body["requestBody"]["content"]["application/json"]["examples"]["record"]["value"]
        assert list(request["inputs"][0]) == ["ticket_text"]  # the bundle's own field name (item 8)
        example = body["responses"]["200"]["content"]["application/json"]["example"]["results"][0]["prediction"]
        leaked = [label for label in LABELS.values() if label in schema.text]
        if api_key is None:
            assert example["label"] in LABELS.values() and set(example["scores"]) == set(LABELS.values())
        else:
            assert leaked == [], leaked
            assert example["label"].startswith("<label ") and len(example["scores"]) == 3
        # the example still works as a request, with the key where there is one
        headers = {"X-API-Key": api_key} if api_key else {}
        answer = client.post(path, json=request, headers=headers).json()["results"][0]
        assert answer["ok"] and answer["prediction"]["label"] in LABELS.values()


def test_scrub_keeps_labels_and_the_example_input_only() -> None:
    from verticals.delivery.docs import _scrub

    labels = {"a": "a", "B-Drug": "B-Drug", "Drug": "Drug"}
    value = {"label": "a", "reason": "because of 'a secret utterance'", "scores": {"a": 0.5},
             "entities": [{"type": "Drug", "text": "aspirin"}], "matches": [{"text": "a secret utterance"}]}
    scrubbed = _scrub(value, labels, "take aspirin now", "value")
    assert scrubbed == {"label": "a", "reason": "<reason>", "scores": {"a": 0.5},
                        "entities": [{"type": "Drug", "text": "aspirin"}], "matches": [{"text": "<text>"}]}
    assert "secret" not in json.dumps(scrubbed)
