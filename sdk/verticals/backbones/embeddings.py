"""Sentence embeddings from a backbone: used by retrieval, by text features of tabular tasks and by
two-tower scorers. Mean pooling + L2 normalisation, as all-MiniLM-L6-v2 was trained."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..heads.sequence import pool
from ..runtime import autocast, module_device
from .collate import Collator


def encode_texts(
    backbone: torch.nn.Module,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    max_length: int = 128,
    batch_size: int = 128,
    precision: str = "fp32",
    pooling: str = "mean",
    normalize: bool = True,
) -> np.ndarray:
    """``[len(texts), hidden]`` float32 embeddings, computed in length-sorted batches under inference mode."""
    if not texts:
        hidden = int(getattr(getattr(backbone, "config", None), "hidden_size", 0))
        return np.zeros((0, hidden), dtype=np.float32)
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length)
    features = [{k: encoded[k][i] for k in encoded.keys()} for i in range(len(texts))]
    collator = Collator(tokenizer.pad_token_id or 0)
    order = np.argsort([-len(f["input_ids"]) for f in features], kind="stable")
    dev = module_device(backbone)
    out = np.zeros((len(texts), int(backbone.config.hidden_size)), dtype=np.float32)
    backbone.eval()
    with torch.inference_mode(), autocast(precision, dev):
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = {k: v.to(dev) for k, v in collator([features[i] for i in idx]).items()}
            hidden = backbone(**batch).last_hidden_state
            vectors = pool(hidden.float(), batch["attention_mask"], pooling)
            if normalize:
                vectors = torch.nn.functional.normalize(vectors, dim=-1)
            out[idx] = vectors.cpu().numpy()
    return out
