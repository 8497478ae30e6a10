"""Where a loaded bundle's encoder runs: PyTorch (default) or ONNX Runtime, fp32 or int8.

For one short query on a small CPU, PyTorch's per-operator overhead dominates: MiniLM took ~10 ms per query
in eager PyTorch on this project's 2-core machine against ~3.5 ms in ONNX Runtime with identical
outputs (fp32), and ~1.7 ms with int8 dynamic quantisation (per-channel weights). Only the *backbone* is
swapped: heads, pooling, retrieval and decoding stay in PyTorch/NumPy, so every transformer task (and a
pack's own forward pass over ``model_.backbone``) keeps working unchanged.

The graph is exported in memory when the bundle is loaded (about 2 s for MiniLM): nothing but the
bundle's safetensors weights is ever read from disk, and the fp32 graph is checked against PyTorch on a
padded batch before it is used. int8 changes the numbers slightly; measure it on your data with
``verticals evaluate BUNDLE DATA --engine onnx-int8`` before serving it.
"""

from __future__ import annotations

import importlib.util
import io
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers.modeling_outputs import BaseModelOutput

from ..config import ENGINES
from ..errors import ConfigError, VerticalsError, option

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
PARITY_TOLERANCE = 1e-3
"""Max |hidden_onnx - hidden_torch| accepted for the fp32 graph (measured ~3e-6 on MiniLM)."""

# Different lengths so both the traced and the checked batches contain padding, and their shapes differ.
TRACE_TEXTS = ["Short one.", "A somewhat longer sentence that needs more word pieces than the first one."]
CHECK_TEXTS = ["The payment did not arrive and I would like to know why.", "ok",
               "Patients with type 2 diabetes received metformin twice daily for twelve weeks in Boston.",
               "Shares of Acme Corp fell 3 percent after the quarterly report.", "Where is my card?"]


class ParityError(VerticalsError):
    """ONNX Runtime's outputs differ from PyTorch's by more than the tolerance."""

    exit_code = 1


def require_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError("the ONNX engines need onnx and onnxruntime: pip install 'verticals[export]'") from None
    return onnxruntime


def resolve_engine(choice: str, transformer: bool) -> str:
    """'auto' -> 'onnx' (exact fp32 parity, lower per-query latency) for a transformer task on a machine without
    CUDA when onnxruntime is installed; 'torch' otherwise. Explicit choices are returned as given.

    'auto' is what ``serve`` uses, and served traffic decided it on every CPU kind met (README "Serving
    performance"): on AVX2 and AMD AVX-512 ONNX answered one query ~3.5x faster than PyTorch; on an Intel Xeon
    with AMX, PyTorch bf16 batched 2.5x ONNX fp32 offline (benchmarks/engine_choice.py), but served by 2 workers
    of one thread each it matched ONNX at 32 connections (348 vs 364 req/s) and answered one connection 2.7x
    slower (p50 30.7 vs 11.5 ms). Batch jobs (``predict``, ``evaluate``) default to 'torch', which takes bf16
    where the CPU runs it fast. int8 is never chosen: it changed 2.8 % of decisions on the AMX machine."""
    if choice not in ENGINES:
        raise ConfigError(f"unknown engine '{choice}'; expected one of {', '.join(ENGINES)}")
    if choice != "auto":
        return choice
    usable = transformer and not torch.cuda.is_available()
    return "onnx" if usable and importlib.util.find_spec("onnxruntime") else "torch"


def export_graph(module: torch.nn.Module, inputs: dict[str, torch.Tensor], output: str | Sequence[str],
                 dynamic: dict[str, dict[int, str]], target: str | Path | io.BytesIO, opset: int = 17) -> None:
    """``torch.onnx.export`` with batch/sequence axes dynamic; ``inputs`` are keyword tensors in order,
    ``output`` names the module's output (or its tuple of outputs)."""
    names = list(inputs)
    output_names = [output] if isinstance(output, str) else list(output)
    # The exporter restores the module's own train/eval mode afterwards, recursively: a wrapper left in
    # train mode would switch the wrapped model's dropout back on.
    module.eval()
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter warns about traced Python conditionals in attention code and about its
        # own deprecation; callers check the graph on a batch of another shape, which is what shows it
        # generalises.
        warnings.simplefilter("ignore")
        torch.onnx.export(module, tuple(inputs.values()), target if isinstance(target, io.BytesIO) else str(target),
                          input_names=names, output_names=output_names, dynamic_axes=dynamic, opset_version=opset,
                          dynamo=False)


