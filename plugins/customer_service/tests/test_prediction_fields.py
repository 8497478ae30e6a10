"""An intent prediction has the field names every classification result has (issue 29 item 7)."""

from __future__ import annotations

from verticals import Prediction
from verticals_customer_service import IntentPrediction, Match


def test_intent_has_label_and_score_beside_intent_and_confidence() -> None:
    prediction = IntentPrediction(intent="track_order", confidence=0.91, out_of_scope=False, fallback=True,
                                  reason="r", matches=[Match(text="t", intent="track_order", answer=None,
                                                             similarity=0.8, source="utterance")],
                                  scores={"track_order": 0.91, "refund_status": 0.09})
    assert isinstance(prediction, Prediction)
    assert (prediction.label, prediction.score) == ("track_order", 0.91)
    as_dict = prediction.to_dict()
    assert as_dict["label"] == as_dict["intent"] and as_dict["score"] == as_dict["confidence"]
    assert as_dict["matches"][0]["source"] == "utterance"
    # documented in the served schema too (serialization mode: what the server answers)
    properties = IntentPrediction.model_json_schema(mode="serialization")["properties"]
    assert {"label", "score", "intent", "confidence", "reason"} <= set(properties)
    # a dumped prediction reads back (label/score are derived, never conflicting inputs)
    assert IntentPrediction.model_validate(as_dict) == prediction
