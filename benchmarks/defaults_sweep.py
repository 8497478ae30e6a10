"""A pack's fine-tuning defaults beside one-change variants, scored on VALIDATION accuracy only.

How the defaults of ``finance.sentiment`` and ``customer_service.intent`` were checked (each pack's README,
"Defaults"). Each task uses its benchmark's own seeded split; every variant trains on train with early
stopping on validation, and the score is the best validation accuracy (the epoch the trainer restores).
The test split is never read, so checking defaults here does not tune them to a benchmark's test figure.
Each --variant is one comma-separated list of overrides; the defaults always run first.

    python benchmarks/defaults_sweep.py --task finance.sentiment --seeds 42 43 \\
        --variant training.learning_rate=1.5e-4 --variant training.label_smoothing=0.0
    python benchmarks/defaults_sweep.py --task customer_service.intent --max-per-intent 50 \\
        --variant training.learning_rate=5e-5
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
from collections import defaultdict
from pathlib import Path

from _common import data_dir, write_csv


def phrasebank(args: argparse.Namespace) -> tuple[list, list] | None:
    from finance_phrasebank import load_rows, split

    rows = load_rows("50Agree")
    return None if rows is None else split(rows, 42)[:2]


def banking77(args: argparse.Namespace) -> tuple[list, list] | None:
    from customer_service_banking77 import read_rows, split

    path = data_dir() / "banking77" / "train.csv"
    if not path.exists():
        return None
    train, validation = split(read_rows(path), 0, None)
    if args.max_per_intent:  # fewer training utterances, the benchmark's full validation split
        by_label: dict[str, list] = defaultdict(list)
        for row in train:
            by_label[row["label"]].append(row)
        rng = random.Random(0)
        train = [r for rows in by_label.values() for r in rng.sample(rows, min(args.max_per_intent, len(rows)))]
    return train, validation


SPLITS = {"finance.sentiment": phrasebank, "customer_service.intent": banking77}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=sorted(SPLITS), required=True)
    parser.add_argument("--seeds", nargs="+", type=int, default=[42], help="training seeds (init, shuffling)")
    parser.add_argument("--variant", action="append", default=[], metavar="KEY=VALUE[,KEY=VALUE]")
    parser.add_argument("--max-per-intent", type=int, help="customer_service.intent: cap training utterances")
    args = parser.parse_args()

    splits = SPLITS[args.task](args)
    if splits is None:
        print(f"skipped: the data set for {args.task} is not under {data_dir()} (set VERTICALS_DATA)")
        return 0
    os.environ.setdefault("VERTICALS_PLUGINS", args.task.split(".")[0])
    import verticals

    train, validation = splits
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        train_csv, validation_csv = write_csv(train, work / "train.csv"), write_csv(validation, work / "val.csv")
        for variant in ["", *args.variant]:
            overrides = [o for o in variant.split(",") if o]
            scores, curves = [], []
            for seed in args.seeds:
                predictor = verticals.train(args.task, train_csv, validation=validation_csv,
                                            output=work / "bundle", overwrite=True,
                                            overrides=[*overrides, f"training.seed={seed}"])
                trainer = predictor.task.trainer_
                scores.append(trainer.best_metric_)
                curves.append(" ".join(f"{e['eval_accuracy']:.3f}" for e in trainer.history_ if "eval_accuracy" in e))
                print(f"[{variant or 'defaults'}] seed {seed}: {scores[-1]:.4f} ({curves[-1]})", flush=True)
            results.append((variant or "(defaults)", scores, curves[0]))

    print(f"\n{args.task}: best validation accuracy, {len(train)} training / {len(validation)} validation "
          f"records (test not read)")
    print("| variant | " + " | ".join(f"seed {s}" for s in args.seeds) + " | mean | per epoch (first seed) |")
    print("|---|" + "---:|" * (len(args.seeds) + 1) + "---|")
    for name, scores, curve in results:
        cells = " | ".join(f"{s:.4f}" for s in scores)
        print(f"| {name} | {cells} | {sum(scores) / len(scores):.4f} | {curve} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
