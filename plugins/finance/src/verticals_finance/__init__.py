"""Verticals finance pack: financial news sentiment (Financial PhraseBank) and transaction fraud."""

from __future__ import annotations

from verticals import TextPrediction

from .fraud.task import FraudPrediction, FraudTask
from .sentiment import FinancialSentimentTask

__version__ = "0.1.0"

# finance.sentiment predicts the core TextPrediction; re-exported so each task's prediction model is here.
__all__ = ["FinancialSentimentTask", "FraudPrediction", "FraudTask", "TextPrediction", "__version__"]
