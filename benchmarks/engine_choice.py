"""Which inference engine and precision `--engine auto` should pick on this CPU, measured in one run.

    flock /tmp/verticals-bench.lock nice -n 10 python benchmarks/engine_choice.py [--bundle DIR] [--queries 300]

One text-classification bundle on the embedded MiniLM (trained here on a seeded Banking77 sample unless
``--bundle`` is given), then, on the same machine and threads, each way of running its encoder: PyTorch fp32,
PyTorch with bf16 autocast, ONNX Runtime fp32 and ONNX Runtime int8 (dynamic, per-channel). Per row: records/s
of one batched ``predict`` over the Banking77 test set (what a batching server or a scoring job sees), p50/p99
of ``predict_one`` (what one client on one connection sees), and the share of test decisions equal to PyTorch
fp32's (int8 and bf16 change numbers; a decision that flips is what matters). The CPU's instruction sets that
decide the question (AMX, AVX-512 VNNI / BF16, AVX2) are printed with the table: run it on every kind of
machine met and keep the rule in ``verticals.backbones.engines.resolve_engine`` true to every table.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

from _common import data_dir, write_csv
from customer_service_banking77 import cap_per_intent, read_rows

FLAGS = ("amx_tile", "amx_bf16", "amx_int8", "avx512_bf16", "avx512_vnni", "avx512f", "avx_vnni", "avx2")


def cpu_kind() -> str:
    model, flags = platform.processor() or "?", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model in ("?", "x86_64", ""):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return f"{model}; " + " ".join(f for f in FLAGS if f in flags)


def measure(predictor, texts: list[str], labels: list[str], queries: int) -> dict:  # type: ignore[no-untyped-def]
    predictor.predict(texts[:64])  # warm-up: graph optimisation, allocator, oneDNN primitive caches
    start = time.perf_counter()
    predictions = predictor.predict(texts)
    seconds = time.perf_counter() - start
    latencies = []
    for text in texts[:queries]:
        t0 = time.perf_counter()
        predictor.predict_one(text)
        latencies.append((time.perf_counter() - t0) * 1000)
    latencies.sort()
    decided = [p.label for p in predictions]
    return {"records_per_s": len(texts) / seconds, "p50": statistics.median(latencies),
            "p99": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
            "accuracy": sum(d == y for d, y in zip(decided, labels)) / len(labels), "decisions": decided}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, help="a text-classification bundle to run (default: train one)")
    parser.add_argument("--per-intent", type=int, default=40, help="Banking77 training rows per intent (default 40)")
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--queries", type=int, default=300, help="single queries for p50/p99")
    parser.add_argument("--threads", type=int, help="intra-op threads (default: the core default, all cores)")
    args = parser.parse_args()
    root = data_dir() / "banking77"
    if not (root / "test.csv").exists():
        print(f"skipped: Banking77 not found under {root} (set VERTICALS_DATA)")
        return 0
    import torch
    import verticals

    if args.threads:
        torch.set_num_threads(args.threads)
    test = read_rows(root / "test.csv")
    texts, labels = [r["text"] for r in test], [r["label"] for r in test]
    with tempfile.TemporaryDirectory(prefix="engine-choice-") as tmp:
        bundle = args.bundle
        if bundle is None:
            train = cap_per_intent(read_rows(root / "train.csv"), args.per_intent, 0)
            bundle = Path(tmp) / "bundle"
            start = time.perf_counter()
            verticals.train("text-classification", write_csv(train, Path(tmp) / "train.csv"), output=bundle,
                            overrides=[f"training.epochs={args.epochs}", "training.early_stopping_patience=null",
                                       "data.validation_fraction=0.1"])
            print(f"trained {len(train)} rows in {time.perf_counter() - start:.0f} s", flush=True)
        rows = {}
        for name, engine, precision in (("torch fp32", "torch", "fp32"), ("torch bf16 autocast", "torch", "bf16"),
                                        ("onnx fp32", "onnx", None), ("onnx int8", "onnx-int8", None)):
            predictor = verticals.load(bundle, engine=engine)
            if precision:  # the bundle's own choice ('auto') is what is being decided: force each one here
                predictor.task.precision_ = precision
            rows[name] = measure(predictor, texts, labels, args.queries)
            print(f"  {name}: done", flush=True)
        auto = verticals.load(bundle, engine="auto")
        chosen = f"{auto.engine}" + (f" ({auto.task.precision_})" if auto.engine == "torch" else "")
    reference = rows["torch fp32"]["decisions"]
    print(f"\nCPU: {cpu_kind()}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"{len(texts)} test texts; `--engine auto` picks: {chosen}")
    print("| engine | records/s (batched) | x torch fp32 | p50 ms (one query) | p99 ms | accuracy | "
          "decisions = torch fp32 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    base = rows["torch fp32"]["records_per_s"]
    for name, row in rows.items():
        same = sum(a == b for a, b in zip(row["decisions"], reference)) / len(reference)
        print(f"| {name} | {row['records_per_s']:.1f} | {row['records_per_s'] / base:.2f} | {row['p50']:.2f} | "
              f"{row['p99']:.2f} | {row['accuracy']:.4f} | {same:.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
