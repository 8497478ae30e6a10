"""`verticals new-pack NAME`: scaffold a pack distribution."""

from __future__ import annotations

import argparse
from typing import Any


def cmd_new_pack(args: argparse.Namespace) -> int:
    from ..authoring.scaffold import scaffold_pack

    labels = [label for item in args.labels or [] for label in item.split(",")]
    path = scaffold_pack(args.name, args.output, task=args.task, task_type=args.task_type, labels=labels,
                         description=args.description, overwrite=args.overwrite)
    print(f"wrote pack '{args.name}' to {path}; next: pip install -e {path} && verticals packs")
    return 0


def add_parser(sub: Any) -> None:
    new_pack = sub.add_parser("new-pack", help="scaffold a pack distribution",
                              description="Write a pip-installable pack with its entry point, spec and tests.")
    new_pack.add_argument("name", metavar="NAME", help="pack name, e.g. insurance")
    new_pack.add_argument("--output", required=True, metavar="DIR", help="distribution directory to write")
    new_pack.add_argument("--task", default="classify", help="task name within the pack (default: classify)")
    new_pack.add_argument("--task-type", default="text-classification",
                          choices=["text-classification", "token-classification"])
    new_pack.add_argument("--labels", action="append", metavar="A,B,...",
                          help="labels (or entity types for token classification)")
    new_pack.add_argument("--description",
                          help="one line describing the pack and its task (`verticals packs` shows it)")
    new_pack.add_argument("--overwrite", action="store_true",
                          help="replace a pack scaffold Verticals wrote there (unchanged since)")
    new_pack.set_defaults(func=cmd_new_pack)
