"""`verticals inspect BUNDLE`: verify a bundle's files and show what it is."""

from __future__ import annotations

import argparse
import re
from typing import Any

from .common import (
    print_json,
)


def cmd_inspect(args: argparse.Namespace) -> int:
    """Check a received bundle without loading its model (so without its pack installed)."""
    from ..bundles.bundle import bundle_contents, digest, pinned_manifest, read_info, verify
    from ..errors import BundleError

    if args.expect is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", args.expect.strip()):
        from ..errors import ConfigError  # an unset shell variable must not turn the check off

        shown = repr(args.expect) if args.expect else "empty (an unset shell variable?)"
        raise ConfigError(f"--expect is {shown}; give the 64-hex-digit digest the sender printed "
                          f"(`verticals inspect BUNDLE` shows it)")
    from ..delivery.export_check import export_summary, is_export

    if is_export(args.bundle):
        summary, lines = export_summary(args.bundle, args.expect)
        if args.json:
            print_json(summary)
        else:
            print("\n".join(lines))
        return 0
    with pinned_manifest(args.bundle):  # the digest shown is that of the manifest the files were checked against
        manifest = verify(args.bundle)  # raises naming the first missing, extra or modified file
        info = read_info(args.bundle, verified=True)
        bundle_digest = digest(args.bundle)
    if args.expect is not None and args.expect.strip().lower() != bundle_digest:
        raise BundleError(f"{args.bundle}: digest {bundle_digest} is not the expected {args.expect}; "
                          f"this is not the bundle that was sent")
    files = manifest["files"]
    contents = bundle_contents(args.bundle, manifest)
    size = sum(item["bytes"] for item in contents)
    summary = {"path": str(args.bundle), "digest": bundle_digest, "files": len(files), "bytes": size,
               **info.model_dump(include={"task", "task_type", "pack", "pack_version", "sdk_version",
                                          "created_at", "labels", "model", "data", "metrics", "versions",
                                          "history", "baseline"}),
               "contents": contents}
    if args.json:
        print_json(summary)
        return 0
    pack = f"pack {info.pack} {info.pack_version}; " if info.pack else ""
    print(f"{args.bundle}: intact, every file matches manifest.json ({len(files)} files, {size / 1e6:.1f} MB)")
    print(f"  digest   {bundle_digest}")
    print(f"  task     {info.task} ({pack}verticals {info.sdk_version}; created {info.created_at})")
    if info.labels:
        shown = ", ".join(info.labels[:8]) + (", ..." if len(info.labels) > 8 else "")
        print(f"  labels   {len(info.labels)}: {shown}")
    for split, fingerprint in info.data.items():
        print(f"  data     {split}: " + ", ".join(f"{k} {v}" for k, v in fingerprint.items()))
    for split, metrics in info.metrics.items():
        print(f"  metrics  {split}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    from ..metrics.baseline import baseline_lines

    for line in baseline_lines(info.baseline):
        print(f"  {line}")
    # Whoever receives the bundle receives every file: say which ones carry data, not only weights.
    print("  files    (* holds data from training or from files named in the config; shared with the bundle)")
    for item in contents:
        mark = "*" if item["data"] else " "
        note = f"  holds data: {item['data']}" if item["data"] else ""
        print(f"   {mark} {item['bytes']:>12,d}  {item['path']}{note}")

    from ..console import history_lines

    for line in history_lines(info.history):
        print(f"  history  {line}")
    return 0


def add_parser(sub: Any) -> None:
    inspect = sub.add_parser(
        "inspect", help="verify a bundle's or an export's files and show what it is (no model is loaded)",
        description="Verify every file of BUNDLE (or of an ONNX EXPORT) against its manifest and print its task, "
                    "labels, data fingerprints, metrics and digest (sha256 of manifest.json).")
    inspect.add_argument("bundle", metavar="BUNDLE|EXPORT")
    inspect.add_argument("--expect", metavar="SHA256", help="fail unless the digest is this one")
    inspect.add_argument("--json", action="store_true", help="print one JSON object")
    inspect.set_defaults(func=cmd_inspect)
