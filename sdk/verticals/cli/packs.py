"""`verticals packs`: installed packs and generic task types."""

from __future__ import annotations

import argparse
from typing import Any

from .common import (
    print_json,
)


def cmd_packs(args: argparse.Namespace) -> int:
    from ..plugins.manager import get_catalog

    catalog = get_catalog()
    generic = [
        {"name": name, "description": catalog.task_types.get(name).description}
        for name in catalog.task_types.names() if "." not in name
    ]
    packs = []
    for name in catalog.packs.names():
        pack = catalog.packs.get(name)
        packs.append({
            "name": pack.name, "version": pack.version, "description": pack.description,
            "distribution": catalog.packs.source(name),
            "tasks": [{"name": f"{pack.name}.{t.name}", "task_type": t.task_type, "description": t.description,
                       "labels": t.labels, "metrics": t.metrics, "primary_metric": t.primary_metric}
                      for t in pack.tasks],
        })
    broken = [{"plugin": b.name, "distribution": b.distribution, "error": b.error} for b in catalog.broken]
    if args.json:
        print_json({"generic_tasks": generic, "packs": packs, "broken": broken})
        return 0
    print("Generic tasks:")
    for task in generic:
        print(f"  {task['name']:<28} {task['description']}")
    print("Packs:" if packs else "Packs: none installed (pip install verticals-<domain>)")
    for pack in packs:
        print(f"  {pack['name']} {pack['version']}  {pack['description']}")
        for task in pack["tasks"]:
            print(f"    {task['name']:<26} {task['description']}")
    for item in broken:
        print(f"Broken plugin {item['plugin']} ({item['distribution']}): {item['error']}")
    return 0


def add_parser(sub: Any) -> None:
    packs = sub.add_parser("packs", help="list installed packs and generic task types")
    packs.add_argument("--json", action="store_true", help="print JSON")
    packs.set_defaults(func=cmd_packs)
