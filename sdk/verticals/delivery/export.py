"""ONNX export of a bundle: everything a prediction depends on, checked against PyTorch (``verticals export``).

The export directory holds:

- ``model.onnx``: inputs ``input_ids``, ``attention_mask`` [, ``token_type_ids``]; outputs ``logits`` and, for
  sequence-level tasks, ``embeddings`` (the unit-length pooled sentence vector a retrieval fallback searches
  with); batch and sequence axes dynamic;
- ``config.json``: the backbone's configuration with ``id2label``/``label2id``, so ``AutoConfig`` and tools
  built on it (optimum's ``ORTModelForSequenceClassification`` with a transformers pipeline) load it;
- the tokenizer files (``tokenizer.json``: loadable by the ``tokenizers`` library alone);
- what the task needs after the network (a retrieval index and its metadata for customer service);
- ``export.json``: task, labels, graph inputs/outputs, measured parity, and ``decision``: every decision
  parameter with its value (thresholds, calibration, truncation, windowing), written by the task type's
  ``export_extras``; ``fields``: the keys of the bundle's records in the user's data (``data.text_column``
  ...), so a record reads the same in ``predict.py`` as in the SDK; ``files``: the sha256 of every other file;
- ``manifest.json``: the sha256 of every file, ``export.json`` included, as in a bundle; its own sha256 is the
  export's digest. ``predict.py`` verifies it before answering (``--no-verify`` skips that);
  ``verticals inspect EXPORT [--expect DIGEST]`` shows it;
- ``predict.py``: a reference implementation (onnxruntime + tokenizers + numpy [+ faiss], no Verticals) that
  reproduces the SDK's predictions from the files above (source: ``verticals/onnx_reference.py``).
- ``.verticals-output.json``: the marker of every output Verticals writes (the sha256 of each file, so a
  later ``--overwrite`` can prove the folder is this export, unchanged; see :mod:`verticals.bundles.outputs`).

Parity: max abs difference of the outputs between ONNX Runtime and PyTorch on a padded batch of another size
and length than the one traced. Needs ``pip install 'verticals[export]'``.
"""

from __future__ import annotations

import copy
import json
from importlib.resources import files
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from ..backbones.engines import CHECK_TEXTS, TRACE_TEXTS, ParityError, export_graph, require_onnxruntime
from ..bundles.bundle import MANIFEST_FILE, atomic_directory, check_output, digest, write_manifest
from ..bundles.outputs import file_sha256

MODEL_FILE = "model.onnx"
EXPORT_FILE = "export.json"
CONFIG_FILE = "config.json"
REFERENCE_FILE = "predict.py"
EXPORT_FORMAT = "verticals-export"
"""``export.json``'s ``format``: marks a directory written by ``verticals export``."""
EXPORT_FORMAT_VERSION = 1
DEFAULT_TOLERANCE = 1e-4


class ExportResult(BaseModel):
    """What ``export`` wrote and how closely ONNX Runtime reproduces PyTorch."""

    path: str = Field(description="Export directory.")
    task: str
    task_type: str
    labels: list[str]
    inputs: list[str]
    outputs: list[str] = Field(description="Graph outputs: logits [and embeddings].")
    opset: int
    max_abs_diff: float = Field(description="Max |output_onnx - output_torch| on the check batch.")
    tolerance: float
    check_batch: list[int] = Field(description="Shape [batch, sequence] of the parity-check batch.")
    decision: dict[str, Any] = Field(description="Decision parameters applied after the graph, with values.")
    fields: dict[str, str] = Field(default_factory=dict, description="Record field -> key in the user's records "
                                   "(the bundle's data columns): the keys predict.py reads from a JSON record.")
    files: list[str] = Field(description="Files written, besides export.json and manifest.json.")
    digest: str | None = Field(None, description=f"sha256 of {MANIFEST_FILE}, which lists the sha256 of every "
                               "other file (export.json included): the one value that pins the export.")


def _graph_module(model: Any, use_token_types: bool, pooling: str | None) -> Any:
    """Wrap VerticalsModel so the traced graph maps input tensors to logits [and unit sentence embeddings]."""
    import torch

    from ..heads.sequence import pool

    class Outputs(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any = None) -> Any:
            kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
            if use_token_types:
                kwargs["token_type_ids"] = token_type_ids
            hidden = self.model.backbone(**kwargs).last_hidden_state
            logits = self.model.head(hidden, attention_mask).logits
            if pooling is None:
                return logits
            vectors = torch.nn.functional.normalize(pool(hidden, attention_mask, pooling), dim=-1)
            return logits, vectors

    return Outputs().eval()


def _batch(task: Any, texts: list[str]) -> dict[str, Any]:
    records = [task.as_record(text, i) for i, text in enumerate(texts)]
    features = task.encode(records, with_labels=False)
    return task._collator()(features)


def _config(model: Any, labels: list[str], token_level: bool) -> Any:
    """The backbone's config with the label maps, so AutoConfig-based tooling knows the classes."""
    config = copy.deepcopy(model.backbone.config)
    config.id2label = dict(enumerate(labels))
    config.label2id = {label: i for i, label in enumerate(labels)}
    config.problem_type = None if token_level else "single_label_classification"
    return config




