"""Sequence classification head: pool token states, dropout, linear."""

from __future__ import annotations

import torch
from torch import nn

from .base import Head, HeadOutput


def pool(hidden_states: torch.Tensor, attention_mask: torch.Tensor, how: str) -> torch.Tensor:
    """Pool ``[batch, seq, hidden]`` to ``[batch, hidden]`` ignoring padding."""
    if how == "cls":
        return hidden_states[:, 0]
    mask = attention_mask.unsqueeze(-1).to(hidden_states.dtype)
    if how == "max":
        return hidden_states.masked_fill(mask == 0, torch.finfo(hidden_states.dtype).min).max(dim=1).values
    return (hidden_states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


class SequenceClassificationHead(Head):
    """One label per input. Mean pooling is the default because sentence-transformers backbones such as
    all-MiniLM-L6-v2 were trained with it."""

    def __init__(self, hidden_size: int, num_labels: int, config=None, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(hidden_size, num_labels, config, **kwargs)
        self.dropout = nn.Dropout(self.config.dropout)
        self.classifier = nn.Linear(hidden_size, num_labels)

    def forward(self, hidden_states, attention_mask, labels=None):  # type: ignore[no-untyped-def]
        pooled = pool(hidden_states, attention_mask, self.config.pooling)
        logits = self.classifier(self.dropout(pooled))
        loss = self.loss_fn(logits.float(), labels) if labels is not None else None
        return HeadOutput(loss=loss, logits=logits)
