"""The trainable model: a Hugging Face backbone plus a Verticals head, and its persistence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save_file
from torch import nn

from ..bundles.bundle import read_verified
from ..errors import BundleError, ConfigError
from ..heads.base import Head, HeadOutput
from .loading import load_bundle_backbone

HEAD_FILE = "head.safetensors"
BACKBONE_DIR = "backbone"


class VerticalsModel(nn.Module):
    """``backbone(input) -> hidden states -> head -> HeadOutput(loss, logits)``."""

    def __init__(self, backbone: nn.Module, head: Head) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        # set while a student learns a teacher's intermediate layers (verticals.distill); None otherwise
        self.layer_distiller: Any = None  # a layer_distill.LayerDistiller (an nn.Module) or None

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        teacher_probs: torch.Tensor | None = None,
        teacher_input_ids: torch.Tensor | None = None,
        teacher_attention_mask: torch.Tensor | None = None,
        teacher_token_type_ids: torch.Tensor | None = None,
        teacher_pooled: torch.Tensor | None = None,
        **_: Any,
    ) -> HeadOutput:
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        # intermediate layers are matched in training steps only (evaluation batches carry no teacher inputs)
        layers = self.layer_distiller if self.training and (teacher_input_ids is not None
                                                            or teacher_pooled is not None) else None
        if layers is not None:
            layers.begin()
        encoded = self.backbone(**kwargs, output_hidden_states=True) if layers is not None else self.backbone(**kwargs)
        hidden = encoded.last_hidden_state
        if teacher_probs is None or self.distillation is None:
            output = self.head(hidden, attention_mask, labels)
        else:
            output = self.head(hidden, attention_mask, None)
            output.loss = distillation_loss(output.logits.float(), teacher_probs, labels, self.head.loss_fn,
                                            *self.distillation)
        if layers is not None and output.loss is not None:
            teacher_inputs = None
            if teacher_input_ids is not None:
                teacher_inputs = {"input_ids": teacher_input_ids, "attention_mask": teacher_attention_mask}
                if teacher_token_type_ids is not None:
                    teacher_inputs["token_type_ids"] = teacher_token_type_ids
            output.loss = output.loss + layers.loss(encoded.hidden_states, attention_mask, teacher_inputs,
                                                    teacher_pooled)
        return output

    # (teacher temperature, alpha, student temperature) while a student learns from a teacher's probabilities
    # (verticals.distill)
    distillation: tuple[float, float, float] | None = None

    def hidden_size(self) -> int:
        return int(self.backbone.config.hidden_size)


def distillation_loss(logits: torch.Tensor, teacher_probs: torch.Tensor, labels: torch.Tensor | None,
                      gold_loss: nn.Module, temperature: float, alpha: float,
                      student_temperature: float | None = None) -> torch.Tensor:
    """Hinton et al. (2015): ``alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(gold)``. The
    teacher's distribution at temperature T is ``softmax(log p / T)`` (log-probabilities differ from logits
    by a per-row constant, which softmax ignores). Rows are texts, or tokens for a tagger; a NaN teacher
    row (padding, later subwords) has no target, and gold labels of -100 none either, so records without a
    label only get the first term. T^2 keeps the soft term's gradients on the scale of the gold term.
    ``student_temperature`` (default: T) divides the student's logits instead of T; the scale is then
    ``T * T_student``, which is T^2 when they agree."""
    student_temperature = student_temperature or temperature
    width = logits.shape[-1]
    flat, teacher = logits.reshape(-1, width), teacher_probs.reshape(-1, width).float()
    keep = ~torch.isnan(teacher).any(dim=-1)
    if bool(keep.any()):
        teacher_t = torch.softmax(torch.log(teacher[keep].clamp_min(1e-12)) / temperature, dim=-1)
        student_t = torch.log_softmax(flat[keep] / student_temperature, dim=-1)
        soft = torch.nn.functional.kl_div(student_t, teacher_t, reduction="batchmean") \
            * temperature * student_temperature
    else:
        soft = flat.sum() * 0.0
    if labels is None or alpha >= 1.0 or not bool((labels != -100).any()):
        return soft
    return alpha * soft + (1.0 - alpha) * gold_loss(flat, labels.reshape(-1))


def apply_strategy(model: VerticalsModel, strategy: str, *, r: int = 8, alpha: int = 16,
                   dropout: float = 0.1) -> VerticalsModel:
    """full: train everything; head-only: freeze the backbone; lora: peft adapters on attention."""
    if strategy == "head-only":
        for param in model.backbone.parameters():
            param.requires_grad = False
    elif strategy == "lora":
        from peft import LoraConfig, get_peft_model

        targets = _lora_targets(model.backbone)
        lora = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, bias="none")
        model.backbone = get_peft_model(model.backbone, lora)
    elif strategy != "full":
        raise ConfigError(f"unknown training.strategy '{strategy}'; expected full, head-only or lora")
    return model


def _lora_targets(backbone: nn.Module) -> list[str]:
    names = {name.rsplit(".", 1)[-1] for name, mod in backbone.named_modules() if isinstance(mod, nn.Linear)}
    for candidates in (["query", "value"], ["q_proj", "v_proj"], ["q_lin", "v_lin"], ["qkv"]):
        if set(candidates) <= names:
            return candidates
    raise ConfigError(f"cannot find attention projections for LoRA among linear layers {sorted(names)}")


def merge_adapters(model: VerticalsModel) -> VerticalsModel:
    """Fold LoRA adapters into the base weights so a bundle is a plain backbone."""
    if hasattr(model.backbone, "merge_and_unload"):
        model.backbone = model.backbone.merge_and_unload()
    return model


def save_model(model: VerticalsModel, tokenizer: Any, directory: Path) -> None:
    merge_adapters(model)
    model.backbone.save_pretrained(directory / BACKBONE_DIR, safe_serialization=True)
    tokenizer.save_pretrained(directory / BACKBONE_DIR)
    state = {k: v.detach().contiguous().cpu() for k, v in model.head.state_dict().items()}
    save_file(state, str(directory / HEAD_FILE))


def load_model(directory: Path, head_cls: type[Head], num_labels: int, head_kwargs: dict[str, Any]) -> VerticalsModel:
    backbone = load_bundle_backbone(directory, BACKBONE_DIR)
    head = head_cls(int(backbone.config.hidden_size), num_labels, **head_kwargs)
    state = read_verified(directory, HEAD_FILE)  # the bytes checked against the manifest are the bytes loaded
    try:
        head.load_state_dict(load_tensors(state), strict=True)
    except Exception as exc:  # noqa: BLE001 - safetensors and torch raise their own error types
        raise BundleError(f"{directory / HEAD_FILE}: head weights do not match the bundle ({exc})") from None
    model = VerticalsModel(backbone, head)
    model.eval()
    return model