def export_onnx(bundle: str | Path | Any, output: str | Path, *, opset: int = 17,
                tolerance: float = DEFAULT_TOLERANCE, overwrite: bool = False) -> ExportResult:
    """Export the bundle at ``bundle`` (a directory, or the predictor ``verticals.train``/``load`` returned) to
    the directory ``output``: ``verticals.export``, as ``verticals export BUNDLE --format onnx`` does. Raise
    :class:`ParityError` if ONNX Runtime's outputs differ from PyTorch's by more than ``tolerance``, and a
    ``ConfigError`` naming the reason for a task type that cannot be exported. Nothing is written unless
    everything succeeds."""
    require_onnxruntime()
    from ..api import load
    from ..predictor import Predictor

    predictor = bundle if isinstance(bundle, Predictor) else load(bundle)
    return export_predictor(predictor, output, opset=opset, tolerance=tolerance, overwrite=overwrite)


def export_predictor(predictor: Any, output: str | Path, *, opset: int = 17, tolerance: float = DEFAULT_TOLERANCE,
                     overwrite: bool = False) -> ExportResult:
    """Export a loaded (torch-engine) predictor with the decision parameters it holds now."""
    ort = require_onnxruntime()
    check_output(output, overwrite, kind="export")  # before any work: refuse what is not ours
    import torch

    from ..backbones.engines import OnnxBackbone
    from ..errors import ConfigError
    from ..tasks.transformer import TransformerTask

    task = predictor.task
    if not isinstance(task, TransformerTask):
        raise task.export_error()
    if isinstance(task.model_.backbone, OnnxBackbone):
        raise ConfigError("export traces the PyTorch model: load the bundle with engine='torch' to export it")
    model = task.model_.float().eval()
    trace = _batch(task, TRACE_TEXTS)
    check = _batch(task, CHECK_TEXTS)
    names = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in trace]
    with torch.no_grad():
        token_level = model(**{k: trace[k] for k in names}).logits.dim() == 3
    outputs = ["logits"] if token_level else ["logits", "embeddings"]
    wrapper = _graph_module(model, "token_type_ids" in names, None if token_level else task.embedding_pooling())
    dynamic = {k: {0: "batch", 1: "sequence"} for k in names}
    dynamic["logits"] = {0: "batch", 1: "sequence"} if token_level else {0: "batch"}
    if not token_level:
        dynamic["embeddings"] = {0: "batch"}
    labels = list(predictor.info.labels)

    with atomic_directory(output, overwrite, kind="export") as tmp:
        export_graph(wrapper, {k: trace[k] for k in names}, outputs, dynamic, tmp / MODEL_FILE, opset)
        with torch.no_grad():
            expected = wrapper(*(check[k] for k in names))
        expected = [t.numpy() for t in (expected if isinstance(expected, tuple) else (expected,))]
        session = ort.InferenceSession(str(tmp / MODEL_FILE), providers=["CPUExecutionProvider"])
        got = session.run(outputs, {k: check[k].numpy() for k in names})
        diff = max(float(abs(g - e).max()) for g, e in zip(got, expected))
        if diff > tolerance:
            raise ParityError(f"ONNX outputs differ from PyTorch by {diff:.3g} (tolerance {tolerance:g}); "
                              f"nothing was written to {output}")
        task.tokenizer_.save_pretrained(tmp)
        _config(model, labels, token_level).save_pretrained(tmp)
        decision = task.export_extras(tmp)
        (tmp / REFERENCE_FILE).write_text(files("verticals.delivery").joinpath("onnx_reference.py").read_text("utf-8"),
                                          encoding="utf-8")
        written = sorted(p.name for p in tmp.iterdir() if p.is_file())
        result = ExportResult(path=str(output), task=predictor.info.task, task_type=predictor.info.task_type,
                              labels=labels, inputs=names, outputs=outputs, opset=opset, max_abs_diff=diff,
                              tolerance=tolerance, check_batch=list(check["input_ids"].shape), decision=decision,
                              fields=task.field_map(), files=written)
        description = {"format": EXPORT_FORMAT, "format_version": EXPORT_FORMAT_VERSION} | result.model_dump(
            exclude={"path", "files", "digest"}) | {
            "token_level": token_level, "pad_token_id": int(task.tokenizer_.pad_token_id or 0),
            "sdk_version": predictor.info.sdk_version, "pack": predictor.info.pack,
            "pack_version": predictor.info.pack_version,
            "files": {name: file_sha256(tmp / name) for name in written}}
        (tmp / EXPORT_FILE).write_text(json.dumps(description, indent=2, ensure_ascii=False) + "\n",
                                       encoding="utf-8")
        # like a bundle's: every file, export.json included, so one digest (its sha256) pins the export;
        # predict.py checks it before answering and `verticals inspect EXPORT [--expect]` shows it
        write_manifest(tmp)
        result.digest = digest(tmp)
    return result
