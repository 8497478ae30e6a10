"""The recommender behind `verticals serve`: a request's unknown user fails alone, the docs example works."""

from pathlib import Path

import pytest
from recommendation_testdata import write_split
from verticals import train
from verticals.testing import make_tiny_backbone

pytest.importorskip("fastapi")
pytest.importorskip("httpx")


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient
    from verticals.delivery.serve import create_app

    directory: Path = tmp_path_factory.mktemp("rec-serve")
    data = write_split(directory)
    overrides = [*data["overrides"], "training.epochs=1", "training.batch_size=8"]  # type: ignore[misc]
    train("recommendation.scoring", data["train"], validation=data["validation"], output=directory / "books",
          overrides=overrides, backbone=str(make_tiny_backbone(directory / "tiny")))
    return TestClient(create_app([directory / "books"]))


def test_unknown_user_fails_alone(client) -> None:  # type: ignore[no-untyped-def]
    inputs = [{"user": "u0", "k": 3}, {"user": "nobody"}, {"user": "newcomer", "history": ["0", "no-such-book"]},
              {"user": "u1", "k": 2}]
    response = client.post("/v1/models/books/predict", json={"inputs": inputs})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["ok"] for r in results] == [True, False, False, True]
    assert "user 'nobody' is unknown" in results[1]["error"]["message"]
    assert results[1]["error"]["status"] == 422 and results[1]["error"]["field"] == "user_id"
    assert "no-such-book" in results[2]["error"]["message"] and results[2]["error"]["field"] == "history"
    assert len(results[0]["prediction"]["items"]) == 3 and len(results[3]["prediction"]["items"]) == 2


def test_docs_example_is_a_known_user(client) -> None:  # type: ignore[no-untyped-def]
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/v1/models/books/predict"]["post"]["requestBody"]["content"]["application/json"]
    example = body["examples"]["record"]["value"]
    assert set(example["inputs"][0]) == {"user", "k"}
    answer = client.post("/v1/models/books/predict", json=example).json()["results"][0]
    assert answer["ok"], answer
