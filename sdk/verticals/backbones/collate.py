"""Batching for training and fast inference: dynamic padding, length-sorted batches, inference mode."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from ..runtime import autocast, module_device

MODEL_KEYS = ("input_ids", "attention_mask", "token_type_ids")
TEACHER_KEYS = ("teacher_input_ids", "teacher_attention_mask", "teacher_token_type_ids")


class Collator:
    """Pads a batch of encoded examples to its own longest member (dynamic padding).

    Keys other than the model inputs and ``labels`` (e.g. word alignment kept for decoding) are dropped.
    Sequence labels (ints) are stacked; token labels (lists) are padded with -100.
    """

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = None) -> None:
        self.pad_token_id = pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        length = max(len(f["input_ids"]) for f in features)
        if self.pad_to_multiple_of:
            length = -(-length // self.pad_to_multiple_of) * self.pad_to_multiple_of
        batch: dict[str, torch.Tensor] = {}
        for key in MODEL_KEYS:
            if key not in features[0]:
                continue
            pad = self.pad_token_id if key == "input_ids" else 0
            rows = [list(f[key]) + [pad] * (length - len(f[key])) for f in features]
            batch[key] = torch.tensor(rows, dtype=torch.long)
        if "labels" in features[0] and features[0]["labels"] is not None:
            first = features[0]["labels"]
            if isinstance(first, (list, tuple, np.ndarray)):
                rows = [list(f["labels"]) + [-100] * (length - len(f["labels"])) for f in features]
                batch["labels"] = torch.tensor(rows, dtype=torch.long)
            else:
                batch["labels"] = torch.tensor([f["labels"] for f in features], dtype=torch.long)
        if "teacher_input_ids" in features[0]:  # the teacher's own tokenisation (intermediate-layer distillation)
            teacher_length = max(len(f["teacher_input_ids"]) for f in features)
            for key in TEACHER_KEYS:
                if key in features[0]:  # padding ids are masked out, so 0 serves every tokenizer
                    rows = [list(f[key]) + [0] * (teacher_length - len(f[key])) for f in features]
                    batch[key] = torch.tensor(rows, dtype=torch.long)
        if "teacher_pooled" in features[0]:  # the teacher's pooled layer states, computed once (layer_distill)
            batch["teacher_pooled"] = torch.from_numpy(np.stack([np.asarray(f["teacher_pooled"], dtype=np.float32)
                                                                 for f in features]))
        if "teacher_probs" in features[0]:  # a distillation's soft targets: per text, or per token (NaN = none)
            rows = [np.asarray(f["teacher_probs"], dtype=np.float32) for f in features]
            if rows[0].ndim == 2:
                rows = [np.pad(r, ((0, length - len(r)), (0, 0)), constant_values=np.nan) for r in rows]
            batch["teacher_probs"] = torch.from_numpy(np.stack(rows))
        return batch


def length_sorted_batches(features: Sequence[dict[str, Any]], collator: Collator, batch_size: int, dev: torch.device,
                          progress: bool = False) -> Iterator[tuple[np.ndarray, dict[str, torch.Tensor]]]:
    """``(indices, model-input batch on dev)`` over ``features`` sorted by length (each batch pads little);
    the indices say where each row's result goes back in input order."""
    order = np.argsort([-len(f["input_ids"]) for f in features], kind="stable")
    starts: Iterable[int] = range(0, len(order), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="predict", unit="batch")
    for start in starts:
        idx = order[start : start + batch_size]
        batch = collator([{k: features[i][k] for k in MODEL_KEYS if k in features[i]} for i in idx])
        yield idx, {k: v.to(dev) for k, v in batch.items()}


def predict_logits(
    model: torch.nn.Module,
    features: Sequence[dict[str, Any]],
    collator: Collator,
    *,
    batch_size: int = 128,
    precision: str = "fp32",
    progress: bool = False,
) -> list[np.ndarray]:
    """Logits per example in input order (token logits trimmed to each example's length).

    Examples are sorted by length so each batch pads little; results are put back in input order.
    """
    if not features:
        return []
    dev = module_device(model)
    out: list[np.ndarray | None] = [None] * len(features)
    if model.training:
        model.eval()
    with torch.inference_mode(), autocast(precision, dev):
        for idx, batch in length_sorted_batches(features, collator, batch_size, dev, progress):
            logits = model(**batch).logits.float().cpu().numpy()
            for row, i in enumerate(idx):
                out[i] = logits[row, : len(features[i]["input_ids"])] if logits.ndim == 3 else logits[row]
    return out  # type: ignore[return-value]
