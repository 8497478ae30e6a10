"""Prediction objects share field names and give plain dicts; a predictor is callable like a pipeline
(issue 29 item 7)."""

from __future__ import annotations

import json

import pytest
import verticals
from verticals import Prediction, TextPrediction, TokenPrediction


@pytest.fixture(scope="module")
def predictor(tmp_path_factory, tiny_backbone):  # type: ignore[no-untyped-def]
    from .conftest import text_rows, write_csv

    root = tmp_path_factory.mktemp("callable")
    return verticals.train("text-classification", write_csv(root / "train.csv", text_rows(6, 0)),
                           output=root / "b", backbone=str(tiny_backbone), overrides=["training.epochs=1"],
                           quiet=True)


def test_a_predictor_is_callable_like_a_pipeline(predictor) -> None:  # type: ignore[no-untyped-def]
    one = predictor("where is my parcel")
    assert isinstance(one, TextPrediction) and one == predictor.predict_one("where is my parcel")
    many = predictor(["where is my parcel", "my invoice is wrong"])
    assert isinstance(many, list) and len(many) == 2 and all(isinstance(p, TextPrediction) for p in many)
    # batched with a longer text (padding), the same prediction up to float rounding
    assert many[0].label == one.label and many[0].score == pytest.approx(one.score, abs=1e-5)
    assert predictor({"text": "where is my parcel"}) == one
    assert predictor(("where is my parcel",)) == [one]  # any sequence: a list of predictions


def test_predictions_share_names_and_give_plain_dicts(predictor) -> None:  # type: ignore[no-untyped-def]
    prediction = predictor("where is my parcel")
    as_dict = prediction.to_dict()
    assert as_dict == prediction.model_dump(mode="json") and json.loads(json.dumps(as_dict)) == as_dict
    assert {"label", "score"} <= set(as_dict) and as_dict["label"] in predictor.labels
    for model in (TextPrediction, TokenPrediction):
        assert issubclass(model, Prediction)
    tokens = TokenPrediction(tokens=["a"], tags=["O"], entities=[])
    assert tokens.to_dict() == {"tokens": ["a"], "tags": ["O"], "entities": []}
