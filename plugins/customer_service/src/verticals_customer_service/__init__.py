"""Verticals customer-service pack: intent classification with a calibrated FAISS retrieval fallback."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
