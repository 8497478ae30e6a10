"""Verticals customer-service pack: intent classification with a calibrated FAISS retrieval fallback."""

from __future__ import annotations

from .task import IntentOptions, IntentPrediction, IntentTask, Match

__version__ = "0.1.0"

__all__ = ["IntentOptions", "IntentPrediction", "IntentTask", "Match", "__version__"]
