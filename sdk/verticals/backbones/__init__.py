"""Backbones: resolving and loading encoders (the embedded MiniLM, local folders, the Hugging Face cache, named
fetchable ones with pinned digests), assembling backbone + head, batching inputs, ONNX engines, sentence
embeddings and the FAISS index built on them.

``verticals.backbones`` keeps the loading API packs use (``resolve_backbone``, ``load_backbone``, ...)."""

from .loading import (
    HUB_FILES,
    WEIGHTS_FILE,
    WEIGHTS_INDEX,
    check_max_length,
    embedded_minilm_path,
    hub_snapshot,
    load_backbone,
    load_bundle_backbone,
    load_bundle_tokenizer,
    load_tokenizer,
    position_limit,
    resolve_backbone,
)

__all__ = [
    "HUB_FILES", "WEIGHTS_FILE", "WEIGHTS_INDEX", "check_max_length", "embedded_minilm_path", "hub_snapshot",
    "load_backbone", "load_bundle_backbone", "load_bundle_tokenizer", "load_tokenizer", "position_limit",
    "resolve_backbone",
]
