"""`verticals predict BUNDLE`: predictions for texts, fields or a file."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from ..errors import VerticalsError
from .common import (
    add_data_set_option,
    add_engine_option,
    key_value,
    print_json,
    summary,
    to_json,
)


def cmd_predict(args: argparse.Namespace) -> int:
    from ..api import load

    extra = {key: value for key, value in (vars(args).get("field") or [])}
    if args.output == "-":  # the convention: standard output
        args.output, args.json_lines = None, True
    elif args.output and args.output.endswith(("/", os.sep)):  # a trailing slash means a folder
        args.output = os.path.join(args.output, "predictions.jsonl")
    if args.output and os.path.isdir(args.output):  # before loading: the answer would be IsADirectoryError
        raise VerticalsError(f"--output {args.output} is a directory; predictions are written to a file: give a "
                             f"file path such as {os.path.join(args.output, 'predictions.jsonl')}")
    if extra and args.input:  # before any loading: also the streaming path below would ignore the fields
        raise VerticalsError("--field builds a record from the command line; it cannot be combined with --input "
                             "(put the fields in the file)")
    if args.output:  # before reading anything: the predictions replace neither the input nor a non-file
        from ..bundles.outputs import check_file_replaceable, refuse_same_file

        if args.input:
            refuse_same_file(args.input, args.output)
        check_file_replaceable(args.output, "predictions", args.overwrite)
    if args.explain:  # before loading: an ONNX engine would be exported only to be refused
        from ..tasks.explain import check_engine

        check_engine(args.engine)
    predictor = load(args.bundle, engine=args.engine, overrides=args.set)
    if args.input and args.output and not args.text and not args.explain:
        # File to file: stream in chunks (bounded memory, progress bar on stderr, atomic output).
        from ..scale.streaming import predict_file

        written = predict_file(predictor, args.input, args.output, overwrite=args.overwrite)
        print(f"wrote {written} predictions to {args.output}", file=sys.stderr)
        return 0
    inputs: list[Any] = []
    if args.input:
        # Records are validated once here; predict() takes them as they are.
        inputs.extend(predictor.task.read(args.input, require_labels=False))
    if extra and args.text:  # `predict BUNDLE 42 --field k=5`: each TEXT plus the same extra fields
        inputs.extend({**predictor.task.record_from_text(text), **extra} for text in args.text)
    else:
        inputs.extend(args.text)
    if not inputs and extra:
        inputs.append(extra)
    if not inputs:
        raise VerticalsError("nothing to predict: give TEXT arguments or --input PATH")
    predictions = predictor.predict(inputs)
    rows = [p.model_dump() for p in predictions]
    explanations = predictor.explain(inputs, method=args.explain_method) if args.explain else []
    for row, explanation in zip(rows, explanations):  # --explain: each prediction carries its explanation
        row["explanation"] = explanation.model_dump()
    if args.output:
        from ..bundles.bundle import atomic_file

        notes: list[str] = []
        with atomic_file(args.output, kind="predictions", overwrite=args.overwrite) as handle:
            for number, row in enumerate(rows, start=1):
                line, row_notes = to_json(row)
                notes.extend(f"line {number}: {note}" for note in row_notes)
                handle.write(line + "\n")
        for note in notes[:5]:
            print(f"verticals: note: {note}", file=sys.stderr)
        print(f"wrote {len(rows)} predictions to {args.output}", file=sys.stderr)
    elif getattr(args, "json_lines", False):  # --output -: the file's JSON Lines, on standard output
        for row in rows:
            print(to_json(row)[0])
    elif args.json:
        print_json(rows)
    else:
        for number, (item, prediction) in enumerate(zip(inputs, predictions)):
            data = item.model_dump() if hasattr(item, "model_dump") else item
            shown = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, default=str)[:80]
            print(f"{summary(prediction)}\t{shown}")
            if explanations:
                from ..tasks.explain import describe

                print(f"  why: {describe(explanations[number])}")
    return 0


def add_parser(sub: Any) -> None:
    predict = sub.add_parser("predict", help="predict with a bundle")
    predict.add_argument("bundle", metavar="BUNDLE")
    predict.add_argument("text", nargs="*", metavar="TEXT", help="texts to predict")
    predict.add_argument("--input", metavar="PATH", help="file of records to predict")
    predict.add_argument("--output", metavar="PATH", help="write predictions here (JSONL; .csv/.tsv/.parquet by "
                         "extension; '-' = standard output; a trailing '/' = predictions.jsonl in that folder)")
    predict.add_argument("--overwrite", action="store_true",
                         help="replace an existing predictions file (only one Verticals wrote, unchanged since)")
    predict.add_argument("--explain", action="store_true",
                         help="add each prediction's explanation: the words that drove it (text classification) or "
                              "each entity (token classification); torch engine only")
    predict.add_argument("--explain-method", choices=("occlusion", "integrated-gradients"), default="occlusion",
                         help="how --explain attributes (default: occlusion; see the README)")
    predict.add_argument("--field", action="append", type=key_value, metavar="KEY=VALUE",
                         help="build one input record from fields, e.g. --field user=42 --field k=10; with "
                              "TEXT arguments, added to each of them")
    predict.add_argument("--json", action="store_true", help="print JSON")
    add_engine_option(predict, "torch")
    predict.set_defaults(func=cmd_predict)
    add_data_set_option(predict)
