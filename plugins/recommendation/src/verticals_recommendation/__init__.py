"""Verticals recommendation pack: text two-tower recommendation scoring with FAISS candidate retrieval."""

from __future__ import annotations

from .recommender import Recommender
from .schema import Recommendations, ScoredItem

__version__ = "0.1.0"

__all__ = ["Recommendations", "Recommender", "ScoredItem", "__version__"]
