"""Verticals medical pack: biomedical named-entity recognition (task ``medical.ner``)."""

from .ner import MedicalEntity, MedicalNERTask, MedicalPrediction, MedicalRecord, NEROptions
from .text import align_tokens, pretokenize

__version__ = "0.1.0"

__all__ = [
    "MedicalEntity",
    "MedicalNERTask",
    "MedicalPrediction",
    "MedicalRecord",
    "NEROptions",
    "__version__",
    "align_tokens",
    "pretokenize",
]
