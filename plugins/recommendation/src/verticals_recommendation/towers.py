"""The two-tower model and its contrastive fine-tuning loop.

Both towers share one backbone (mean pooling + L2 norm, as all-MiniLM-L6-v2 was trained): the item tower
reads an item's catalogue text, the user tower reads the texts of the user's recent positives. Training
pairs (user history before a positive, that positive) are scored against every other item in the batch
(in-batch negatives). ``transformers.Trainer`` expects one input per example and a head that produces
the loss; a two-input contrastive batch does not fit it cleanly, so this is a small explicit loop with the
same ingredients: AdamW without decay on biases/norms, linear warmup, gradient clipping, bf16 autocast.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from verticals import TrainingConfig
from verticals.backbones.collate import Collator
from verticals.console import TrainingConsole
from verticals.heads.sequence import pool
from verticals.runtime import autocast

USER_SEPARATOR = " ; "


def user_text(item_texts: Sequence[str], history: Sequence[int], length: int) -> str:
    """The user tower's input: the last ``length`` positives, most recent first (truncation drops the oldest)."""
    return USER_SEPARATOR.join(item_texts[i] for i in reversed(list(history)[-length:]))


@dataclass(frozen=True)
class Pair:
    user_text: str
    item: int


def embed(backbone: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    hidden = backbone(**batch).last_hidden_state
    return nn.functional.normalize(pool(hidden.float(), batch["attention_mask"], "mean"), dim=-1)


def contrastive_loss(users: torch.Tensor, items: torch.Tensor, targets: torch.Tensor, temperature: float,
                     log_q: torch.Tensor | None) -> torch.Tensor:
    """Softmax over the batch's items; a column holding the row's own item again is not a negative."""
    logits = users @ items.T / temperature
    if log_q is not None:
        logits = logits - log_q[targets][None, :]
    same = targets[:, None] == targets[None, :]
    duplicate = same & ~torch.eye(len(targets), dtype=torch.bool, device=targets.device)
    logits = logits.masked_fill(duplicate, float("-inf"))
    return nn.functional.cross_entropy(logits, torch.arange(len(targets), device=targets.device))


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if param.ndim < 2 or "LayerNorm" in name else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def fit_two_tower(
    backbone: nn.Module,
    tokenizer: Any,
    pairs: Sequence[Pair],
    item_texts: Sequence[str],
    *,
    training: TrainingConfig,
    temperature: float,
    item_max_length: int,
    log_q: np.ndarray | None,
    precision: str,
    validate: Callable[[], dict[str, float]] | None = None,
    primary_metric: str = "hr@10",
    console: TrainingConsole | None = None,
) -> dict[str, Any]:
    """Fine-tune ``backbone`` in place; keep the weights of the epoch with the best ``validate()[primary_metric]``.
    Each epoch is reported through ``console`` (a bar over its steps, then one line). Returns a log."""
    from transformers import get_scheduler

    dev = next(backbone.parameters()).device
    collator = Collator(tokenizer.pad_token_id or 0)
    users = tokenizer([p.user_text for p in pairs], truncation=True, max_length=training.max_length)["input_ids"]
    needed = sorted({p.item for p in pairs})
    encoded = tokenizer([item_texts[i] for i in needed], truncation=True, max_length=item_max_length)["input_ids"]
    item_ids = dict(zip(needed, encoded))
    targets = np.array([p.item for p in pairs], dtype=np.int64)
    log_q_t = torch.tensor(log_q, dtype=torch.float32, device=dev) if log_q is not None else None

    batch_size = min(training.batch_size, len(pairs))
    steps_per_epoch = max(1, len(pairs) // batch_size)  # drop the ragged last batch: it has too few negatives
    total_steps = max(1, math.ceil(training.epochs * steps_per_epoch))
    optimizer = torch.optim.AdamW(_param_groups(backbone, training.weight_decay), lr=training.learning_rate)
    scheduler = get_scheduler(training.scheduler, optimizer, num_warmup_steps=int(training.warmup_ratio * total_steps),
                              num_training_steps=total_steps)
    rng = np.random.default_rng(training.seed)
    log: dict[str, Any] = {"pairs": len(pairs), "steps": 0, "epochs": []}
    best: tuple[float, dict[str, torch.Tensor]] | None = None
    patience = training.early_stopping_patience
    bad_epochs = 0
    step = 0
    epoch = 0
    epochs = math.ceil(total_steps / steps_per_epoch)
    console = console or TrainingConsole(total_epochs=epochs, primary_metric=primary_metric)
    while step < total_steps:
        epoch += 1
        backbone.train()
        console.begin_epoch(epoch, min(steps_per_epoch, total_steps - step), epochs=epochs)
        order = rng.permutation(len(pairs))
        losses = []
        for start in range(0, steps_per_epoch * batch_size, batch_size):
            if step >= total_steps:
                break
            idx = order[start : start + batch_size]
            user_batch = collator([{"input_ids": users[i], "attention_mask": [1] * len(users[i])} for i in idx])
            item_batch = collator([{"input_ids": item_ids[t], "attention_mask": [1] * len(item_ids[t])}
                                   for t in targets[idx]])
            with autocast(precision, dev):
                u = embed(backbone, {k: v.to(dev) for k, v in user_batch.items()})
                v = embed(backbone, {k: v.to(dev) for k, v in item_batch.items()})
            loss = contrastive_loss(u, v, torch.from_numpy(targets[idx]).to(dev), temperature, log_q_t)
            loss.backward()
            nn.utils.clip_grad_norm_(backbone.parameters(), training.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
            step += 1
            console.step(loss=losses[-1])
        entry: dict[str, Any] = {"epoch": epoch, "loss": float(np.mean(losses)) if losses else None}
        metrics: dict[str, float] = {}
        if validate is not None:
            metrics = validate()
            score = metrics.get(primary_metric, 0.0)
            entry["validation"] = score
            if best is None or score > best[0]:
                best = (score, {k: t.detach().clone() for k, t in backbone.state_dict().items()})
                bad_epochs = 0
            else:
                bad_epochs += 1
        console.end_epoch(epoch, train_loss=entry["loss"], metrics=metrics, learning_rate=scheduler.get_last_lr()[0],
                          epochs=epochs)
        log["epochs"].append(entry)
        if patience is not None and bad_epochs >= patience:
            break
    log["steps"] = step
    console.finish(restored=best is not None)
    if best is not None:
        backbone.load_state_dict(best[1])
        log["best_validation"] = best[0]
    backbone.eval()
    return log
