"""Batch-scoring throughput and memory: plain streaming (`verticals predict --input --output`) vs Ray Data.

Generates N short texts (default 1,000,000) as JSONL, builds a small bundle, then scores the file with
  * streaming: one process, ``verticals.scale.streaming.predict_file`` (chunked, bounded memory), and
  * ray: ``verticals.scale.ray_scoring.score_file`` on a local Ray cluster with ``--workers`` actors,
each in its own subprocess while this process samples the memory (PSS, so the shared Ray object store is
counted once) of the whole process tree. Prints one table.

    flock /tmp/verticals-cpu.lock nice -n 5 python benchmarks/scale_scoring.py --rows 1000000 --backbone tiny
    flock /tmp/verticals-cpu.lock nice -n 5 python benchmarks/scale_scoring.py --rows 20000 --backbone minilm

``--backbone tiny`` is the 2-layer random BERT of ``verticals.testing`` (measures the pipeline: reading,
validation, tokenisation, writing); ``minilm`` is the real all-MiniLM-L6-v2 (head-only bundle).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = ["invoice", "parcel", "refund", "login", "delivery", "password", "charge", "courier", "account", "late",
         "broken", "thanks", "please", "help", "order", "today", "my", "the", "was", "not"]


def generate(path: Path, rows: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(rows):
            text = " ".join(rng.choices(WORDS, k=rng.randint(4, 12)))
            handle.write(json.dumps({"id": i, "text": text}) + "\n")


def build_bundle(workdir: Path, backbone: str) -> Path:
    import verticals
    from verticals.testing import make_tiny_backbone

    bundle = workdir / f"bundle-{backbone}"
    if (bundle / "manifest.json").exists():
        return bundle
    rng = random.Random(1)
    train = workdir / "train.jsonl"
    with open(train, "w", encoding="utf-8") as handle:
        for _ in range(300):
            label = rng.choice(["billing", "shipping", "account"])
            text = " ".join(rng.choices(WORDS, k=6)) + f" {label}"
            handle.write(json.dumps({"text": text, "label": label}) + "\n")
    if backbone == "tiny":
        source, overrides = str(make_tiny_backbone(workdir / "tiny-bert")), ["training.epochs=1"]
    else:
        source, overrides = "all-MiniLM-L6-v2", ["training.epochs=1", "training.strategy=head-only"]
    verticals.train("text-classification", train, output=bundle, backbone=source, overwrite=True,
                    overrides=overrides)
    return bundle


def run_mode(mode: str, bundle: str, source: str, output: str, workers: int, chunk_size: int) -> None:
    """Child process body: score and print one JSON line with the row count."""
    import torch

    if mode.startswith("streaming"):
        import verticals
        from verticals.scale.streaming import predict_file

        predictor = verticals.load(bundle)
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        n = predict_file(predictor, source, output, chunk_size=chunk_size, keep_columns=["id"], progress=False)
    else:
        import ray
        from verticals.scale.ray_scoring import score_file

        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        ray.data.DataContext.get_current().enable_progress_bars = False
        n = score_file(bundle, source, output, workers=workers, batch_size=chunk_size, keep_columns=["id"],
                       blocks=workers * 8)
        ray.shutdown()
    print(json.dumps({"rows": n}))


def tree_memory(proc: object) -> int:
    """PSS (RSS where PSS is unavailable) of a process and all its descendants, in bytes."""
    import psutil

    total = 0
    try:
        procs = [proc, *proc.children(recursive=True)]  # type: ignore[attr-defined]
    except psutil.Error:
        return 0
    for p in procs:
        try:
            info = p.memory_full_info()
            total += getattr(info, "pss", info.rss)
        except psutil.Error:
            pass
    return total


def measure(args: argparse.Namespace, mode: str, bundle: Path, source: Path, workdir: Path) -> dict:
    import psutil

    output = workdir / (f"out-{mode}.jsonl" if mode.startswith("streaming") else f"out-{mode}")
    threads = "2" if mode == "streaming-2t" else "1"
    env = {**os.environ, "OMP_NUM_THREADS": threads, "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, __file__, "--_child", mode, "--_bundle", str(bundle), "--_input", str(source),
           "--_output", str(output), "--workers", str(args.workers), "--chunk-size", str(args.chunk_size)]
    start = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    ps = psutil.Process(child.pid)
    samples: list[tuple[float, int]] = []
    while child.poll() is None:
        samples.append((time.perf_counter() - start, tree_memory(ps)))
        time.sleep(0.5)
    out, err = child.communicate()
    wall = time.perf_counter() - start
    if child.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{err[-3000:]}")
    rows = json.loads(out.strip().splitlines()[-1])["rows"]
    peak = max(m for _, m in samples)
    # Flat memory: the peak over the first quarter of the run vs the peak over the whole run.
    early = max((m for t, m in samples if t <= wall / 4), default=peak)
    return {"mode": mode, "rows": rows, "wall": wall, "rate": rows / wall, "peak": peak, "early": early}


LABELS = {
    "streaming-2t": "streaming, 1 process x 2 threads",
    "streaming-1t": "streaming, 1 process x 1 thread",
    "ray": "Ray Data, {workers} actors x 1 thread",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--backbone", choices=["tiny", "minilm"], default="tiny")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunk-size", type=int, default=2048)
    parser.add_argument("--modes", default="streaming-2t,streaming-1t,ray")
    parser.add_argument("--workdir", help="keep generated files here (default: a temporary directory)")
    for hidden in ("--_child", "--_bundle", "--_input", "--_output"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._child:
        run_mode(args._child, args._bundle, args._input, args._output, args.workers, args.chunk_size)
        return
    os.environ.setdefault("VERTICALS_PLUGINS", "")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        source = workdir / f"texts-{args.rows}.jsonl"
        if not source.exists():
            generate(source, args.rows)
        bundle = build_bundle(workdir, args.backbone)
        size_mb = source.stat().st_size / 1e6
        results = [measure(args, mode, bundle, source, workdir) for mode in args.modes.split(",")]
    print(f"\nScoring {args.rows:,} generated short texts ({size_mb:.0f} MB JSONL) with a {args.backbone} bundle, "
          f"chunk/batch {args.chunk_size}, {os.cpu_count()} CPUs; wall includes start-up and model loading")
    print(f"{'mode':<36} {'rows':>9} {'wall s':>8} {'rows/s':>8} {'peak MiB':>9} {'peak 1st 25% MiB':>17}")
    for r in results:
        label = LABELS[r["mode"]].format(workers=args.workers)
        print(f"{label:<36} {r['rows']:>9,} {r['wall']:>8.1f} {r['rate']:>8.0f} {r['peak'] / 2**20:>9.0f} "
              f"{r['early'] / 2**20:>17.0f}")


if __name__ == "__main__":
    main()
