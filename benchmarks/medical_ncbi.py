"""NCBI-disease NER: the medical pack (``medical.ner``, its defaults) vs the core's generic
``token-classification`` with plain defaults, in one run on the same data and epochs.

Protocol: train on train (optionally its first --max-train sentences), early-stop on devel, report
entity-level (conlleval, strict) precision / recall / F1 on test.

    flock /tmp/verticals-cpu.lock nice -n 5 python benchmarks/medical_ncbi.py --epochs 3 --max-train 1000
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


def data_dir() -> Path:
    root = Path(os.environ.get("VERTICALS_DATA") or Path(__file__).resolve().parents[2] / "shared" / "datasets")
    return root / "ncbi_disease"


def first_sentences(source: Path, n: int | None, target: Path) -> Path:
    """The first ``n`` sentences of a CoNLL file (all when None), written to a temporary file."""
    if n is None:
        return source
    blocks = [b for b in source.read_text(encoding="utf-8").split("\n\n") if b.strip()]
    target.write_text("\n\n".join(blocks[:n]) + "\n", encoding="utf-8")
    return target


def run(task: str, overrides: list[str], files: dict[str, Path], output: Path) -> dict[str, object]:
    import verticals

    started = time.perf_counter()
    predictor = verticals.train(task, files["train"], validation=files["devel"], test=files["test"],
                                output=output, overrides=overrides, overwrite=True)
    seconds = time.perf_counter() - started
    training = predictor.task.config.training
    return {"task": task, "lr": training.learning_rate, "epochs": getattr(predictor.task.trainer_, "epochs_run_", None),
            "seconds": seconds, "devel": predictor.info.metrics["validation"], "test": predictor.info.metrics["test"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=float, default=3, help="maximum epochs, the same for both models")
    parser.add_argument("--max-train", type=int, default=None, help="use only the first N training sentences")
    parser.add_argument("--backbone", default=None, help="backbone for both models (default: the embedded MiniLM)")
    args = parser.parse_args()

    source = data_dir()
    if not (source / "train.tsv").exists():
        print(f"skipped: NCBI-disease not found at {source} (set VERTICALS_DATA)")
        return 0
    with tempfile.TemporaryDirectory(prefix="medical-ncbi-") as tmp:
        files = {"train": first_sentences(source / "train.tsv", args.max_train, Path(tmp) / "train.conll"),
                 "devel": source / "devel.tsv", "test": source / "test.tsv"}
        # .tsv would be read as a headed table; these files are token<TAB>tag CoNLL
        shared = ["data.format=conll", f"training.epochs={args.epochs}"]
        if args.backbone:
            shared.append(f"training.backbone={args.backbone}")
        rows = [run("medical.ner", shared, files, Path(tmp) / "ours"),
                run("token-classification", shared, files, Path(tmp) / "baseline")]

    n_train = args.max_train or "all (5,424)"
    print(f"\nNCBI-disease test, entity-level strict P/R/F1 (conlleval); train sentences: {n_train}; "
          f"max epochs {args.epochs:g} for both, early stopping on devel F1")
    print("| model | lr | epochs run | train+eval time | devel F1 | test P | test R | test F1 |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        test, devel = row["test"], row["devel"]
        print(f"| {row['task']} | {row['lr']:g} | {row['epochs']} | {row['seconds'] / 60:.1f} min | "
              f"{100 * devel['f1']:.2f} | {100 * test['precision']:.2f} | {100 * test['recall']:.2f} | "
              f"**{100 * test['f1']:.2f}** |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
