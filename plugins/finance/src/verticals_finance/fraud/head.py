"""The fusion head: an MLP over [scaled numeric | one-hot categories | text embeddings]."""

from __future__ import annotations

import torch
from torch import nn
from verticals import Head, HeadConfig, HeadOutput


class FusionHead(Head):
    """Scores a fused tabular feature vector. ``hidden_states`` is ``[batch, features]`` here, not token
    states: the text columns were already pooled into sentence embeddings by the backbone."""

    name = "finance.fusion"

    def __init__(self, hidden_size: int, num_labels: int, config: HeadConfig | None = None, *,
                 label_smoothing: float = 0.0, class_weights: list[float] | None = None,
                 hidden_units: int = 256, layers: int = 2) -> None:
        super().__init__(hidden_size, num_labels, config, label_smoothing=label_smoothing,
                         class_weights=class_weights)
        blocks: list[nn.Module] = []
        width_in, width = hidden_size, hidden_units
        for _ in range(layers):
            blocks += [nn.Linear(width_in, width), nn.GELU(), nn.Dropout(self.config.dropout)]
            width_in, width = width, max(8, width // 2)
        self.mlp = nn.Sequential(*blocks)
        self.classifier = nn.Linear(width_in, num_labels)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> HeadOutput:
        logits = self.classifier(self.mlp(hidden_states))
        loss = self.loss_fn(logits.float(), labels) if labels is not None else None
        return HeadOutput(loss=loss, logits=logits)
