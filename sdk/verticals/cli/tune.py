"""`verticals tune TASK`: hyperparameter search with Optuna, the best trial trained into a bundle."""

from __future__ import annotations

import argparse
from typing import Any

from .common import LOG_LEVELS, print_json


def cmd_tune(args: argparse.Namespace) -> int:
    from ..workshop.tune import require_optuna, tune

    require_optuna().logging.set_verbosity(30)  # WARNING: our one line per trial replaces Optuna's
    predictor = tune(args.task, args.train, output=args.output, trials=args.trials, validation=args.validation,
                     test=args.test, timeout=args.timeout, storage=args.storage, study=args.study,
                     config=args.config, overrides=args.set or [], backbone=args.backbone, overwrite=args.overwrite)
    record = (predictor.info.model_extra or {}).get("tune", {})
    if args.json:
        print_json({"bundle": str(args.output), "task": predictor.info.task, "metrics": predictor.info.metrics,
                     "tune": record})
        return 0
    print(f"study '{record['study']}' in {record['storage']}: {len(record['trials'])} trials, best #"
          f"{record['best_trial']} ({record['metric']} {record['best_value']:.4f})")
    for trial in record["trials"]:
        value = "-" if trial["value"] is None else f"{trial['value']:.4f}"
        params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial["params"].items())
        print(f"  #{trial['number']:<4} {trial['state']:<9} {value:>8}  {params}")
    print(f"wrote bundle {args.output} with the best parameters")
    for split, metrics in predictor.info.metrics.items():
        print(f"  {split}: " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items() if isinstance(v, (int, float))))
    return 0


def add_parser(sub: Any) -> None:
    tune = sub.add_parser(
        "tune", help="search hyperparameters with Optuna, then train the best into a bundle (verticals[workshop])",
        description="Run trials of TASK with parameters drawn by a seeded TPE sampler (median pruning on the "
                    "per-epoch validation metric) until the study holds --trials finished trials, then train the "
                    "best parameters into a bundle at --output whose bundle.json records the study. The study is "
                    "stored in --storage (default: a SQLite file OUTPUT.tune/study.db): rerun the same command "
                    "after a kill to resume; several processes on one storage and --study share the trials. The "
                    "search space (`verticals config TASK`) is changed in a `tune: {space: ...}` config section.")
    tune.add_argument("task", metavar="TASK", help="e.g. text-classification, finance.sentiment")
    tune.add_argument("--train", required=True, metavar="PATH", help="training data")
    tune.add_argument("--validation", metavar="PATH", help="validation data that scores the trials (default: "
                      "seeded stratified hold-out)")
    tune.add_argument("--test", metavar="PATH", help="test data, scored into the final bundle only")
    tune.add_argument("--trials", required=True, type=int, metavar="N",
                      help="finished (complete or pruned) trials the study should hold, over all runs and workers")
    tune.add_argument("--timeout", type=float, metavar="SECONDS", help="start no new trial after this long")
    tune.add_argument("--storage", metavar="URL", help="Optuna RDB storage: sqlite:///PATH, postgresql://..., "
                      "mysql+pymysql://... (default: sqlite:///OUTPUT.tune/study.db)")
    tune.add_argument("--study", metavar="NAME", help="study name in the storage (default: the output folder name)")
    tune.add_argument("--output", required=True, metavar="DIR", help="bundle directory for the best parameters")
    tune.add_argument("--config", metavar="FILE", help="JSON/YAML config; its `tune:` section sets the search")
    tune.add_argument("--set", action="append", metavar="KEY=VALUE",
                      help="fix one option (repeatable); a fixed option is not searched")
    tune.add_argument("--backbone", metavar="PATH", help="backbone of every trial")
    tune.add_argument("--overwrite", action="store_true", help="replace a bundle Verticals wrote at --output")
    tune.add_argument("--json", action="store_true", help="print the result as JSON")
    tune.add_argument("--quiet", action="store_true", help="warnings and errors only")
    tune.add_argument("--log-level", choices=LOG_LEVELS, default="info", help="what the 'verticals' logger shows")
    tune.set_defaults(func=cmd_tune)
