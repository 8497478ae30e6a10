"""Financial PhraseBank: the ``finance.sentiment`` defaults beside one-change variants, on VALIDATION accuracy.

How the pack's defaults were checked (plugins/finance/README.md, "Defaults and how they were chosen"):
the benchmark's seeded 80/10/10 split of 50Agree, each variant trained on train with early stopping on
validation and scored on validation only; the test split is never read, so choosing defaults here does
not tune them to the benchmark's test figure. Each --variant is one comma-separated list of overrides.

    python benchmarks/finance_sentiment_sweep.py --seeds 42 43 \\
        --variant training.learning_rate=1.5e-4 --variant training.label_smoothing=0.0
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _common import data_dir, write_csv
from finance_phrasebank import load_rows, split


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--level", default="50Agree")
    parser.add_argument("--split-seed", type=int, default=42, help="the benchmark's split seed")
    parser.add_argument("--seeds", nargs="+", type=int, default=[42], help="training seeds (init, shuffling)")
    parser.add_argument("--variant", action="append", default=[], metavar="KEY=VALUE[,KEY=VALUE]")
    args = parser.parse_args()

    rows = load_rows(args.level)
    if rows is None:
        print(f"skipped: {data_dir() / 'financial_phrasebank'} not found (set VERTICALS_DATA)")
        return 0
    import verticals

    train, validation, _ = split(rows, args.split_seed)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        train_csv, validation_csv = write_csv(train, work / "train.csv"), write_csv(validation, work / "val.csv")
        for variant in ["", *args.variant]:
            overrides = [o for o in variant.split(",") if o]
            scores, curves = [], []
            for seed in args.seeds:
                predictor = verticals.train("finance.sentiment", train_csv, validation=validation_csv,
                                            output=work / "bundle", overwrite=True,
                                            overrides=[*overrides, f"training.seed={seed}"])
                scores.append(predictor.evaluate(validation_csv).metrics["accuracy"])
                history = predictor.task.trainer_.history_
                curves.append(" ".join(f"{e['eval_accuracy']:.3f}" for e in history if "eval_accuracy" in e))
                print(f"[{variant or 'defaults'}] seed {seed}: {scores[-1]:.4f} ({curves[-1]})", flush=True)
            results.append((variant or "(defaults)", scores, curves[0]))

    print(f"\n{args.level}, validation accuracy ({len(validation)} sentences; test not read)")
    print("| variant | " + " | ".join(f"seed {s}" for s in args.seeds) + " | mean | per epoch (first seed) |")
    print("|---|" + "---:|" * (len(args.seeds) + 1) + "---|")
    for name, scores, curve in results:
        cells = " | ".join(f"{s:.4f}" for s in scores)
        print(f"| {name} | {cells} | {sum(scores) / len(scores):.4f} | {curve} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
