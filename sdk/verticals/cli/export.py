"""`verticals export BUNDLE --format onnx`: an ONNX export with a parity check."""

from __future__ import annotations

import argparse
from typing import Any

from .common import (
    print_json,
)


def cmd_export(args: argparse.Namespace) -> int:
    from ..delivery.export import export_onnx

    result = export_onnx(args.bundle, args.output, opset=args.opset, tolerance=args.tolerance,
                         overwrite=args.overwrite)
    if args.json:
        print_json(result.model_dump())
    else:
        print(f"wrote {result.path}: {', '.join(result.files)}, export.json (decision: {result.decision['kind']}; "
              f"run {result.path}/predict.py to predict without Verticals)")
        print(f"{result.task}: parity vs PyTorch: max abs diff "
              f"{result.max_abs_diff:.3g} on a {result.check_batch[0]}x{result.check_batch[1]} batch "
              f"(tolerance {result.tolerance:g})")
        print(f"digest {result.digest} (send it by another channel; the receiver checks it with "
              f"verticals inspect EXPORT --expect DIGEST)")
    return 0


def add_parser(sub: Any) -> None:
    export = sub.add_parser("export", help="export a bundle to ONNX with a parity check")
    export.add_argument("bundle", metavar="BUNDLE")
    export.add_argument("--format", choices=["onnx"], default="onnx")
    export.add_argument("--output", required=True, metavar="DIR",
                        help="export directory: model.onnx, config.json, tokenizer, export.json (decision), predict.py")
    export.add_argument("--opset", type=int, default=17)
    export.add_argument("--tolerance", type=float, default=1e-4, help="max abs logit difference allowed")
    export.add_argument("--overwrite", action="store_true", help="replace an export Verticals wrote there")
    export.add_argument("--json", action="store_true", help="print the result as JSON")
    export.set_defaults(func=cmd_export)
