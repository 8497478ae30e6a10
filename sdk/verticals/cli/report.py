"""`verticals report` and `verticals card`: the evaluation report and the model card."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .common import (
    add_data_set_option,
    print_json,
)


def cmd_report(args: argparse.Namespace) -> int:
    from ..delivery.report import write_report

    result = write_report(args.bundle, args.data, args.output, overwrite=args.overwrite, overrides=args.set)
    if args.json:
        print_json(result.model_dump())
    else:
        print(f"wrote report {result.path}/index.html ({result.n} records; {', '.join(result.files)})")
    return 0


def cmd_card(args: argparse.Namespace) -> int:
    from ..delivery.card import bundle_card, write_card

    if args.output == "-":  # the convention: standard output
        sys.stdout.write(bundle_card(args.bundle))
        return 0

    path = write_card(args.bundle, args.output, overwrite=args.overwrite)
    print(f"wrote model card {path}")
    return 0


def add_parser(sub: Any) -> None:
    report = sub.add_parser("report", help="write an HTML evaluation report with plots and a model card")
    report.add_argument("bundle", metavar="BUNDLE")
    report.add_argument("--data", required=True, metavar="PATH", help="labelled data file")
    report.add_argument("--output", required=True, metavar="DIR", help="report directory to write")
    report.add_argument("--overwrite", action="store_true", help="replace a report Verticals wrote there")
    report.add_argument("--json", action="store_true", help="print the result as JSON")
    report.set_defaults(func=cmd_report)

    add_data_set_option(report)
    card = sub.add_parser("card", help="write a bundle's model card (no data needed)",
                          description="Write the Markdown model card of BUNDLE from the bundle alone: its digest "
                                      "(as `inspect --expect` checks it), intended use, data sha256, training "
                                      "options, stored metrics with 95% intervals and units, thresholds, "
                                      "limitations, versions.")
    card.add_argument("bundle", metavar="BUNDLE")
    card.add_argument("--output", required=True, metavar="FILE", help="card file to write, e.g. model_card.md "
                      "('-' = standard output; a folder or a trailing '/' = model_card.md in that folder)")
    card.add_argument("--overwrite", action="store_true",
                      help="replace a card file Verticals wrote there (unchanged since); never another file")
    card.set_defaults(func=cmd_card)
