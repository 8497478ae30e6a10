"""The public API docs hold no training text (issue 29 item 3): /openapi.json stays open when the server
has an API key, and its example answer used to carry `matches` with verbatim training utterances."""

from __future__ import annotations

from pathlib import Path

import pytest
from verticals import api

from .data import FAST, intent_rows, write_csv

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

TOKEN = "zqxjvpriv"  # in every training utterance, nowhere else


def test_openapi_and_docs_never_show_training_utterances(tmp_path: Path, tiny_backbone: Path) -> None:
    from fastapi.testclient import TestClient
    from verticals.delivery.serve import create_app

    rows = [{**row, "text": f"{row['text']} {TOKEN}{i}"} for i, row in enumerate(intent_rows(16, 0, seed=0))]
    predictor = api.train("customer_service.intent", write_csv(tmp_path / "train.csv", rows),
                          validation=write_csv(tmp_path / "validation.csv", intent_rows(5, 12, seed=1)),
                          output=tmp_path / "b", overrides=FAST, backbone=str(tiny_backbone))
    # every query falls back to retrieval, as the docs' example did in the issue: its answer lists the
    # nearest indexed training utterances
    predictor.task.thresholds_ = {"score": "similarity", "threshold": 2.0}
    assert any(TOKEN in m.text for m in predictor.predict(["where is my parcel"])[0].matches)
    for api_key in (None, "k" * 32):
        client = TestClient(create_app([predictor], api_key=api_key))
        schema = client.get("/openapi.json")
        assert schema.status_code == 200 and TOKEN not in schema.text, api_key
        assert client.get("/docs").status_code == 200 and TOKEN not in client.get("/docs").text
        path = next(p for p in schema.json()["paths"] if p.endswith("/predict"))
        answer = schema.json()["paths"][path]["post"]["responses"]["200"]["content"]["application/json"]
        prediction = answer["example"]["results"][0]["prediction"]
        assert prediction["out_of_scope"] is True and prediction["matches"]  # the shape is still shown
        assert {m["text"] for m in prediction["matches"]} == {"<text>"}
        labels = set(predictor.labels)
        shown = set(prediction["scores"])
        assert shown == (labels if api_key is None else {f"<label {i}>" for i in range(len(labels))})
