"""Intermediate-layer distillation: the student's hidden states and self-attention relations learn a teacher's.

Two losses, added to the logits loss while a student trains (``verticals distill --hidden-weight`` and
``--attention-weight``), over pairs of (student layer, teacher layer) given by a layer map:

* **hidden states** (PKD, Sun et al. 2019; TinyBERT): the student's layer output goes through a learned
  linear projection to the teacher's width (e.g. 384 -> 768) and is compared with the teacher's by MSE. We
  compare the *mean-pooled* sentence vector of each layer, not every token: a teacher may split words
  otherwise than the MiniLM student (a BPE vocabulary), so token positions need not line up, while the
  pooled vector exists for both and is what the (mean-pooling) classification head reads.
* **self-attention relations** (MiniLMv2, Wang et al. 2021): per layer, the query-query, key-key and
  value-value scaled dot-product relations, split into the same number of relation heads for both models
  (so different head counts and widths work), teacher -> student KL divergence. Relations are
  [sequence x sequence], so both tokenizers must split each input into the same tokens (checked before
  training; the ids may differ, as mpnet's and MiniLM's do).

Hidden states alone (no attention relations) need no teacher forward while the student trains: the
teacher's pooled states of the mapped layers are computed once per training input (:func:`pooled_states`)
and kept with the teacher's logits in the distillation's cache, so a student epoch costs what a
logits-only epoch costs. Attention relations are per token pair and are computed live.

The projection lives on the model only while it trains (it is in the training checkpoints, so ``--resume``
restores it) and is dropped before the bundle is written: the student bundle is a plain backbone + head.
The teacher is held outside the module tree (no gradients, not in checkpoints, not in the optimizer).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError

RELATION_NAMES = (("query", "key", "value"), ("q", "k", "v"), ("q_lin", "k_lin", "v_lin"))


def parse_layer_map(spec: str | Sequence[tuple[int, int]] | None, student_layers: int,
                    teacher_layers: int) -> list[tuple[int, int]]:
    """``"2:4,4:8,6:12"`` (student layer : teacher layer, 1-based; 0 is the embeddings) or ``"auto"``/None:
    every student layer k to teacher layer round(k * teacher_layers / student_layers), the uniform mapping."""
    if spec is None or spec == "auto":
        return [(k, max(1, round(k * teacher_layers / student_layers))) for k in range(1, student_layers + 1)]
    pairs: list[tuple[int, int]] = []
    if isinstance(spec, str):
        for part in spec.split(","):
            try:
                s, t = (int(x) for x in part.strip().split(":"))
            except ValueError:
                raise ConfigError(f"--layer-map: expected STUDENT:TEACHER pairs such as 2:4,4:8,6:12 or 'auto', "
                                  f"found '{part.strip()}'") from None
            pairs.append((s, t))
    else:
        pairs = [(int(s), int(t)) for s, t in spec]
    for s, t in pairs:
        if not (0 <= s <= student_layers and 0 <= t <= teacher_layers):
            raise ConfigError(f"--layer-map: pair {s}:{t} is out of range; the student has {student_layers} layers "
                              f"and the teacher {teacher_layers} (0 = embeddings)")
    if not pairs:
        raise ConfigError("--layer-map: no layer pairs given")
    return pairs


def _config(model: nn.Module) -> Any:
    return model.config


def _encoder_layers(model: nn.Module) -> nn.ModuleList:
    count = int(_config(model).num_hidden_layers)
    for _, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == count:
            return module
    raise ConfigError(f"cannot find the {count} transformer layers of {type(model).__name__} for --attention-weight")


def _qkv(layer: nn.Module) -> tuple[nn.Module, nn.Module, nn.Module]:
    linear = {name.rsplit(".", 1)[-1]: module
              for name, module in layer.named_modules() if isinstance(module, nn.Linear)}
    for names in RELATION_NAMES:
        if all(name in linear for name in names):
            return linear[names[0]], linear[names[1]], linear[names[2]]
    raise ConfigError(f"cannot find query/key/value projections in {type(layer).__name__} for --attention-weight")


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def relation_kl(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor, heads: int) -> torch.Tensor:
    """MiniLMv2's relation loss for one of Q/K/V: ``[B, L, width]`` vectors of each model, split into ``heads``
    relation heads; KL(teacher || student) of the softmax-normalised scaled dot products, averaged over the
    real (unpadded) query positions and the heads."""
    def relations(x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        x = x.float().view(batch, length, heads, width // heads).transpose(1, 2)
        scores = x @ x.transpose(-1, -2) / math.sqrt(width // heads)
        scores = scores.masked_fill(mask[:, None, None, :] == 0, torch.finfo(scores.dtype).min)
        return torch.log_softmax(scores, dim=-1)

    log_s, log_t = relations(student), relations(teacher)
    kl = (log_t.exp() * (log_t - log_s)).sum(dim=-1)  # [B, heads, L]
    rows = mask[:, None, :].to(kl.dtype).expand_as(kl)
    return (kl * rows).sum() / rows.sum().clamp(min=1.0)


class LayerDistiller(nn.Module):
    """The intermediate-layer losses of one student/teacher pair (see the module docstring)."""

    def __init__(self, student: nn.Module, teacher: nn.Module, layer_map: Sequence[tuple[int, int]], *,
                 hidden_weight: float, attention_weight: float) -> None:
        super().__init__()
        s_cfg, t_cfg = _config(student), _config(teacher)
        self.layer_map = [(int(s), int(t)) for s, t in layer_map]
        self.hidden_weight, self.attention_weight = float(hidden_weight), float(attention_weight)
        s_width, t_width = int(s_cfg.hidden_size), int(t_cfg.hidden_size)
        # training-only parameters: one projection per mapped pair (layers differ in what they encode)
        self.projections = nn.ModuleList(nn.Linear(s_width, t_width) for _ in self.layer_map)
        self._teacher = [teacher.eval().requires_grad_(False)]  # a list: not a submodule, never trained or saved
        self.relation_heads = self._relation_heads(s_cfg, t_cfg)
        self._captured: dict[tuple[str, int, int], torch.Tensor] = {}
        self._hooks: list[Any] = []
        if self.attention_weight > 0:
            self._hook(student, "student", [s for s, _ in self.layer_map])
            self._hook(teacher, "teacher", [t for _, t in self.layer_map])

    @staticmethod
    def _relation_heads(s_cfg: Any, t_cfg: Any) -> int:
        s_width, t_width = int(s_cfg.hidden_size), int(t_cfg.hidden_size)
        for heads in (int(t_cfg.num_attention_heads), int(s_cfg.num_attention_heads)):
            if s_width % heads == 0 and t_width % heads == 0:
                return heads
        return math.gcd(s_width, t_width)

    def _hook(self, model: nn.Module, who: str, layers: list[int]) -> None:
        stack = _encoder_layers(model)
        for layer in layers:
            if layer == 0:
                raise ConfigError("--attention-weight: layer 0 (the embeddings) has no self-attention; map layers >= 1")
            for part, module in enumerate(_qkv(stack[layer - 1])):
                def keep(_module: nn.Module, _inputs: Any, output: torch.Tensor,
                         key: tuple[str, int, int] = (who, layer, part)) -> None:
                    if self._capturing:
                        self._captured[key] = output
                self._hooks.append(module.register_forward_hook(keep))

    _capturing = False

    def begin(self) -> None:
        """Called before the student's forward: capture the Q/K/V outputs of the mapped layers."""
        self._captured.clear()
        self._capturing = self.attention_weight > 0

    def loss(self, student_hidden: Sequence[torch.Tensor], attention_mask: torch.Tensor,
             teacher_inputs: dict[str, torch.Tensor] | None = None,
             teacher_pooled: torch.Tensor | None = None) -> torch.Tensor:
        """The weighted layer losses of one batch: from ``teacher_pooled`` (``[batch, pairs, teacher width]``,
        precomputed by :func:`pooled_states`) when given, else from a teacher forward on ``teacher_inputs``."""
        device = attention_mask.device
        if teacher_pooled is None:
            if teacher_inputs is None:
                raise ValueError("LayerDistiller.loss needs the teacher's inputs or its pooled states")
            teacher = self._teacher[0]
            if next(teacher.parameters()).device != device:
                teacher.to(device)
            with torch.no_grad():
                out = teacher(**{k: v.to(device) for k, v in teacher_inputs.items()}, output_hidden_states=True)
            teacher_mask = teacher_inputs["attention_mask"].to(device)
            theirs_by_pair = [mean_pool(out.hidden_states[t], teacher_mask).float() for _, t in self.layer_map]
        else:
            if self.attention_weight > 0:
                raise ValueError("attention relations need the teacher's forward, not pooled states")
            theirs_by_pair = list(teacher_pooled.to(device).float().unbind(dim=1))
        self._capturing = False
        total = student_hidden[-1].new_zeros((), dtype=torch.float32)
        if self.hidden_weight > 0:
            for projection, (s, _), theirs in zip(self.projections, self.layer_map, theirs_by_pair, strict=True):
                ours = projection(mean_pool(student_hidden[s], attention_mask).float())
                total = total + self.hidden_weight * nn.functional.mse_loss(ours, theirs) / len(self.layer_map)
        if self.attention_weight > 0:
            assert teacher_inputs is not None
            teacher_mask = teacher_inputs["attention_mask"].to(device)
            if teacher_mask.shape != attention_mask.shape:
                raise ConfigError("--attention-weight: teacher and student tokenised a batch differently")
            for s, t in self.layer_map:
                for part in range(3):
                    kl = relation_kl(self._captured[("student", s, part)], self._captured[("teacher", t, part)],
                                     attention_mask, self.relation_heads)
                    total = total + self.attention_weight * kl / (3 * len(self.layer_map))
        self._captured.clear()
        return total

    def close(self) -> None:
        """Remove the hooks and let go of the teacher (the model is then a plain student again)."""
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()
        self._captured.clear()
        self._teacher.clear()


def pooled_states(teacher: nn.Module, features: Sequence[dict[str, Any]], collator: Any, layers: Sequence[int], *,
                  batch_size: int = 64, precision: str = "fp32") -> list[Any]:
    """The teacher's mean-pooled hidden state of each of ``layers`` (0 = embeddings) for every feature: one
    float32 ``[len(layers), width]`` array per feature, in input order (batches sorted by length, as
    ``predict_logits`` does). ``teacher`` is the teacher's backbone."""
    from ..runtime import autocast, module_device
    from .collate import length_sorted_batches

    dev = module_device(teacher)
    teacher.eval()
    out: list[Any] = [None] * len(features)
    with torch.inference_mode(), autocast(precision, dev):
        for idx, batch in length_sorted_batches(features, collator, batch_size, dev):
            hidden = teacher(**batch, output_hidden_states=True).hidden_states
            pooled = torch.stack([mean_pool(hidden[t], batch["attention_mask"]).float() for t in layers], dim=1)
            for row, i in enumerate(idx):
                out[i] = pooled[row].cpu().numpy()
    return out
