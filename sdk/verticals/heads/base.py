"""The head interface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import nn
from transformers.utils import ModelOutput

from ..config import HeadConfig


@dataclass
class HeadOutput(ModelOutput):
    """``loss`` is set when labels were given; ``logits`` always. A ModelOutput so transformers.Trainer
    reads it like any Hugging Face model's output."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None


class Head(nn.Module, ABC):
    """A module mapping backbone hidden states ``[batch, seq, hidden]`` to logits (and a loss)."""

    def __init__(
        self,
        hidden_size: int,
        num_labels: int,
        config: HeadConfig | None = None,
        *,
        label_smoothing: float = 0.0,
        class_weights: list[float] | None = None,
    ) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.num_labels = num_labels
        self.config = config or HeadConfig()
        weight = torch.tensor(class_weights, dtype=torch.float32) if class_weights else None
        # Weighted classes and smoothing are part of the loss, so they live with the head.
        self.loss_fn = nn.CrossEntropyLoss(weight=weight, label_smoothing=label_smoothing, ignore_index=-100)

    @abstractmethod
    def forward(
        self, hidden_states: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor | None = None
    ) -> HeadOutput:
        """Return logits (and loss when ``labels`` is given)."""
