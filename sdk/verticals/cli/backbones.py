"""`verticals backbones list|fetch`: named backbones in the local cache."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .common import (
    print_json,
    usage_error,
)


def cmd_backbones(args: argparse.Namespace) -> int:
    from ..backbones import named as named_backbones

    if args.action == "fetch":
        if not args.name:
            raise usage_error("verticals backbones fetch NAME", named_backbones.listing())
        spec = named_backbones.named_backbone(args.name)
        if not args.force and named_backbones.is_fetched_spec(spec):
            path, note = named_backbones.cached_path(spec.name), "already fetched"
        else:
            print(f"fetching {spec.name} ({spec.upstream}, {spec.license}, about "
                  f"{named_backbones.size_mb(spec)} MB) ...", file=sys.stderr)
            path, note = named_backbones.fetch(spec.name, force=args.force), "fetched and verified"
        if args.json:
            print_json({"name": spec.name, "path": str(path), "status": note})
        else:
            print(f"{spec.name}: {note} in {path}; use --backbone {spec.name}")
        return 0
    rows = named_backbones.listing()
    if args.json:
        print_json({"cache": str(named_backbones.cache_root()), "backbones": rows})
        return 0
    print(f"Fetchable backbones (cache: {named_backbones.cache_root()}):")
    for row in rows:
        state = f"fetched: {row['path']}" if row["fetched"] else f"not fetched: {row['fetch']}"
        print(f"  {row['name']:<14} {row['upstream']} ({row['license']}, {row['size_mb']} MB)  {state}")
    return 0


def add_parser(sub: Any) -> None:
    backbones = sub.add_parser(
        "backbones", help="list or fetch named backbones (e.g. mpnet-base) into the local cache",
        description="`list` shows the backbones Verticals can fetch and whether they are here; `fetch NAME` "
                    "downloads one with pip (no install, no dependencies), checks every file against pinned "
                    "sha256 digests and caches it ($VERTICALS_HOME/backbones or ~/.cache/verticals/backbones). "
                    "Training never downloads: fetch first, then --backbone NAME.")
    backbones.add_argument("action", choices=["list", "fetch"])
    backbones.add_argument("name", nargs="?", metavar="NAME", help="backbone to fetch, e.g. mpnet-base")
    backbones.add_argument("--force", action="store_true", help="fetch again even if a verified copy is cached")
    backbones.add_argument("--json", action="store_true", help="print JSON")
    backbones.set_defaults(func=cmd_backbones)
