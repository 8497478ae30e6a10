"""What every verb shares: strict JSON printing, one-line summaries, and the flag groups defined once."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from ..errors import VerticalsError

LOG_LEVELS = ("debug", "info", "warning", "error")
EXIT_BAD_INPUT = 2



def _json_safe(obj: Any, path: str, notes: list[str]) -> Any:
    """``obj`` with NaN/±inf replaced by null (bare NaN is not JSON; strict parsers refuse the whole output),
    noting where, and numpy scalars turned into Python numbers."""
    if type(obj).__module__ == "numpy" and hasattr(obj, "item"):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        notes.append(f"{path or 'value'} is {obj} (not defined on this data); printed as null")
        return None
    if isinstance(obj, dict):
        return {key: _json_safe(value, f"{path}.{key}" if path else str(key), notes) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(value, f"{path}[{i}]", notes) for i, value in enumerate(obj)]
    return obj


def to_json(obj: Any, **kwargs: Any) -> tuple[str, list[str]]:
    notes: list[str] = []
    text = json.dumps(_json_safe(obj, "", notes), ensure_ascii=False, default=str, allow_nan=False, **kwargs)
    return text, notes


def print_json(obj: Any) -> None:
    """Print strictly valid JSON; non-finite numbers become null and are explained in a "notes" list (or on
    stderr when the output is not an object)."""
    notes: list[str] = []
    clean = _json_safe(obj, "", notes)
    if notes and isinstance(clean, dict) and "notes" not in clean:
        clean["notes"] = notes
    elif notes:
        for note in notes:
            print(f"verticals: note: {note}", file=sys.stderr)
    print(json.dumps(clean, indent=2, ensure_ascii=False, default=str, allow_nan=False))


def summary(prediction: Any) -> str:
    if hasattr(prediction, "summary") and callable(prediction.summary):
        return str(prediction.summary())
    data = prediction.model_dump()
    if "label" in data and "score" in data:
        return f"{data['label']} ({data['score']:.3f})"
    if "entities" in data:
        found = ", ".join(f"{e['type']}: {e['text']}" for e in data["entities"]) or "no entities"
        return found
    return json.dumps(data, ensure_ascii=False, default=str)


def usage_error(usage: str, rows: list[dict[str, Any]]) -> VerticalsError:
    from ..errors import ConfigError

    names = ", ".join(row["name"] for row in rows) or "none"
    return ConfigError(f"usage: {usage}; available: {names}")


def add_engine_option(parser: argparse.ArgumentParser, default: str) -> None:
    from ..config import ENGINES

    parser.add_argument("--engine", choices=ENGINES, default=default,
                        help=f"where the encoder runs (default: {default}); onnx = ONNX Runtime fp32, same "
                             "numbers, lower latency on CPU; onnx-int8 = quantised, check accuracy with evaluate")


def add_data_set_option(*parsers: argparse.ArgumentParser) -> None:
    """``--set data.OPTION=VALUE`` on the verbs that read data with a trained bundle (column names, format,
    encoding of a client's file); what the model learnt (training.*, task.*) cannot change there."""
    for parser in parsers:
        parser.add_argument("--set", action="append", metavar="data.KEY=VALUE",
                            help="read the data with another data option, e.g. data.text_column=utterance "
                                 "(column names, format, encoding; repeatable)")


def key_value(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got '{text}'")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def add_training_options(parser: argparse.ArgumentParser, *, data_help: str, output_help: str,
                         backbone_help: str) -> None:
    """The flags every verb that trains a bundle takes (train, distill): data, output, configuration, resume,
    console. Defined once so the verbs cannot drift apart."""
    parser.add_argument("--train", required=True, metavar="PATH", help=data_help)
    parser.add_argument("--validation", metavar="PATH", help="validation data (default: seeded stratified hold-out)")
    parser.add_argument("--test", metavar="PATH", help="test data, scored into bundle.json")
    parser.add_argument("--output", required=True, metavar="DIR", help=output_help)
    parser.add_argument("--config", metavar="FILE", help="JSON/YAML config with training/data/task sections")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="override one option, e.g. training.epochs=5 (repeatable; `verticals config TASK` "
                             "lists them)")
    parser.add_argument("--backbone", metavar="PATH", help=backbone_help)
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the bundle at --output (only a bundle Verticals wrote)")
    parser.add_argument("--resume", action="store_true", help="resume from the last complete epoch checkpoint "
                        "(OUTPUT.checkpoints; an existing bundle is replaced only with --overwrite)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bars or epoch lines; warnings and errors only (same as --log-level warning)")
    parser.add_argument("--log-level", choices=LOG_LEVELS, default="info",
                        help="what the 'verticals' logger shows on stderr (default: info = one line per epoch)")
