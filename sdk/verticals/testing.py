"""Helpers for fast offline tests of Verticals and of third-party packs.

``make_tiny_backbone`` writes a randomly initialised 2-layer BERT (hidden size 32) with the embedded
MiniLM tokenizer: it trains in seconds, so tests exercise the real code paths without the real model.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def make_tiny_backbone(directory: str | Path, *, seed: int = 0, hidden_size: int = 32, layers: int = 2) -> Path:
    """Write a tiny random-weight BERT model + tokenizer to ``directory`` and return it."""
    import torch
    from transformers import BertConfig, BertModel

    from .backbones import embedded_minilm_path, load_tokenizer

    directory = Path(directory)
    if (directory / "config.json").exists():
        return directory
    tokenizer = load_tokenizer(embedded_minilm_path())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=hidden_size * 2,
        max_position_embeddings=512,
    )
    torch.manual_seed(seed)
    model = BertModel(config)
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    return directory


@contextmanager
def only_plugins(*names: str) -> Iterator[None]:
    """Load only the named entry-point plugins (none if no names) while the block runs."""
    from ._plugins import PLUGINS_ENV, set_catalog

    previous = os.environ.get(PLUGINS_ENV)
    os.environ[PLUGINS_ENV] = ",".join(names)
    set_catalog(None)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(PLUGINS_ENV, None)
        else:
            os.environ[PLUGINS_ENV] = previous
        set_catalog(None)
