"""Financial PhraseBank sentiment: the finance pack's defaults beside plain ``transformers.Trainer`` defaults.

Both fine-tune the same embedded all-MiniLM-L6-v2 on the same seeded, stratified 80/10/10 split
(exact duplicate sentences removed first so no copy straddles train and test), and are scored on the
same test split in one run. The baseline is ``AutoModelForSequenceClassification`` + ``Trainer`` with
``TrainingArguments`` left at their defaults (lr 5e-5, 3 epochs, batch 8, no validation use).

    flock /tmp/verticals-cpu.lock nice -n 5 python benchmarks/finance_phrasebank.py [--files 50Agree AllAgree]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import data_dir, write_csv


def split(rows: list[dict[str, str]], seed: int) -> tuple[list, list, list]:
    from sklearn.model_selection import train_test_split

    labels = [r["label"] for r in rows]
    train, rest = train_test_split(rows, test_size=0.2, random_state=seed, stratify=labels)
    validation, test = train_test_split(rest, test_size=0.5, random_state=seed, stratify=[r["label"] for r in rest])
    return train, validation, test


def load_rows(level: str) -> list[dict[str, str]] | None:
    """Sentences_{level}.txt as text/label rows, exact duplicate lines removed (they would leak between
    splits); None when the data set is absent."""
    folder = data_dir() / "financial_phrasebank"
    if not folder.is_dir():
        return None
    from verticals_finance.sentiment import read_phrasebank

    seen, rows = set(), []
    for record in read_phrasebank(folder / f"Sentences_{level}.txt"):
        key = (record.data["text"], record.data["label"])
        if key not in seen:
            seen.add(key)
            rows.append({"text": record.data["text"], "label": record.data["label"]})
    return rows


def run_pack(train: Path, validation: Path, test: Path, work: Path, overrides: list[str]) -> dict[str, float]:
    import verticals

    predictor = verticals.train("finance.sentiment", train, validation=validation, output=work / "bundle",
                                overrides=overrides)
    return predictor.evaluate(test).metrics


def run_trainer_defaults(train: list, test: list, labels: list[str], work: Path, seed: int) -> dict[str, float]:
    """What a practitioner gets from the transformers quick-start recipe, unchanged."""
    from sklearn.metrics import accuracy_score, f1_score
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )
    from verticals.backbones.loading import embedded_minilm_path

    path = embedded_minilm_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=len(labels))
    index = {label: i for i, label in enumerate(labels)}

    def encode(rows: list) -> list[dict]:
        enc = tokenizer([r["text"] for r in rows], truncation=True)
        return [{"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i],
                 "labels": index[r["label"]]} for i, r in enumerate(rows)]

    args = TrainingArguments(output_dir=str(work / "hf"), seed=seed, report_to="none", save_strategy="no",
                             disable_tqdm=True, logging_strategy="no")
    trainer = Trainer(model=model, args=args, train_dataset=encode(train),
                      data_collator=DataCollatorWithPadding(tokenizer))
    trainer.train()
    logits = trainer.predict(encode(test)).predictions
    y_pred = np.asarray(logits).argmax(-1)
    y_true = [index[r["label"]] for r in test]
    return {"accuracy": float(accuracy_score(y_true, y_pred)),
            "macro_f1": float(f1_score(y_true, y_pred, average="macro"))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", nargs="+", default=["50Agree"], help="agreement levels, e.g. 50Agree AllAgree")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--max-train", type=int, default=None, help="cap training sentences (quick runs)")
    parser.add_argument("--set", action="append", default=[], help="extra override for the pack run")
    parser.add_argument("--skip-baseline", action="store_true", help="only run the pack (default experiments)")
    args = parser.parse_args()

    table = []
    for level in args.files:
        rows = load_rows(level)
        if rows is None:
            print(f"skipped: {data_dir() / 'financial_phrasebank'} not found (set VERTICALS_DATA)")
            return 0
        train, validation, test = split(rows, args.seed)
        if args.max_train:
            train = train[: args.max_train]
        labels = sorted({r["label"] for r in rows})
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            paths = [write_csv(part, work / f"{name}.csv")
                     for name, part in (("train", train), ("validation", validation), ("test", test))]
            start = time.perf_counter()
            ours = run_pack(*paths, work, args.set)
            table.append((level, "finance.sentiment defaults", ours, time.perf_counter() - start))
            print(f"[{level}] pack: {ours} ({table[-1][3]:.0f}s)", flush=True)
            if not args.skip_baseline:
                start = time.perf_counter()
                base = run_trainer_defaults(train, test, labels, work, args.seed)
                table.append((level, "transformers.Trainer defaults", base, time.perf_counter() - start))
                print(f"[{level}] baseline: {base} ({table[-1][3]:.0f}s)", flush=True)
        print(f"[{level}] train/validation/test = {len(train)}/{len(validation)}/{len(test)} (seed {args.seed})")

    print()
    print("| data | model | test accuracy | test macro-F1 | train+eval time |")
    print("|---|---|---|---|---|")
    for level, name, metrics, seconds in table:
        print(f"| {level} | {name} | {metrics['accuracy']:.4f} | {metrics['macro_f1']:.4f} | {seconds / 60:.1f} min |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
