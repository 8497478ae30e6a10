"""A pack's fine-tuning defaults beside one-change variants, scored on VALIDATION data only.

How the defaults of ``finance.sentiment``, ``customer_service.intent`` and ``medical.ner`` were checked (each
pack's README). Each task uses its benchmark's own split; every variant trains on train with early stopping
on validation, and the score is the task's primary metric at the best validation epoch (the one the trainer
restores): accuracy, or entity F1 for NER. The test split is never read, so checking defaults here does not
tune them to a benchmark's test figure. Each --variant is one comma-separated list of overrides; the
defaults always run first.

    python benchmarks/defaults_sweep.py --task finance.sentiment --seeds 42 43 \\
        --variant training.learning_rate=1.5e-4 --variant training.label_smoothing=0.0
    python benchmarks/defaults_sweep.py --task customer_service.intent --max-train 50 \\
        --variant training.learning_rate=5e-5
    python benchmarks/defaults_sweep.py --task medical.ner --max-train 1000 --seeds 42 43 \\
        --variant training.epochs=3 --variant training.epochs=3,training.label_smoothing=0.1
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from _common import data_dir, write_csv

Split = tuple[Path, Path, list[str]]  # training file, validation file, overrides the files need


def phrasebank(args: argparse.Namespace, work: Path) -> Split | None:
    from finance_phrasebank import load_rows, split

    rows = load_rows("50Agree")
    if rows is None:
        return None
    train, validation, _ = split(rows, 42)
    return write_csv(train, work / "train.csv"), write_csv(validation, work / "validation.csv"), []


def banking77(args: argparse.Namespace, work: Path) -> Split | None:
    from customer_service_banking77 import cap_per_intent, read_rows, split

    path = data_dir() / "banking77" / "train.csv"
    if not path.exists():
        return None
    train, validation = split(read_rows(path), 0, None)
    if args.max_train:  # fewer training utterances per intent, the benchmark's full validation split
        train = cap_per_intent(train, args.max_train, 0)
    return write_csv(train, work / "train.csv"), write_csv(validation, work / "validation.csv"), []


def ncbi_disease(args: argparse.Namespace, work: Path) -> Split | None:
    from medical_ncbi import data_dir as ncbi_dir
    from medical_ncbi import first_sentences

    source = ncbi_dir()
    if not (source / "train.tsv").exists():
        return None
    train = first_sentences(source / "train.tsv", args.max_train, work / "train.conll")
    return train, source / "devel.tsv", ["data.format=conll"]


SPLITS = {"finance.sentiment": phrasebank, "customer_service.intent": banking77, "medical.ner": ncbi_disease}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=sorted(SPLITS), required=True)
    parser.add_argument("--seeds", nargs="+", type=int, default=[42], help="training seeds (init, shuffling)")
    parser.add_argument("--variant", action="append", default=[], metavar="KEY=VALUE[,KEY=VALUE]")
    parser.add_argument("--max-train", type=int,
                        help="customer_service.intent: utterances per intent; medical.ner: first N sentences")
    args = parser.parse_args()

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        split = SPLITS[args.task](args, work)
        if split is None:
            print(f"skipped: the data set for {args.task} is not under {data_dir()} (set VERTICALS_DATA)")
            return 0
        os.environ.setdefault("VERTICALS_PLUGINS", args.task.split(".")[0])
        import verticals

        train, validation, data_overrides = split
        for variant in ["", *args.variant]:
            overrides = [*data_overrides, *(o for o in variant.split(",") if o)]
            scores, curves = [], []
            for seed in args.seeds:
                predictor = verticals.train(args.task, train, validation=validation, output=work / "bundle",
                                            overwrite=True, overrides=[*overrides, f"training.seed={seed}"])
                trainer, metric = predictor.task.trainer_, f"eval_{predictor.task.primary_metric}"
                scores.append(trainer.best_metric_)
                curves.append(" ".join(f"{e[metric]:.3f}" for e in trainer.history_ if metric in e))
                print(f"[{variant or 'defaults'}] seed {seed}: {scores[-1]:.4f} ({curves[-1]})", flush=True)
            results.append((variant or "(defaults)", scores, curves[0]))
        sizes = {name: predictor.info.data[name]["records"] for name in ("train", "validation")}

    print(f"\n{args.task}: best validation {predictor.task.primary_metric}, {sizes['train']} training / "
          f"{sizes['validation']} validation records (test not read)")
    print("| variant | " + " | ".join(f"seed {s}" for s in args.seeds) + " | mean | per epoch (first seed) |")
    print("|---|" + "---:|" * (len(args.seeds) + 1) + "---|")
    for name, scores, curve in results:
        cells = " | ".join(f"{s:.4f}" for s in scores)
        print(f"| {name} | {cells} | {sum(scores) / len(scores):.4f} | {curve} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
