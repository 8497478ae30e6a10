"""A convenience wrapper over a trained bundle: ``recommend(user, k)`` and ``score(user, items)``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from verticals import Predictor
from verticals import load as load_bundle

from .schema import Recommendations, ScoredItem


class Recommender:
    """``Recommender.load("bundle").recommend("42", k=10)``."""

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor

    @classmethod
    def load(cls, path: str | Path) -> Recommender:
        return cls(load_bundle(path))

    def recommend(self, user: str, k: int = 10, *, exclude_seen: bool = True,
                  history: Sequence[str] | None = None) -> list[ScoredItem]:
        """The ``k`` best catalogue items for ``user`` (FAISS over every item, cold ones included)."""
        request = {"user": user, "k": k, "exclude_seen": exclude_seen, "history": list(history) if history else None}
        result = self.predictor.predict_one(request)
        assert isinstance(result, Recommendations)
        return result.items

    def score(self, user: str, items: Sequence[str], *, history: Sequence[str] | None = None) -> dict[str, float]:
        """Ranking score of each candidate for ``user`` (re-ranker log-odds, or the similarity in a bundle without
        a re-ranker), in the order given; seen items are scored too."""
        request = {"user": user, "items": list(items), "history": list(history) if history else None}
        result = self.predictor.predict_one(request)
        assert isinstance(result, Recommendations)
        by_item = {s.item: s.score for s in result.items}
        return {item: by_item[item] for item in items}
