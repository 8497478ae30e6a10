"""What ``customer_service.intent`` is configured with and what it answers: its options, a retrieval match and
the intent prediction (imported by ``task``; kept apart so the task module stays the domain logic)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator, model_validator
from verticals import TextDataConfig
from verticals.tasks.base import Prediction
from verticals.tasks.text_classification import TextRecord


class IntentDataOptions(TextDataConfig):
    """The ``data`` section of ``customer_service.intent``: the core's text columns and augmentation, plus the
    conversation context."""

    context_column: str | None = Field(None, min_length=1, description=(
        "Column/field holding the earlier turns of the conversation, oldest first and newest last: a list of "
        "strings (JSON) or one string with the turns separated by data.context_separator (CSV). The classifier "
        "reads them as the first segment of a pair input before the current text; the oldest turns are dropped "
        "when the pair is longer than training.max_length, never the current text. Retrieval and the "
        "out-of-scope rule key on the current text alone. Required in every file when set (an empty value = "
        "the first turn of a conversation); optional in API/REST records. Unset (default): no context."))
    context_separator: str = Field("\n", min_length=1, description=(
        "What separates the turns when data.context_column holds one string (default: a newline, one turn "
        "per line of the cell)."))

    @model_validator(mode="after")
    def _context_is_its_own_column(self) -> IntentDataOptions:
        if self.context_column is not None and self.context_column in (self.text_column, self.label_column):
            raise ValueError(f"data.context_column is {self.context_column!r}, the column of the "
                             f"{'text' if self.context_column == self.text_column else 'label'}; the earlier turns "
                             f"need a column of their own")
        return self


class IntentContextRecord(TextRecord):
    """An utterance with the earlier turns of its conversation (used when ``data.context_column`` is set)."""

    context: list[str] = Field(default_factory=list, description=(
        "Earlier turns of the conversation, oldest first, newest last (a list of strings; empty or absent: the "
        "first turn). In the user's records under data.context_column."))

    @field_validator("context", mode="before")
    @classmethod
    def _none_is_no_context(cls, value: Any) -> Any:
        return [] if value is None else value

    @field_validator("context", mode="after")
    @classmethod
    def _no_blank_turns(cls, value: list[str]) -> list[str]:
        return [turn for turn in value if turn.strip()]


class IntentOptions(BaseModel):
    """The ``task`` section of ``customer_service.intent``."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # every number finite: see verticals.config

    oos_label: str = Field("out_of_scope", min_length=1, description=(
        "Label of out-of-scope examples. They are never trained as an intent; in validation (and as "
        "unused training rows) they calibrate the fallback thresholds."))
    faq: str | None = Field(None, description=(
        "Optional FAQ knowledge base (CSV/TSV/JSONL with question, answer[, intent]); its questions are "
        "indexed with the training utterances and its answers returned with matches."))
    objective: Literal["auto", "accuracy_at_oos_recall", "balanced", "precision", "pseudo_unknown",
                       "in_scope_rejection"] = Field(
        "auto", description=(
            "Threshold calibration objective; auto = accuracy_at_oos_recall with out-of-scope calibration "
            "examples; without them pseudo_unknown (validation utterances of two different intents are mixed "
            "into pseudo-unknown queries; the threshold best separates them from in-scope ones) when there are "
            "at least "
            "task.min_calibration_per_intent in-scope calibration utterances per intent, else "
            "in_scope_rejection (few-shot: reject only what is less similar to the training utterances than "
            "all but task.in_scope_rejection of in-scope queries)."))
    min_calibration_per_intent: float = Field(8.0, ge=0, le=1e6, description=(
        "auto without out-of-scope examples: the in-scope calibration utterances per intent (on average) "
        "needed to trade in-scope answers for out-of-scope recall (pseudo_unknown); below it the "
        "conservative in_scope_rejection rule applies."))
    oos_score: Literal["auto", "retrieval", "similarity", "softmax"] = Field("auto", description=(
        "Score that decides out of scope: retrieval (confidence routes to FAISS retrieval, whose similarity "
        "decides), similarity (nearest indexed utterance alone), softmax (max probability alone); auto = the "
        "one that serves the objective best on the calibration data (similarity for pseudo_unknown and "
        "in_scope_rejection)."))
    pseudo_unknown_mix: float = Field(0.6, ge=0.5, lt=1.0, description=(
        "pseudo_unknown: weight of the first of the two mixed utterances. Higher puts pseudo-unknowns closer "
        "to a known intent, so the threshold rises: more out-of-scope caught, more in-scope rejected (for "
        "traffic with much out-of-scope); 0.5 is the midpoint."))
    in_scope_rejection: float = Field(0.01, ge=0, lt=0.5, description=(
        "in_scope_rejection: share of in-scope calibration queries the out-of-scope rule may reject; with "
        "fewer than 1/share calibration queries only those below every observed one are rejected."))
    oos_recall_target: float = Field(0.8, gt=0, le=1, description=(
        "accuracy_at_oos_recall: out-of-scope recall the thresholds must reach on validation data."))
    precision_target: float = Field(0.95, gt=0, le=1, description=(
        "precision: share of answered queries whose intent must be right on validation data."))
    top_k: int = Field(5, ge=1, le=50, description="Retrieved entries per query (the retrieval intent is "
                                                   "their similarity-weighted vote).")
    fallback: bool = Field(True, description="Apply the fallback at prediction time (false = classifier only).")


class Match(BaseModel):
    text: str = Field(description="Indexed training utterance or FAQ question.")
    intent: str | None = Field(description="Its intent (None for an FAQ entry without one).")
    answer: str | None = Field(description="FAQ answer for the entry (or for its intent), if any.")
    similarity: float = Field(description="Cosine similarity to the query.")
    source: Literal["utterance", "faq"] = Field(description="Where the entry came from.")


class IntentPrediction(Prediction):
    intent: str = Field(description="Predicted intent, or the out-of-scope label.")
    confidence: float = Field(description="Classifier probability of its top intent.")
    out_of_scope: bool = Field(description="True when the query matches no intent well enough.")
    fallback: bool = Field(description="True when the classifier was not confident and retrieval decided.")
    reason: str = Field(description="Why the fallback fired or not, with the thresholds compared.")
    answer: str | None = Field(None, description="FAQ answer for the predicted intent / best FAQ match.")
    matches: list[Match] = Field(default_factory=list, description="Nearest indexed entries (fallback only).")
    scores: dict[str, float] = Field(default_factory=dict, description="Classifier probability of every intent.")

    # Every classification result has label and score (verticals.Prediction); here they are the intent
    # and the confidence, under the names every other task uses.
    @computed_field(description="The predicted intent or the out-of-scope label (= intent).")  # type: ignore[misc]
    @property
    def label(self) -> str:
        return self.intent

    @computed_field(description="Classifier probability of its top intent (same as confidence).")  # type: ignore[misc]
    @property
    def score(self) -> float:
        return self.confidence

    def summary(self) -> str:
        shown = "OUT OF SCOPE" if self.out_of_scope else self.intent
        how = " via retrieval" if self.fallback and not self.out_of_scope else ""
        answer = f" -> {self.answer}" if self.answer and not self.out_of_scope else ""
        return f"{shown}{how} ({self.confidence:.3f}){answer}"
