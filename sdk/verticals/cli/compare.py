"""`verticals compare OLD NEW --data PATH`: both bundles on the same records; exit 3 when NEW is worse beyond noise."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import VerticalsError
from .common import add_data_set_option, add_engine_option, print_json


def cmd_compare(args: argparse.Namespace) -> int:
    from ..bundles.outputs import refuse_same_file
    from ..operate.compare import compare
    from ..operate.compare_page import check_outputs, format_text, write_changed, write_page

    if args.max_changed < 0:
        raise VerticalsError(f"--max-changed {args.max_changed}: expected a count of records to print, 0 or more")
    for output in (args.changed, args.output_html):
        if output:
            refuse_same_file(args.data, output)
    check_outputs(args.changed, args.output_html, args.overwrite)  # before minutes of predictions, not after
    result = compare(args.old, args.new, args.data, overrides=args.set, engine=args.engine, resamples=args.resamples,
                     seed=args.seed, alpha=args.alpha, margin=args.margin, latency_records=args.latency_records)
    if args.changed:
        write_changed(args.changed, result, overwrite=args.overwrite)
    page = write_page(args.output_html, result, overwrite=args.overwrite) if args.output_html else None
    if args.json:
        shown = result.model_dump()
        shown["changed"] = shown["changed"][:args.max_changed]  # all of them go to --changed
        print_json(shown)
    else:
        print(format_text(result, args.max_changed))
        for what, path in (("changed records", args.changed), ("page", page)):
            if path:
                print(f"  wrote {what}: {path}")
    return result.verdict.exit_code


def add_parser(sub: Any) -> None:
    compare = sub.add_parser(
        "compare", help="compare two bundles of one task on the same records; exit 3 when NEW is worse",
        description="Score OLD and NEW on the same labelled records: the task's metrics with 95% intervals, "
                    "paired differences, McNemar / paired bootstrap tests, changed decisions, latency. Exit 0 "
                    "when NEW is not worse than OLD on the primary metric beyond noise (the one-sided test of "
                    "'NEW worse by more than --margin' does not reject at --alpha), 3 when it is worse, 2 on bad "
                    "input.")
    compare.add_argument("old", metavar="OLD", help="the bundle in production")
    compare.add_argument("new", metavar="NEW", help="the candidate bundle")
    compare.add_argument("--data", required=True, metavar="PATH", help="labelled test data")
    compare.add_argument("--json", action="store_true", help="print one JSON object")
    compare.add_argument("--output-html", metavar="FILE|DIR",
                         help="write an HTML page: a .html file, or a directory (index.html, comparison.json)")
    compare.add_argument("--overwrite", action="store_true",
                         help="replace a page or --changed file that Verticals wrote there (and nobody changed)")
    compare.add_argument("--changed", metavar="FILE", help="write every record whose decision changed (JSONL)")
    compare.add_argument("--max-changed", type=int, default=10, metavar="N",
                         help="changed records to print (default 10)")
    compare.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    compare.add_argument("--margin", type=float, default=0.0,
                         help="loss of the primary metric tolerated, in its units (default 0)")
    compare.add_argument("--resamples", type=int, default=1000, metavar="B",
                         help="paired bootstrap resamples (default 1000)")
    compare.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    compare.add_argument("--latency-records", type=int, default=50, metavar="N",
                         help="records timed one at a time per bundle (default 50; 0: skip)")
    add_engine_option(compare, "torch")
    add_data_set_option(compare)
    compare.set_defaults(func=cmd_compare)
