"""`verticals check TASK`: the data before training (duplicates, conflicts, leakage, truncation, label errors)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .common import print_json


def cmd_check(args: argparse.Namespace) -> int:
    from ..workshop.check import check_data, check_suspects_output, format_report, write_suspects

    if args.suspects:  # before any work: the CSV replaces only a suspects file Verticals wrote
        check_suspects_output(args.suspects, args.overwrite)
    report = check_data(args.task, args.train, validation=args.validation, test=args.test, config=args.config,
                        overrides=args.set or [], backbone=args.backbone, thorough=not args.cheap,
                        near_threshold=args.near_threshold)
    if args.suspects:
        write_suspects(report, args.suspects, overwrite=args.overwrite)
        print(f"wrote {len(report.suspects)} suspect records to {args.suspects}", file=sys.stderr)
    if args.json:
        print_json(report.model_dump())
    else:
        print(format_report(report))
    return 0


def add_parser(sub: Any) -> None:
    check = sub.add_parser(
        "check", help="check training data before training: duplicates, conflicts, leakage, label errors",
        description="Read the data with TASK's reader and report records it refuses, odd records, exact and "
                    "near duplicates, the same text with conflicting labels, leakage across splits, label "
                    "imbalance and rare labels, texts longer than training.max_length, and likely label errors "
                    "(cleanlab on out-of-fold probabilities of a logistic regression on the backbone's frozen "
                    "embeddings; text classification). Exit 0 whatever it finds; bad input exits 2.")
    check.add_argument("task", metavar="TASK", help="e.g. text-classification, customer_service.intent")
    check.add_argument("--train", required=True, metavar="PATH", help="training data (CSV, JSONL, CoNLL...)")
    check.add_argument("--validation", metavar="PATH", help="validation data")
    check.add_argument("--test", metavar="PATH", help="test data")
    check.add_argument("--config", metavar="FILE", help="JSON/YAML config with training/data/task sections")
    check.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override one option, e.g. data.label_column=category (repeatable)")
    check.add_argument("--backbone", metavar="PATH", help="backbone whose tokenizer and embeddings are used")
    check.add_argument("--near-threshold", type=float, default=0.95, metavar="COSINE",
                       help="embedding cosine from which two texts are near duplicates (default 0.95)")
    check.add_argument("--cheap", action="store_true",
                       help="only the checks `train` runs (no embeddings, no cleanlab)")
    check.add_argument("--suspects", metavar="FILE", help="write suspect records (likely label errors, "
                       "conflicts) as CSV with a suggested label")
    check.add_argument("--overwrite", action="store_true", help="replace a suspects file Verticals wrote")
    check.add_argument("--json", action="store_true", help="print one JSON object")
    check.set_defaults(func=cmd_check)
