"""``verticals inspect EXPORT``: verify an ONNX export against its manifest and say what it is.

An export (``verticals export``) carries a ``manifest.json`` like a bundle's: the sha256 of every file,
``export.json`` included; the sha256 of the manifest is the export's digest. The receiver compares it
with the digest the sender gave by another channel (``--expect``); ``predict.py`` checks the same manifest
before it answers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..bundles.bundle import MANIFEST_FILE, bundle_contents, digest, verify
from ..bundles.outputs import MARKER
from ..errors import BundleError
from .export import EXPORT_FILE, EXPORT_FORMAT


def is_export(path: str | Path) -> bool:
    """True for a directory whose export.json says it was written by ``verticals export``."""
    try:
        meta = json.loads((Path(path) / EXPORT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(meta, dict) and meta.get("format") == EXPORT_FORMAT


def verify_export(path: str | Path) -> dict[str, Any]:
    """Check every file of the export against its manifest (as for a bundle; the output marker, written
    after the manifest, is the one file it may not list); raise :class:`BundleError` naming the problem."""
    path = Path(path)
    if not (path / MANIFEST_FILE).is_file():
        raise BundleError(f"{path}: this export has no {MANIFEST_FILE} (written before exports had one), so it "
                          f"cannot be verified; export the bundle again with this version of Verticals")
    try:
        return verify(path, unlisted_ok=frozenset({MARKER}))
    except BundleError as exc:  # the bundle check's words, about an export
        raise BundleError(str(exc).replace("the bundle", "the export").replace("a bundle", "an export")) from None


def export_summary(path: str | Path, expect: str | None = None) -> tuple[dict[str, Any], list[str]]:
    """Verify the export and describe it: a JSON-able summary and the lines ``inspect`` prints."""
    path = Path(path)
    manifest = verify_export(path)
    export_digest = digest(path)
    if expect and expect.strip().lower() != export_digest:
        raise BundleError(f"{path}: digest {export_digest} is not the expected {expect}; this is not the export "
                          f"that was sent")
    try:
        meta = json.loads((path / EXPORT_FILE).read_text(encoding="utf-8"))
        decision = meta.get("decision") or {}
        labels = [str(label) for label in meta.get("labels") or []]
    except (OSError, ValueError, AttributeError, TypeError) as exc:
        raise BundleError(f"{path / EXPORT_FILE}: not a readable export description ({exc})") from None
    contents = bundle_contents(path, manifest)
    for item in contents:
        if item["path"] == EXPORT_FILE:  # what bundle.json is to a bundle
            item["data"] = "labels, data column names and decision parameters (customer service: the FAQ answers)"
    size = sum(item["bytes"] for item in contents)
    summary = {"path": str(path), "kind": "export", "digest": export_digest, "files": len(manifest["files"]),
               "bytes": size, **{key: meta.get(key) for key in (
                   "task", "task_type", "pack", "pack_version", "sdk_version", "labels", "inputs", "outputs",
                   "opset", "max_abs_diff", "tolerance", "fields", "decision")},
               "contents": contents}
    pack = f"pack {meta.get('pack')} {meta.get('pack_version')}; " if meta.get("pack") else ""
    lines = [f"{path}: intact export, every file matches {MANIFEST_FILE} ({len(manifest['files'])} files, "
             f"{size / 1e6:.1f} MB)",
             f"  digest   {export_digest}",
             f"  task     {meta.get('task')} ({pack}verticals {meta.get('sdk_version')}; "
             f"decision {decision.get('kind')})"]
    if labels:
        lines.append(f"  labels   {len(labels)}: " + ", ".join(labels[:8]) + (", ..." if len(labels) > 8 else ""))
    if isinstance(meta.get("max_abs_diff"), (int, float)):
        lines.append(f"  parity   max abs diff {meta['max_abs_diff']:.3g} vs PyTorch (tolerance "
                     f"{meta.get('tolerance')}), opset {meta.get('opset')}")
    lines.append("  files    (* holds data from training or from files named in the config; shared with the export)")
    lines += [f"   {'*' if item['data'] else ' '} {item['bytes']:>12,d}  {item['path']}"
              + (f"  holds data: {item['data']}" if item["data"] else "") for item in contents]
    return summary, lines
