"""ONNX export of a bundle's model (encoder + head), checked against PyTorch: ``verticals export``.

The export directory holds ``model.onnx`` (inputs ``input_ids``, ``attention_mask`` [, ``token_type_ids``],
output ``logits``; batch and sequence axes dynamic), the tokenizer files, and ``export.json`` with the
task, labels and the measured parity (max abs difference of logits between ONNX Runtime and PyTorch on a
padded batch of a different size and length than the one traced). Needs ``pip install 'verticals[export]'``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from .bundle import atomic_directory, check_output
from .engines import CHECK_TEXTS, TRACE_TEXTS, ParityError, export_graph, require_onnxruntime
from .errors import ConfigError

MODEL_FILE = "model.onnx"
EXPORT_FILE = "export.json"
DEFAULT_TOLERANCE = 1e-4


class ExportResult(BaseModel):
    """What ``export`` wrote and how closely ONNX Runtime reproduces PyTorch."""

    path: str = Field(description="Export directory.")
    task: str
    task_type: str
    labels: list[str]
    inputs: list[str]
    opset: int
    max_abs_diff: float = Field(description="Max |logits_onnx - logits_torch| on the check batch.")
    tolerance: float
    check_batch: list[int] = Field(description="Shape [batch, sequence] of the parity-check batch.")


def _logits_module(model: Any, use_token_types: bool) -> Any:
    """Wrap VerticalsModel so the traced graph maps input tensors to one logits tensor."""
    import torch

    class LogitsOnly(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any = None) -> Any:
            return self.model(input_ids, attention_mask, token_type_ids if use_token_types else None).logits

    return LogitsOnly().eval()


def _batch(task: Any, texts: list[str]) -> dict[str, Any]:
    records = [task.as_record(text, i) for i, text in enumerate(texts)]
    features = task.encode(records, with_labels=False)
    return task._collator()(features)


def export_onnx(bundle: str | Path, output: str | Path, *, opset: int = 17, tolerance: float = DEFAULT_TOLERANCE,
                overwrite: bool = False) -> ExportResult:
    """Export the bundle at ``bundle`` to the directory ``output``; raise :class:`ParityError` if the
    ONNX model's logits differ from PyTorch's by more than ``tolerance``."""
    ort = require_onnxruntime()
    check_output(output, overwrite, kind="export")  # before any work: refuse what is not ours
    import torch

    from .api import load
    from .tasks.transformer import TransformerTask

    predictor = load(bundle)
    task = predictor.task
    if not isinstance(task, TransformerTask):
        raise ConfigError(f"{bundle}: ONNX export supports transformer tasks (text and token classification); "
                          f"'{predictor.info.task_type}' keeps state outside the network")
    model = task.model_.float().eval()
    trace = _batch(task, TRACE_TEXTS)
    check = _batch(task, CHECK_TEXTS)
    names = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in trace]
    wrapper = _logits_module(model, "token_type_ids" in names)
    token_logits = model(**{k: trace[k] for k in names}).logits.dim() == 3
    dynamic = {k: {0: "batch", 1: "sequence"} for k in names}
    dynamic["logits"] = {0: "batch", 1: "sequence"} if token_logits else {0: "batch"}

    with atomic_directory(output, overwrite, kind="export") as tmp:
        export_graph(wrapper, {k: trace[k] for k in names}, "logits", dynamic, tmp / MODEL_FILE, opset)
        with torch.no_grad():
            expected = wrapper(*(check[k] for k in names)).numpy()
        session = ort.InferenceSession(str(tmp / MODEL_FILE), providers=["CPUExecutionProvider"])
        (got,) = session.run(["logits"], {k: check[k].numpy() for k in names})
        diff = float(abs(got - expected).max())
        if diff > tolerance:
            raise ParityError(f"ONNX logits differ from PyTorch by {diff:.3g} (tolerance {tolerance:g}); "
                              f"nothing was written to {output}")
        task.tokenizer_.save_pretrained(tmp)
        result = ExportResult(path=str(output), task=predictor.info.task, task_type=predictor.info.task_type,
                              labels=list(predictor.info.labels), inputs=names, opset=opset, max_abs_diff=diff,
                              tolerance=tolerance, check_batch=list(check["input_ids"].shape))
        description = result.model_dump() | {"output": "logits", "token_level": token_logits,
                                             "sdk_version": predictor.info.sdk_version,
                                             "pack": predictor.info.pack, "pack_version": predictor.info.pack_version,
                                             # e.g. calibrated thresholds or a retrieval index: applied by the
                                             # task after the network, so not part of the ONNX graph
                                             "not_in_graph": sorted(set(predictor.info.state) - {"labels"})}
        (tmp / EXPORT_FILE).write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8")
    return result
