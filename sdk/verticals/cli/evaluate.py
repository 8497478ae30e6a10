"""`verticals evaluate BUNDLE --data PATH`: score a bundle on labelled data."""

from __future__ import annotations

import argparse
from typing import Any

from .common import (
    add_data_set_option,
    add_engine_option,
    print_json,
)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..api import load

    evaluation = load(args.bundle, engine=args.engine, overrides=args.set).evaluate(args.data)
    if args.json:
        print_json(evaluation.model_dump())
    else:
        print(f"{evaluation.task} on {evaluation.n} records")
        for name, value in evaluation.metrics.items():
            print(f"  {name:<20} {value:.4f}")
        if evaluation.per_label:
            print(f"  {'label':<28} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>8}")
            for label, scores in evaluation.per_label.items():
                print(f"  {label[:28]:<28} {scores.get('precision', 0):>9.4f} {scores.get('recall', 0):>9.4f} "
                      f"{scores.get('f1', 0):>9.4f} {int(scores.get('support', 0)):>8}")
    return 0


def add_parser(sub: Any) -> None:
    evaluate = sub.add_parser("evaluate", help="score a bundle on labelled data")
    evaluate.add_argument("bundle", metavar="BUNDLE")
    evaluate.add_argument("--data", required=True, metavar="PATH", help="labelled data file")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    add_engine_option(evaluate, "torch")
    evaluate.set_defaults(func=cmd_evaluate)
    add_data_set_option(evaluate)
