"""`verticals feedback export DB`: the corrections users posted, as training records."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .common import print_json


def cmd_feedback(args: argparse.Namespace) -> int:
    from ..operate.feedback_export import export_feedback

    result = export_feedback(args.db, args.model, args.output, since=args.since, overwrite=args.overwrite,
                             conflicts_file=args.conflicts, append_to=args.append_to)
    for conflict in result.conflicts[:20]:
        said = "; ".join(f"{json.dumps(c['correction'], ensure_ascii=False)} x{c['count']} "
                         f"({c.get('source') or 'feedback ids ' + ', '.join(map(str, c['feedback_ids']))})"
                         for c in conflict.corrections)
        print(f"verticals: conflict: {json.dumps(conflict.input, ensure_ascii=False)[:200]}: {said}", file=sys.stderr)
    if len(result.conflicts) > 20:
        print(f"verticals: ... and {len(result.conflicts) - 20} more conflicts (--conflicts FILE lists them all)",
              file=sys.stderr)
    if args.json:
        print_json(result.model_dump())
        return 0
    after = f" after the {result.appended_to} records" if result.appended_to else ""
    print(f"wrote {result.records} training records{after} to {result.path} from {result.feedback_rows} feedback rows "
          f"({result.duplicates_merged} duplicates merged, {len(result.conflicts)} conflicting inputs left out, "
          f"{result.no_correction} without a correction)")
    print(f"sha256 {result.sha256}")
    return 0


def add_parser(sub: Any) -> None:
    feedback = sub.add_parser("feedback", help="turn stored user feedback into training data")
    feedback_sub = feedback.add_subparsers(dest="action", metavar="ACTION", required=True)
    feedback_export = feedback_sub.add_parser(
        "export", help="write a model's corrections as training records",
        description="Write the corrections stored by `serve --feedback-db` as training records in the task's "
                    "format; duplicates merged, conflicting corrections listed and left out.")
    feedback_export.add_argument("db", metavar="DB",
                                 help="the --feedback-db of verticals serve: a file or a database URL")
    feedback_export.add_argument("--model", required=True, metavar="NAME", help="model name as served (/v1/models)")
    feedback_export.add_argument("--output", required=True, metavar="FILE", help="training file: .csv, .jsonl, .conll")
    feedback_export.add_argument("--since", metavar="DATE", help="only feedback from DATE on (2026-12-01 or ISO time)")
    feedback_export.add_argument("--conflicts", metavar="FILE", help="also write the conflicting inputs here (JSONL)")
    feedback_export.add_argument("--append-to", metavar="TRAIN",
                                 help="copy this training file first (unchanged) and add the corrections it lacks: "
                                      "--output is then the retraining file")
    feedback_export.add_argument("--overwrite", action="store_true",
                                 help="replace a file this command wrote, unchanged since (nothing else)")
    feedback_export.add_argument("--json", action="store_true", help="print the result as JSON")
    feedback_export.set_defaults(func=cmd_feedback)
