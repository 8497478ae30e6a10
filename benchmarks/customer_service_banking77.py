"""Banking77 with the customer-service pack, in one run:

1. **Accuracy**: official train -> official test, ``customer_service.intent`` with pack defaults beside plain
   ``transformers.Trainer`` defaults (``AutoModelForSequenceClassification`` on the same embedded
   all-MiniLM-L6-v2; ``TrainingArguments`` at their defaults: lr 5e-5, 3 epochs, batch 8, no warmup).
   Both train on the same seeded stratified 90 % of train; the other 10 % is the pack's validation
   split (early stopping, calibration) and the baseline's per-epoch eval set.
2. **Out of scope**: a seeded subset of intents is held out and never trained on; half of them (their
   training utterances) join validation as ``out_of_scope`` for calibration, the other half (their test
   utterances) join the test set as ``out_of_scope``. Reported with the fallback off, with a calibrated
   confidence threshold alone, and with the full two-threshold retrieval fallback.
3. **Latency**: single-query ``predict_one`` p50/p99 with the fallback on, on the trained Banking77 bundle,
   loaded on each inference engine (``verticals.load(..., engine=...)``: torch, ONNX Runtime fp32 and int8),
   with each engine's test accuracy (fallback on) so a faster engine's accuracy cost is visible.

    flock /tmp/verticals-cpu.lock nice -n 5 python benchmarks/customer_service_banking77.py \
        [--epochs N] [--max-per-intent N] [--skip-baseline] [--skip-oos]
"""

from __future__ import annotations

import argparse
import csv
import gc
import os
import random
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from _common import data_dir, write_csv

TASK = "customer_service.intent"


def banking77_root() -> Path | None:
    """The Banking77 folder (and only the customer-service pack loaded), or None after saying it is absent."""
    root = data_dir() / "banking77"
    if not (root / "train.csv").exists() or not (root / "test.csv").exists():
        print(f"skipped: Banking77 not found under {root} (set VERTICALS_DATA)")
        return None
    os.environ.setdefault("VERTICALS_PLUGINS", "customer_service")
    return root


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return [{"text": r["text"], "label": r["category"]} for r in csv.DictReader(handle)]


def cap_per_intent(rows: list[dict[str, str]], n: int, seed: int) -> list[dict[str, str]]:
    """A seeded sample of at most ``n`` rows of each intent."""
    by_label: dict[str, list] = defaultdict(list)
    for row in rows:
        by_label[row["label"]].append(row)
    rng = random.Random(seed)
    return [r for label in sorted(by_label) for r in rng.sample(by_label[label], min(n, len(by_label[label])))]


def split(rows: list[dict[str, str]], seed: int, max_per_intent: int | None) -> tuple[list, list]:
    """Seeded stratified 90/10 split of the official train set (optionally capped per intent first)."""
    from sklearn.model_selection import train_test_split

    if max_per_intent:
        rows = cap_per_intent(rows, max_per_intent, seed)
    train, validation = train_test_split(rows, test_size=0.1, random_state=seed, stratify=[r["label"] for r in rows])
    return train, validation


def scores(y_true: list[str], y_pred: list[str]) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    return {"accuracy": float(accuracy_score(y_true, y_pred)),
            "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0))}


def plain_trainer(train: list, validation: list | None, work: Path, seed: int, backbone: str | None):  # type: ignore[no-untyped-def]
    """The transformers quick-start recipe on the same backbone and data, unchanged: returns the trained
    ``Trainer``, its label list and the encoder of rows (``with_labels=False`` for rows of unknown labels)."""
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )
    from verticals.backbones.loading import embedded_minilm_path

    labels = sorted({r["label"] for r in train})
    index = {label: i for i, label in enumerate(labels)}
    path = backbone or embedded_minilm_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=len(labels))

    def encode(rows: list[dict[str, str]], with_labels: bool = True) -> list[dict]:
        encoded = tokenizer([r["text"] for r in rows], truncation=True)
        return [{"input_ids": encoded["input_ids"][i], "attention_mask": encoded["attention_mask"][i]}
                | ({"labels": index[r["label"]]} if with_labels else {}) for i, r in enumerate(rows)]

    # Defaults apart from where it writes, per-epoch evaluation on the validation split (when given), and no
    # checkpoint files (disk I/O only, no effect on the model).
    args = TrainingArguments(output_dir=str(work / "hf"), seed=seed, eval_strategy="epoch" if validation else "no",
                             save_strategy="no", report_to="none", disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=encode(train),
                      eval_dataset=encode(validation) if validation else None,
                      data_collator=DataCollatorWithPadding(tokenizer))
    trainer.train()
    return trainer, labels, encode


