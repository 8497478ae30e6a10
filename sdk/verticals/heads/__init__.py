"""Heads: small modules on top of backbone hidden states that return logits and loss."""

from .base import Head, HeadOutput
from .sequence import SequenceClassificationHead
from .token import TokenClassificationHead

__all__ = ["Head", "HeadOutput", "SequenceClassificationHead", "TokenClassificationHead"]
