"""Does ``data.augment`` help where it should: little training data?

Rows, each with augmentation off and on, over seeds (mean +- sd on the test split):

* Banking77, ``text-classification`` on the embedded MiniLM, at 8 and 16 training utterances per intent (a
  seeded sample of the official train split); validation: 3 other utterances per intent (early stopping);
  test: ``--test-per-intent`` utterances per intent of the official test split (the same for every run).
  Core defaults except ``training.max_length=32``, ``batch_size=16``, ``head_learning_rate=1e-3`` and
  ``training.min_steps`` (``--min-steps``): a small set gets at least that many optimizer steps, so both
  arms make about the same number of updates. On: ``data.augment.copies`` = ``--copies``, all four EDA
  operations, rate 0.1 (the defaults).
* NCBI-disease, ``medical.ner`` with its pack defaults except ``training.epochs`` (``--ner-epochs``), on a
  seeded 10 % of the training sentences; validation: the first ``--devel`` devel sentences; test: the first
  ``--test-sentences`` test sentences (entity F1, conlleval). On: mention + label-wise token replacement,
  rate 0.3 (the defaults). The epochs are fixed, so the augmented arm trains (1 + copies) times the steps.

Runs go seed by seed (every setting of seed 0, then of seed 1, ...), so a run cut short still compares arms.
Results are appended to ``--results`` (JSON lines) as each run ends, and runs already there are skipped, so an
interrupted benchmark continues where it stopped.

    flock /tmp/verticals-bench.lock nice -n 10 python benchmarks/augment.py --seeds 0 1 2 --copies 2 \
        --min-steps 150 --ner-epochs 3 --threads 1
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from _common import data_dir, write_csv


def banking_split(root: Path, per_intent: int, seed: int, test_per_intent: int, work: Path) -> dict[str, Path]:
    """A seeded sample of ``per_intent`` training and 3 validation utterances per intent; the official test."""
    with open(root / "train.csv", newline="", encoding="utf-8") as handle:
        rows = [{"text": r["text"], "label": r["category"]} for r in csv.DictReader(handle)]
    by_label: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        by_label[row["label"]].append(row)
    rng = random.Random(seed)
    train, validation = [], []
    for label in sorted(by_label):
        chosen = rng.sample(by_label[label], per_intent + 3)
        train += chosen[:per_intent]
        validation += chosen[per_intent:]
    with open(root / "test.csv", newline="", encoding="utf-8") as handle:
        test_by_label: dict[str, list[dict[str, str]]] = defaultdict(list)
        for r in csv.DictReader(handle):
            test_by_label[r["category"]].append({"text": r["text"], "label": r["category"]})
    fixed = random.Random(0)  # the same test sample for every seed and arm
    test = [row for label in sorted(test_by_label)
            for row in fixed.sample(test_by_label[label], min(test_per_intent, len(test_by_label[label])))]
    return {"train": write_csv(train, work / "train.csv"), "validation": write_csv(validation, work / "val.csv"),
            "test": write_csv(test, work / "test.csv")}


def ncbi_split(root: Path, fraction: float, seed: int, devel: int, test: int, work: Path) -> dict[str, Path]:
    """A seeded ``fraction`` of the training sentences, the first ``devel`` devel and ``test`` test sentences."""
    def blocks(path: Path) -> list[str]:
        return [b for b in path.read_text(encoding="utf-8").split("\n\n") if b.strip()]

    train = blocks(root / "train.tsv")
    chosen = sorted(random.Random(seed).sample(range(len(train)), round(fraction * len(train))))
    (work / "train.conll").write_text("\n\n".join(train[i] for i in chosen) + "\n", encoding="utf-8")
    (work / "devel.conll").write_text("\n\n".join(blocks(root / "devel.tsv")[:devel]) + "\n", encoding="utf-8")
    (work / "test.conll").write_text("\n\n".join(blocks(root / "test.tsv")[:test]) + "\n", encoding="utf-8")
    return {"train": work / "train.conll", "validation": work / "devel.conll", "test": work / "test.conll"}


def run(task: str, files: dict[str, Path], overrides: list[str], output: Path) -> dict[str, Any]:
    import verticals

    started = time.perf_counter()
    predictor = verticals.train(task, files["train"], validation=files["validation"], test=files["test"],
                                output=output, overrides=overrides, overwrite=True, check=False)
    return {"seconds": time.perf_counter() - started, "test": predictor.info.metrics["test"],
            "epochs": getattr(predictor.task.trainer_, "epochs_run_", None),
            "augmentation": predictor.info.model.get("augmentation")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--copies", type=int, default=2, help="data.augment.copies of the 'on' arm")
    parser.add_argument("--per-intent", type=int, nargs="+", default=[8, 16], help="Banking77 training sizes")
    parser.add_argument("--ncbi-fraction", type=float, default=0.1, help="share of NCBI training sentences (0: skip)")
    parser.add_argument("--devel", type=int, default=300, help="NCBI devel sentences used for early stopping")
    parser.add_argument("--test-sentences", type=int, default=942, help="NCBI test sentences scored (942: all)")
    parser.add_argument("--test-per-intent", type=int, default=40, help="Banking77 test utterances per intent")
    parser.add_argument("--min-steps", type=int, default=300, help="Banking77 training.min_steps")
    parser.add_argument("--ner-epochs", type=float, default=8, help="NCBI training.epochs (pack default 8)")
    parser.add_argument("--threads", type=int, default=None, help="training.num_threads (1 on a crowded machine)")
    parser.add_argument("--arms", nargs="+", default=["off", "on"], choices=["off", "on", "off-long"],
                        help="off-long: no augmentation, but (1 + copies) times the epochs of 'on', so as many "
                             "optimizer steps as the augmented arm (tells more data from more updates)")
    parser.add_argument("--results", type=Path, default=Path("augment-results.jsonl"))
    args = parser.parse_args()

    banking, ncbi = data_dir() / "banking77", data_dir() / "ncbi_disease"
    settings: list[tuple[str, Any]] = []
    if (banking / "train.csv").exists():
        settings += [("banking77", n) for n in args.per_intent]
    else:
        print(f"skipped Banking77: not found under {banking} (set VERTICALS_DATA)")
    if (ncbi / "train.tsv").exists() and args.ncbi_fraction > 0:
        settings.append(("ncbi", args.ncbi_fraction))
    else:
        print(f"skipped NCBI-disease: not found under {ncbi} (set VERTICALS_DATA)")
    done = {}
    if args.results.exists():
        for line in args.results.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            done[(row["data"], row["size"], row["arm"], row["seed"], row["copies"])] = row
    for seed in args.seeds:
        for data, size in settings:
            for arm in args.arms:
                key = (data, size, arm, seed, args.copies)
                if key in done:
                    continue
                with tempfile.TemporaryDirectory(prefix="augment-") as tmp:
                    work = Path(tmp)
                    overrides = [f"training.seed={seed}"]
                    if args.threads:
                        overrides.append(f"training.num_threads={args.threads}")
                    if data == "banking77":
                        task = "text-classification"
                        files = banking_split(banking, size, seed, args.test_per_intent, work)
                        overrides += ["training.max_length=32", "training.batch_size=16",
                                      "training.head_learning_rate=1e-3", f"training.min_steps={args.min_steps}"]
                    else:
                        task = "medical.ner"
                        files = ncbi_split(ncbi, size, seed, args.devel, args.test_sentences, work)
                        overrides += [f"training.epochs={args.ner_epochs}"]
                    if arm == "on":  # the operations and rate are the task type's defaults
                        overrides += [f"data.augment.copies={args.copies}"]
                    elif arm == "off-long":  # 'on' runs 3 epochs (Banking77: the core's budget) of 1 + copies sets
                        epochs = 3 if data == "banking77" else args.ner_epochs
                        overrides += [f"training.epochs={epochs * (1 + args.copies):g}"]
                    result = run(task, files, overrides, work / "bundle")
                row = {"data": data, "size": size, "arm": arm, "seed": seed, "copies": args.copies, **result}
                done[key] = row
                with open(args.results, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(row) + "\n")
                metric = "accuracy" if data == "banking77" else "f1"
                print(f"{data} {size} {arm} seed {seed}: test {metric} {row['test'][metric]:.4f} "
                      f"({row['seconds']:.0f} s, {row['epochs']} epochs)", flush=True)
    print_table([r for r in done.values() if r["copies"] == args.copies], args.copies)
    return 0


def print_table(rows: list[dict[str, Any]], copies: int) -> None:
    def stats(values: list[float]) -> str:
        if not values:
            return "-"
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{100 * statistics.mean(values):.2f} ± {100 * sd:.2f} (n={len(values)})"

    long = any(r["arm"] == "off-long" for r in rows)
    extra = f" | off, {1 + copies}x epochs (same steps as on)" if long else ""
    print(f"\n| data | metric (test) | augment off | augment on (copies={copies}) | gain | time on/off{extra} |")
    print("|---|---|---|---|---|---|" + ("---|" if long else ""))
    for data, size in dict.fromkeys((r["data"], r["size"]) for r in rows):
        metric = "accuracy" if data == "banking77" else "f1"
        arms = {arm: [r for r in rows if (r["data"], r["size"], r["arm"]) == (data, size, arm)]
                for arm in ("off", "on", "off-long")}
        values = {arm: [r["test"][metric] for r in arms[arm]] for arm in arms}
        paired = [on["test"][metric] - off["test"][metric] for off in arms["off"] for on in arms["on"]
                  if on["seed"] == off["seed"]]
        both = {r["seed"] for r in arms["off"]} & {r["seed"] for r in arms["on"]}
        seconds = {arm: sum(r["seconds"] for r in arms[arm] if r["seed"] in both) for arm in arms}
        ratio = f"{seconds['on'] / seconds['off']:.2f}" if seconds["off"] and seconds["on"] else "-"
        name = f"Banking77, {size} per intent" if data == "banking77" else f"NCBI-disease, {100 * size:g} % train"
        gain = f"{100 * statistics.mean(paired):+.2f} ({sum(d > 0 for d in paired)}/{len(paired)} seeds up)" \
            if paired else "-"
        print(f"| {name} | {'accuracy' if metric == 'accuracy' else 'entity F1'} | {stats(values['off'])} | "
              f"{stats(values['on'])} | {gain} | {ratio} |" + (f" {stats(values['off-long'])} |" if long else ""))


if __name__ == "__main__":
    sys.exit(main())
