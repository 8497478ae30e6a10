"""The ``verticals`` command line: the parser is built from one module per verb (``cli/<verb>.py``, each with
``add_parser``); errors are printed on one line with a non-zero exit, never a traceback (set
VERTICALS_DEBUG=1 to see one)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from collections.abc import Sequence

from ..errors import VerticalsError, cli_wording
from . import (
    backbones,
    check,
    compare,
    config,
    evaluate,
    export,
    feedback,
    inspect,
    new_pack,
    packs,
    predict,
    report,
    serve,
    train,
    tune,
)

# the order of `verticals --help`
VERBS = (packs, config, backbones, check, train, tune, evaluate, inspect, predict, serve, report, export,
         new_pack, feedback, compare)


def build_parser() -> argparse.ArgumentParser:
    from .._version import __version__

    parser = argparse.ArgumentParser(
        prog="verticals", description="Fine-tune pretrained transformers into domain solutions.",
        epilog="Set VERTICALS_PLUGINS=a,b to load only some packs; VERTICALS_DEBUG=1 shows tracebacks.",
    )
    parser.add_argument("--version", action="version", version=f"verticals {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    for verb in VERBS:
        verb.add_parser(sub)
    return parser


def _quiet_libraries(args: argparse.Namespace | None = None) -> None:
    if args is not None:
        from ..console import log_to_stderr

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
        with cli_wording():  # messages name --flags, not the Python keywords
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
        if isinstance(exc, OSError) and exc.filename and exc.strerror:
            # the machine refused (permissions, a vanished folder...): one line naming the path, exit 1
            print(f"verticals: error: {exc.filename}: {exc.strerror}", file=sys.stderr)
            return 1
        print(f"verticals: internal error: {type(exc).__name__}: {exc} (set VERTICALS_DEBUG=1 for details)",
              file=sys.stderr)
        return 1
