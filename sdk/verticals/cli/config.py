"""`verticals config TASK`: every option of a task with its default and description."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .common import (
    print_json,
)


def cmd_config(args: argparse.Namespace) -> int:
    """Every option of a task: type, resolved default (pack defaults applied), bounds and description."""
    from ..plugins.options import describe_task

    described = describe_task(args.task)
    if args.json:
        print_json(described)
        return 0
    pack = f" (pack {described['pack']})" if described["pack"] else ""
    print(f"{described['task']}{pack}: {described['description']}")
    print("Set an option with --set SECTION.OPTION=VALUE, or in a --config FILE (JSON/YAML) with these sections.")
    print("Defaults shown are resolved (pack defaults applied; marked 'pack').")
    for section, options in described["options"].items():
        print(f"\n[{section}]")
        for option in options:
            default = json.dumps(option["default"], ensure_ascii=False, default=str)
            extras = ", ".join(filter(None, [option["bounds"], "pack" if option["pack_default"] else ""]))
            print(f"  {option['name']} : {option['type']} = {default}" + (f"  ({extras})" if extras else ""))
            print(f"      {option['description']}")
    if described.get("tune"):
        print("\n[tune] default search space of `verticals tune` (change it in a tune.space config section)")
        for param in described["tune"]:
            print(f"  {param['name']} : {param['range']}")
    return 0


def add_parser(sub: Any) -> None:
    config = sub.add_parser("config", help="list a task's options with types, defaults and descriptions",
                            description="Print every option of TASK (training, data, task, labels) with its type, "
                                        "default (pack defaults applied), bounds and description.")
    config.add_argument("task", metavar="TASK", help="e.g. text-classification, customer_service.intent")
    config.add_argument("--json", action="store_true", help="print one JSON object (resolved defaults + options)")
    config.set_defaults(func=cmd_config)
