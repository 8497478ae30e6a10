"""``verticals tune`` with a fixed budget against the pack's hand-chosen defaults.

``--dataset phrasebank`` (default): Financial PhraseBank (50Agree, exact duplicates removed, the seeded stratified
80/10/10 split of finance_phrasebank.py), the first ``--max-train`` (1,000) training sentences; the validation
split scores the trials (and early stopping), the test split is seen only by the final bundles. Per seed: the
finance.sentiment defaults trained once, and ``tune`` with ``--trials`` (8) trials, median pruning on, the
core search space, then its best parameters trained into a bundle. ``training.seed`` and the sampler seed are
the seed; the data split stays fixed.

``--dataset banking77``: ``customer_service.intent`` on Banking77 at ``--per-intent`` (16) training utterances
per intent (the seeded sample and 90/10 split of customer_service_banking77.py, seed 0), the official test
set for the final bundles.

    flock /tmp/verticals-bench.lock nice -n 10 python benchmarks/tune_budget.py [--dataset banking77] \
        [--seeds 42 43] [--trials 12] [--timeout S]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from _common import data_dir, write_csv
from customer_service_banking77 import banking77_root, read_rows
from customer_service_banking77 import split as banking77_split
from finance_phrasebank import load_rows, split


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[42])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--dataset", choices=["phrasebank", "banking77"], default="phrasebank")
    parser.add_argument("--max-train", type=int, default=1000, help="PhraseBank training sentences kept")
    parser.add_argument("--per-intent", type=int, default=16, help="Banking77 training utterances per intent")
    parser.add_argument("--timeout", type=float, help="seconds after which tune starts no new trial")
    parser.add_argument("--json", metavar="FILE", help="also write the rows (and every trial) here")
    args = parser.parse_args()

    import verticals
    from verticals.console import log_to_stderr

    log_to_stderr("info")  # one line per epoch and per trial on stderr: progress of a long run
    from verticals.workshop.tune import tune

    if args.dataset == "banking77":
        root = banking77_root()
        if root is None:
            return 0
        task = "customer_service.intent"
        train, validation = banking77_split(read_rows(root / "train.csv"), 0, args.per_intent)
        test = read_rows(root / "test.csv")
    else:
        rows = load_rows("50Agree")
        if rows is None:
            print(f"skipped: {data_dir() / 'financial_phrasebank'} not found (set VERTICALS_DATA)")
            return 0
        task = "finance.sentiment"
        train, validation, test = split(rows, 42)
        train = train[: args.max_train]
    table = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        paths = {name: write_csv(part, work / f"{name}.csv")
                 for name, part in (("train", train), ("validation", validation), ("test", test))}
        for seed in args.seeds:
            start = time.perf_counter()
            pred = verticals.train(task, paths["train"], validation=paths["validation"],
                                   test=paths["test"], output=work / f"defaults-{seed}",
                                   overrides=[f"training.seed={seed}"])
            table.append({"run": "pack defaults", "seed": seed, "metrics": pred.info.metrics,
                          "seconds": time.perf_counter() - start, "params": {}})
            print(json.dumps(table[-1]), flush=True)
            start = time.perf_counter()
            pred = tune(task, paths["train"], validation=paths["validation"], test=paths["test"],
                        output=work / f"tuned-{seed}", trials=args.trials, timeout=args.timeout,
                        overrides=[f"training.seed={seed}"],
                        config={"tune": {"seed": seed}})
            record = pred.info.model_extra["tune"]
            table.append({"run": f"tune, {len(record['trials'])} of {args.trials} trials", "seed": seed,
                          "metrics": pred.info.metrics,
                          "seconds": time.perf_counter() - start, "params": record["params"],
                          "trials": record["trials"]})
            print(json.dumps(table[-1]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=1), encoding="utf-8")
    print(f"\n{task} on {args.dataset}: train/validation/test = {len(train)}/{len(validation)}/{len(test)}")
    print("| run | seed | val acc | val macro-F1 | test acc | test macro-F1 | time | pruned | chosen |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in table:
        val, tst = row["metrics"]["validation"], row["metrics"]["test"]
        pruned = sum(t["state"] == "PRUNED" for t in row.get("trials", []))
        chosen = ", ".join(f"{k.rpartition('.')[2]}={v:.3g}" if isinstance(v, float) else f"{k.rpartition('.')[2]}={v}"
                           for k, v in row["params"].items()) or "-"
        print(f"| {row['run']} | {row['seed']} | {val['accuracy']:.4f} | {val['macro_f1']:.4f} | "
              f"{tst['accuracy']:.4f} | {tst['macro_f1']:.4f} | {row['seconds'] / 60:.1f} min | "
              f"{pruned if 'trials' in row else '-'} | {chosen} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
