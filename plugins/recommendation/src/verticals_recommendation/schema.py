"""What the recommendation task reads, predicts and is configured with."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from verticals import DataConfig, Prediction, Record


def _as_id(value: Any) -> Any:
    # CSV cells are strings but `--field user=42` and JSON files give numbers: ids are compared as text.
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip() if isinstance(value, (str, int, float)) else value


class InteractionRecord(Record):
    """One interaction (training/evaluation) or one request (prediction).

    Training and evaluation files carry ``user``, ``item`` and usually ``rating`` (and optionally a
    ``timestamp``). A prediction request carries ``user`` plus optionally ``k`` (recommend from the whole
    catalogue), ``items`` (score just these candidates) or ``history`` (liked item ids, for a user the
    model never saw).
    """

    user: str = Field(description="User id.")
    item: str | None = Field(None, description="Item id of the interaction.")
    rating: float | None = Field(None, description="Rating or implicit label; none = positive.")
    timestamp: str | None = Field(None, description="Orders a user's interactions; none = file order.")
    k: int | None = Field(None, ge=1, le=10_000, description="How many items to recommend (default task.k).")
    items: list[str] | None = Field(None, description="Candidate item ids to score instead of recommending.")
    history: list[str] | None = Field(None, description="Liked item ids, most recent last (overrides training).")
    exclude_seen: bool = Field(True, description="Leave out items the user interacted with in training.")

    @field_validator("user", "item", "timestamp", mode="before")
    @classmethod
    def _ids(cls, value: Any) -> Any:
        value = _as_id(value)
        return None if value == "" else value

    @field_validator("rating", "k", mode="before")
    @classmethod
    def _blank_number(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("items", "history", mode="before")
    @classmethod
    def _id_list(cls, value: Any) -> Any:
        if isinstance(value, str):  # "1,2,3" from a CSV cell or --field items=1,2,3
            value = [part for part in value.split(",") if part.strip()]
        if isinstance(value, (list, tuple)):
            return [_as_id(v) for v in value]
        return value


class ScoredItem(BaseModel):
    item: str
    score: float = Field(description="Ranking score: the re-ranker's log-odds that the item is the user's next "
                         "positive, or the similarity when the bundle has no re-ranker.")
    similarity: float = Field(description="Cosine similarity of the user and item towers.")
    cold: bool = Field(description="True when the item had no training interactions.")
    text: str = Field(description="The item's catalogue text.")


class Recommendations(Prediction):
    """Ranked items for one user, best first."""

    user: str
    items: list[ScoredItem]

    def summary(self) -> str:
        shown = ", ".join(f"{s.item} ({s.score:.3f})" for s in self.items[:10])
        return f"user {self.user}: {shown or 'no items'}"


class RecommendationData(DataConfig):
    """Columns of the interactions file and where the item catalogue is."""

    user_column: str = Field("user", description="Interactions column with the user id.")
    item_column: str = Field("item", description="Interactions column with the item id.")
    rating_column: str = Field("rating", description="Rating/implicit-label column; absent = every row positive.")
    timestamp_column: str = Field("timestamp", description="Optional time column ordering each user's rows.")
    positive_threshold: float = Field(4.0, description="A rating >= this is a positive (1 for 0/1 labels).")
    items: str | None = Field(None, description="Item catalogue file (CSV/TSV/JSONL); required for training.")
    items_format: str = Field("auto", description="Format of the catalogue file (auto by extension).")
    item_id_column: str = Field("item", description="Catalogue column with the item id.")
    text_fields: list[str] = Field(
        default_factory=lambda: ["title"], min_length=1,
        description="Catalogue columns joined (in order, ' | ') into the item text the item tower reads.",
    )


class RecommendationOptions(BaseModel):
    """Model and evaluation options of ``recommendation.scoring``."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # every number finite: see verticals.config

    k: int = Field(10, ge=1, le=10_000, description="Items returned per user when a request gives no k.")
    history_length: int = Field(10, ge=1, le=1_000, description="Most recent positives the user tower reads.")
    targets_per_user: int | None = Field(
        16, ge=1, le=1_000_000,
        description="Training pairs per user (their most recent positives as targets); null = all."
    )
    temperature: float = Field(0.05, gt=0, le=100, description="Softmax temperature of the in-batch contrastive loss.")
    logq_correction: bool = Field(
        True, description="Subtract log item frequency from in-batch logits (Yi et al. 2019) so the popularity "
        "the in-batch negatives penalise is learnt back."
    )
    item_max_length: int = Field(48, ge=8, le=32_768, description="Token budget of one item text.")
    eval_negatives: int = Field(99, ge=1, le=100_000, description="Sampled negatives per held-out positive.")
    eval_seed: int | None = Field(None, ge=0, le=2**32 - 1,
                                  description="Seed of the negative sampling; null = training.seed.")
    max_validation_cases: int | None = Field(
        2000, ge=1, le=10_000_000, description="Validation cases scored per epoch for model selection (seeded subset)."
    )
    rerank: bool = Field(
        True, description="Fit the re-ranking head (similarity + popularity + item-kNN, logistic regression) on "
        "the validation positives after training; without validation positives the score is the similarity."
    )
    rerank_min_cases: int = Field(
        50, ge=1, le=10_000_000,
        description="Fewest validation positives the re-ranker is fitted on; below it the score stays the "
        "similarity (a regression on a handful of cases learns noise)."
    )
    neighbours: int = Field(100, ge=1, le=10_000, description="Item-kNN neighbours kept per item for the re-ranker.")
    recent_positives: int = Field(5, ge=1, le=1_000, description="Most recent positives behind the re-ranker's "
                                  "'recent' item-kNN feature.")
    candidates: int = Field(200, ge=1, le=100_000,
                            description="FAISS nearest items re-ranked per recommend() call, besides "
                            "the item-kNN neighbours of the user's positives.")
