"""Token classification head: dropout + linear per token."""

from __future__ import annotations

from torch import nn

from .base import Head, HeadOutput


class TokenClassificationHead(Head):
    """One label per token; positions labelled -100 (padding, special tokens, later subwords) are ignored."""

    def __init__(self, hidden_size: int, num_labels: int, config=None, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(hidden_size, num_labels, config, **kwargs)
        self.dropout = nn.Dropout(self.config.dropout)
        self.classifier = nn.Linear(hidden_size, num_labels)

    def forward(self, hidden_states, attention_mask, labels=None):  # type: ignore[no-untyped-def]
        logits = self.classifier(self.dropout(hidden_states))
        loss = None
        if labels is not None:
            loss = self.loss_fn(logits.float().reshape(-1, self.num_labels), labels.reshape(-1))
        return HeadOutput(loss=loss, logits=logits)
