"""Verticals recommendation pack: text two-tower recommendation scoring with FAISS candidate retrieval."""

from __future__ import annotations

from .recommender import Recommender

__version__ = "0.1.0"

__all__ = ["Recommender", "__version__"]