def run_trainer_defaults(train: list, validation: list, test: list, work: Path, seed: int,
                         backbone: str | None) -> dict[str, float]:
    trainer, labels, encode = plain_trainer(train, validation, work, seed, backbone)
    logits = np.asarray(trainer.predict(encode(test)).predictions)
    return scores([r["label"] for r in test], [labels[i] for i in logits.argmax(-1)])


def train_pack(train: list, validation: list, work: Path, name: str, overrides: list[str]):  # type: ignore[no-untyped-def]
    import verticals

    return verticals.train(TASK, write_csv(train, work / f"{name}-train.csv"),
                           validation=write_csv(validation, work / f"{name}-validation.csv"),
                           output=work / name, overrides=overrides, overwrite=True)


def out_of_scope_protocol(train: list, validation: list, test: list, work: Path, args: argparse.Namespace,
                          overrides: list[str]) -> list[tuple[str, dict[str, float]]]:
    from verticals_customer_service.calibration import ALWAYS, calibrate, rates

    intents = sorted({r["label"] for r in train})
    held = random.Random(args.seed).sample(intents, args.holdout)
    val_unknown, test_unknown = set(held[: len(held) // 2]), set(held[len(held) // 2:])
    oos = "out_of_scope"
    rng = random.Random(args.seed)
    unknown_val = [r for r in train + validation if r["label"] in val_unknown]
    unknown_val = rng.sample(unknown_val, min(len(unknown_val), args.oos_validation))
    o_train = [r for r in train if r["label"] not in held]
    o_val = [r for r in validation if r["label"] not in held] + [{"text": r["text"], "label": oos} for r in unknown_val]
    o_test = ([r for r in test if r["label"] not in held]
              + [{"text": r["text"], "label": oos} for r in test if r["label"] in test_unknown])
    print(f"[oos] held out {len(held)} intents (seed {args.seed}): validation unknown {sorted(val_unknown)}, "
          f"test unknown {sorted(test_unknown)}", flush=True)
    print(f"[oos] train/validation/test = {len(o_train)}/{len(o_val)}/{len(o_test)} "
          f"({sum(r['label'] == oos for r in o_val)} / {sum(r['label'] == oos for r in o_test)} out of scope)",
          flush=True)
    predictor = train_pack(o_train, o_val, work, "oos", overrides)
    task = predictor.task
    test_records = task.read(write_csv(o_test, work / "oos-test.csv"))
    on = task.evaluate(test_records).metrics
    off = task.score(test_records, task.predict(test_records, fallback=False)).metrics
    # The classic single threshold (low confidence = out of scope), calibrated with the same objective.
    val_records = task.read(work / "oos-validation.csv")
    single = calibrate(task.outcomes(val_records), task.options.objective,
                       oos_recall_target=task.options.oos_recall_target, use_retrieval=False)
    r = rates(task.outcomes(test_records), np.array([single.confidence]), np.array([ALWAYS]))
    threshold = {name: float(v[0, 0]) for name, v in r.items()}
    t = task.thresholds_
    return [
        ("fallback off (classifier only)", off),
        (f"confidence threshold only ({single.confidence:.3f})", threshold),
        (f"retrieval fallback ({t['confidence']:.3f} / {t['similarity']:.3f})", on),
    ]


def latency(predictor, texts: list[str], n: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    for text in texts[:10]:
        predictor.predict_one(text)  # warm-up
    times, fired = [], 0
    for text in texts[:n]:
        start = time.perf_counter()
        fired += predictor.predict_one(text).fallback
        times.append((time.perf_counter() - start) * 1000)
    return {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99)),
            "n": len(times), "fallback_fired": fired}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=float, help="override the pack's training.epochs (default: pack default)")
    parser.add_argument("--max-per-intent", type=int, help="cap training utterances per intent (subset run)")
    parser.add_argument("--holdout", type=int, default=16, help="intents held out as unknown (half val, half test)")
    parser.add_argument("--oos-validation", type=int, default=300, help="unknown utterances put in validation")
    parser.add_argument("--latency-queries", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backbone", help="local model dir for both (default: the embedded all-MiniLM-L6-v2)")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--skip-oos", action="store_true")
    parser.add_argument("--engines", nargs="+", default=["torch", "onnx", "onnx-int8"],
                        choices=["torch", "onnx", "onnx-int8"], help="inference engines for the latency table")
    args = parser.parse_args()
    root = banking77_root()
    if root is None:
        return 0
    import verticals
    train, validation = split(read_rows(root / "train.csv"), args.seed, args.max_per_intent)
    test = read_rows(root / "test.csv")
    overrides = [f"training.seed={args.seed}"] + ([f"training.epochs={args.epochs}"] if args.epochs else [])
    overrides += [f"training.backbone={args.backbone}"] if args.backbone else []
    print(f"train/validation/test = {len(train)}/{len(validation)}/{len(test)}; pack overrides: {overrides}",
          flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="cs-banking77-") as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        predictor = train_pack(train, validation, work, "pack", overrides)
        records = predictor.task.read(write_csv(test, work / "test.csv"))
        plain = predictor.task.predict(records, fallback=False)
        pack = scores([r.label for r in records], [p.intent for p in plain])
        rows.append(("customer_service.intent (pack defaults)", pack, time.perf_counter() - start))
        print(f"pack: {pack} ({rows[-1][2]:.0f}s, {predictor.task.trainer_.epochs_run_:.0f} epochs)", flush=True)
        if not args.skip_baseline:
            start = time.perf_counter()
            base = run_trainer_defaults(train, validation, test, work, args.seed, args.backbone)
            rows.append(("transformers.Trainer defaults", base, time.perf_counter() - start))
            print(f"baseline: {base} ({rows[-1][2]:.0f}s)", flush=True)
        latencies = []
        for engine in args.engines:
            loaded = verticals.load(work / "pack", engine=engine)
            accuracy = loaded.task.evaluate(records).metrics["accuracy"]
            latencies.append((engine, accuracy, latency(loaded, [r["text"] for r in test[::7]],
                                                        args.latency_queries)))
            del loaded  # its ONNX Runtime threads must not compete with the next engine's
            gc.collect()
        oos_rows = [] if args.skip_oos else out_of_scope_protocol(train, validation, test, work, args, overrides)

    print("\n| Banking77 official test (3,080) | accuracy | macro-F1 | train+eval time |")
    print("|---|---|---|---|")
    for name, m, secs in rows:
        print(f"| {name} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} | {secs / 60:.1f} min |")
    if oos_rows:
        print(f"\n| out of scope ({args.holdout} held-out intents) | in-scope accuracy | OOS recall | OOS precision "
              f"| fallback rate |")
        print("|---|---|---|---|---|")
        for name, m in oos_rows:
            shown = [f"{m[k]:.4f}" if k in m else "-" for k in ("in_scope_accuracy", "oos_recall", "oos_precision",
                                                                "fallback_rate")]
            print(f"| {name} | " + " | ".join(shown) + " |")
    print(f"\n| single-query predict_one, fallback on, {os.cpu_count()} CPU threads | test accuracy (fallback on) "
          f"| p50 | p99 | queries (fallback fired) |")
    print("|---|---|---|---|---|")
    for engine, accuracy, lat in latencies:
        print(f"| engine={engine} | {accuracy:.4f} | {lat['p50_ms']:.1f} ms | {lat['p99_ms']:.1f} ms "
              f"| {lat['n']} ({lat['fallback_fired']}) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
