"""Fitting the fusion MLPs: mini-batch AdamW, class-weighted loss, early stopping on validation AUPRC."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from verticals import TrainingConfig
from verticals.console import TrainingConsole

from .options import FraudOptions


def embed_columns(encoder: tuple[Any, Any], rows: Sequence[dict[str, Any]], columns: Sequence[str],
                  training: TrainingConfig) -> np.ndarray:
    """One normalised sentence embedding per text column, side by side (blank text embeds as '')."""
    from verticals.backbones.embeddings import encode_texts
    from verticals.runtime import resolve_precision

    backbone, tokenizer = encoder
    precision = resolve_precision(training.precision)
    parts = [encode_texts(backbone, tokenizer, [str(r[c]) for r in rows], max_length=training.max_length,
                          batch_size=training.eval_batch_size, precision=precision) for c in columns]
    return np.concatenate(parts, axis=1)


def predict_proba(models: Sequence[torch.nn.Module], x: np.ndarray) -> np.ndarray:
    """Mean fraud probability of the ensemble."""
    inputs = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    with torch.inference_mode():
        probs = [torch.softmax(m.eval()(inputs).logits.float(), dim=-1)[:, 1].numpy() for m in models]
    return np.mean(probs, axis=0).astype(np.float64)


def class_weights(y: np.ndarray, how: str) -> list[float] | None:
    """'balanced': n / (2 * count) per class, as scikit-learn's class_weight='balanced'."""
    if how == "none":
        return None
    counts = np.bincount(y, minlength=2).astype(np.float64)
    return [float(len(y) / (2 * c)) for c in counts]


def train_ensemble(head_cls: type, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
                   options: FraudOptions, training: TrainingConfig,
                   console: TrainingConsole | None = None) -> list[torch.nn.Module]:
    """``options.ensemble`` independently seeded heads, each restored to its best validation-AUPRC epoch.

    Each epoch of each head is reported through ``console`` (a bar over its batches, then one line with the
    head's threshold-free validation metrics, computed as ``fraud_metrics`` computes them)."""
    from sklearn.metrics import average_precision_score, log_loss, roc_auc_score, roc_curve

    weights = class_weights(y_train, options.class_weight)
    xt = torch.from_numpy(np.ascontiguousarray(x_train, dtype=np.float32))
    yt = torch.from_numpy(np.array(y_train, dtype=np.int64))
    xv = torch.from_numpy(np.ascontiguousarray(x_val, dtype=np.float32))
    sample_weight = np.where(y_val == 1, 1.0, options.negative_weight)
    epochs = max(1, int(round(training.epochs)))
    steps = math.ceil(len(xt) / training.batch_size)
    console = console or TrainingConsole(total_epochs=options.ensemble * epochs, primary_metric="auprc")
    models = []
    for member in range(options.ensemble):
        run = f"head {member + 1}/{options.ensemble}" if options.ensemble > 1 else None
        seed = training.seed + member
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        model = head_cls(x_train.shape[1], 2, training.head, class_weights=weights,
                         label_smoothing=training.label_smoothing, hidden_units=options.hidden_units,
                         layers=options.layers)
        optimizer = torch.optim.AdamW(model.parameters(), lr=training.learning_rate, weight_decay=training.weight_decay)
        best, best_state, stale = (-1.0, -np.inf), copy.deepcopy(model.state_dict()), 0
        for epoch in range(1, epochs + 1):
            model.train()
            console.begin_epoch(epoch, steps, run=run, epochs=epochs)
            losses = []
            for batch in torch.randperm(len(xt), generator=generator).split(training.batch_size):
                loss = model(xt[batch], labels=yt[batch]).loss
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), training.max_grad_norm)
                optimizer.step()
                losses.append(float(loss.detach()) * len(batch))
                console.step()
            model.eval()
            with torch.inference_mode():
                p_val = torch.softmax(model(xv).logits.float(), dim=-1)[:, 1].numpy()
            # AUPRC first; log-loss breaks ties so training goes on while AUPRC is saturated (e.g. 1.0)
            score = (float(average_precision_score(y_val, p_val, sample_weight=sample_weight)),
                     -float(log_loss(y_val, p_val, sample_weight=sample_weight, labels=[0, 1])))
            fpr, tpr, _ = roc_curve(y_val, p_val)
            console.end_epoch(epoch, train_loss=sum(losses) / len(xt), validation_loss=-score[1], run=run,
                              epochs=epochs, learning_rate=training.learning_rate, improved=score > best,
                              metrics={"auprc": score[0], "roc_auc": float(roc_auc_score(y_val, p_val)),
                                       "recall_at_1pct_fpr": float(tpr[fpr <= 0.01].max())})
            if score > best:
                best, best_state, stale = score, copy.deepcopy(model.state_dict()), 0
            else:
                stale += 1
                if training.early_stopping_patience and stale >= training.early_stopping_patience:
                    break
        model.load_state_dict(best_state)
        models.append(model.eval())
    console.finish()
    return models
