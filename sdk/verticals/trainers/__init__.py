"""Trainers: fit / evaluate / predict for a model, swappable by name (``training.trainer``)."""

from .base import MetricsFn, Trainer
from .transformers import TransformersTrainer

__all__ = ["MetricsFn", "Trainer", "TransformersTrainer"]