class _HiddenStates(torch.nn.Module):
    """Positional-argument wrapper so the traced graph maps input tensors to ``last_hidden_state``."""

    def __init__(self, backbone: torch.nn.Module, names: Sequence[str]) -> None:
        super().__init__()
        self.backbone = backbone
        self.names = list(names)

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.backbone(**dict(zip(self.names, tensors))).last_hidden_state


class OnnxBackbone(torch.nn.Module):
    """Drop-in for a Hugging Face encoder at inference: same call, returns ``last_hidden_state`` (fp32)."""

    def __init__(self, session: Any, names: Sequence[str], config: Any, engine: str, parity: float) -> None:
        super().__init__()
        self.session = session
        self.names = list(names)
        self.config = config
        self.engine = engine
        self.parity = parity
        """Max |hidden| difference from PyTorch on the check batch (fp32 graph, before any quantisation)."""

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None,
                **_: Any) -> BaseModelOutput:
        given = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        if "token_type_ids" in self.names and token_type_ids is None:
            given["token_type_ids"] = torch.zeros_like(input_ids)
        feed = {name: given[name].cpu().numpy() for name in self.names}
        (hidden,) = self.session.run(None, feed)
        return BaseModelOutput(last_hidden_state=torch.from_numpy(hidden))


def onnx_backbone(backbone: torch.nn.Module, tokenizer: Any, engine: str, *, num_threads: int,
                  opset: int = 17) -> OnnxBackbone:
    """Export ``backbone`` to ONNX in memory, check it against PyTorch, optionally quantise it to int8."""
    if engine not in ("onnx", "onnx-int8"):
        raise ConfigError(f"unknown ONNX engine '{engine}'; expected onnx or onnx-int8")
    ort = require_onnxruntime()
    backbone = backbone.float().eval().cpu()
    if hasattr(backbone, "set_attn_implementation"):
        # Eager attention traces to plain MatMul/Softmax, which ONNX Runtime's graph optimiser handles well:
        # the bare MiniLM graph ran a single query in 2.96 ms vs 3.25 ms for the SDPA trace (end to end the
        # difference is within this machine's noise).
        try:
            backbone.set_attn_implementation("eager")
        except (ValueError, ImportError):  # a backbone without eager attention: keep what it has
            pass
    trace = _encode(tokenizer, TRACE_TEXTS)
    names = [k for k in MODEL_INPUTS if k in trace]
    dynamic = {k: {0: "batch", 1: "sequence"} for k in [*names, "hidden"]}
    buffer = io.BytesIO()
    export_graph(_HiddenStates(backbone, names), {k: trace[k] for k in names}, "hidden", dynamic, buffer, opset)
    graph = buffer.getvalue()
    options = ort.SessionOptions()
    options.intra_op_num_threads = num_threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])

    check = _encode(tokenizer, CHECK_TEXTS)
    with torch.inference_mode():
        expected = backbone(**{k: check[k] for k in names}).last_hidden_state.numpy()
    (got,) = session.run(None, {k: check[k].numpy() for k in names})
    mask = check["attention_mask"].numpy()[..., None] > 0  # padded positions are never read downstream
    parity = float(np.abs((got - expected) * mask).max())
    if parity > PARITY_TOLERANCE:
        raise ParityError(f"the ONNX export of this backbone differs from PyTorch by {parity:.3g} "
                          f"(tolerance {PARITY_TOLERANCE:g}); use {option('engine', 'torch')}")
    if engine == "onnx-int8":
        session = ort.InferenceSession(_quantize(graph), options, providers=["CPUExecutionProvider"])
    return OnnxBackbone(session, names, backbone.config, engine, parity)


def _encode(tokenizer: Any, texts: list[str]) -> dict[str, torch.Tensor]:
    return dict(tokenizer(texts, padding=True, truncation=True, max_length=64, return_tensors="pt"))


def _quantize(graph: bytes) -> bytes:
    """int8 dynamic quantisation of MatMul/Gemm weights, per output channel (per-tensor scales lost ~5x more
    cosine similarity on MiniLM embeddings for no speed gain)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="verticals-int8-") as tmp:
        source, target = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        source.write_bytes(graph)
        quantize_dynamic(source, target, weight_type=QuantType.QInt8, per_channel=True)
        return target.read_bytes()
