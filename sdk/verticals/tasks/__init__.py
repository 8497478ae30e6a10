"""Task types: the core's generic ones and the interfaces packs build on."""

from .base import Evaluation, NoOptions, Prediction, Record, TaskType
from .text_classification import TextClassificationTask, TextPrediction, TextRecord
from .token_classification import Entity, TokenClassificationTask, TokenPrediction, TokenRecord
from .transformer import TransformerTask

__all__ = [
    "Entity",
    "Evaluation",
    "NoOptions",
    "Prediction",
    "Record",
    "TaskType",
    "TextClassificationTask",
    "TextPrediction",
    "TextRecord",
    "TokenClassificationTask",
    "TokenPrediction",
    "TokenRecord",
    "TransformerTask",
]
