"""Does ``training.torch_compile`` pay on this machine? The same seeded Banking77 subset trained with and
without it, in one run; prints training examples/s and test accuracy for each.

    python benchmarks/torch_compile.py [--rows 3000] [--epochs 1]

The core keeps ``torch_compile`` off by default because of what this prints on a 2-core CPU: compilation and
recompilation for each new padded length (batches are dynamically padded) cost far more than the faster
kernels save at this scale.
"""

from __future__ import annotations

import argparse
import csv
import random
import tempfile
import time
from pathlib import Path

from _common import data_dir, write_csv


def run(train: Path, test: list[dict[str, str]], workdir: Path, compile_: bool, epochs: float) -> dict[str, float]:
    import verticals

    start = time.perf_counter()
    predictor = verticals.train("text-classification", train, output=workdir / f"compile-{compile_}",
                                overrides=[f"training.epochs={epochs}", "training.early_stopping_patience=null",
                                           f"training.torch_compile={str(compile_).lower()}"])
    seconds = time.perf_counter() - start
    n_train = predictor.info.data["train"]["records"] - predictor.info.data["validation"]["records"]
    predictions = predictor.predict([r["text"] for r in test])
    accuracy = sum(p.label == r["label"] for p, r in zip(predictions, test)) / len(test)
    return {"seconds": seconds, "examples_per_s": n_train * epochs / seconds, "accuracy": accuracy}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3000, help="seeded subset of the Banking77 train set")
    parser.add_argument("--epochs", type=float, default=1)
    args = parser.parse_args()
    root = data_dir() / "banking77"
    if not (root / "train.csv").exists():
        print(f"skipped: Banking77 not found under {root} (set VERTICALS_DATA)")
        return 0
    with open(root / "train.csv", newline="", encoding="utf-8") as handle:
        rows = [{"text": r["text"], "label": r["category"]} for r in csv.DictReader(handle)]
    with open(root / "test.csv", newline="", encoding="utf-8") as handle:
        test = [{"text": r["text"], "label": r["category"]} for r in csv.DictReader(handle)]
    random.Random(0).shuffle(rows)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        train = write_csv(rows[: args.rows], workdir / "train.csv")
        results = {flag: run(train, test, workdir, flag, args.epochs) for flag in (False, True)}
    print(f"\nBanking77, {args.rows} training rows, {args.epochs:g} epoch(s), all-MiniLM-L6-v2")
    print(f"{'training.torch_compile':<24}{'wall s':>9}{'examples/s':>12}{'test accuracy':>15}")
    for flag, r in results.items():
        print(f"{str(flag).lower():<24}{r['seconds']:>9.1f}{r['examples_per_s']:>12.1f}{r['accuracy']:>15.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
