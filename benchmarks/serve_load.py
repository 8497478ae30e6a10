"""Load test of ``verticals serve`` on loopback: N concurrent clients for D seconds per scenario.

Scenarios, measured in one run against the same bundle and server build:
  health            GET /health: the HTTP stack alone (the floor)
  predict, unbatched  POST predict, one record per request, one forward pass per request (the default)
  predict, batched    the same requests with dynamic batching of concurrent requests (--batching)
  predict, no metrics the unbatched scenario with --no-metrics: what Prometheus metrics, decision counting and
                      the drift window cost. It alternates with the unbatched one (--rounds times each) so
                      both see the same machine load; the ratio of their throughputs is printed.

Reports requests, errors (transport errors, non-200 answers, or any record not ok), p50/p99 latency and
throughput. Without --bundle it trains a throw-away text-classification bundle on
examples/partner_pack/data (1 epoch; quality is irrelevant to load) with --backbone.

    flock /tmp/verticals-cpu.lock nice -n 5 python benchmarks/serve_load.py --clients 50 --duration 60
    python benchmarks/serve_load.py --backbone tiny --only-metrics-cost --rounds 3 --duration 20
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
QUERIES = [
    "My car was stolen from the driveway overnight.",
    "A pipe burst under the kitchen sink and flooded the ground floor.",
    "I slipped on a wet floor in the store and broke my wrist.",
    "Another car rear-ended me at a red light and crushed my bumper.",
    "Thieves smashed the window and took the laptop.",
    "The storm tore shingles off our roof.",
]


def build_bundle(directory: Path, backbone: str) -> Path:
    import verticals
    from verticals.testing import make_tiny_backbone, only_plugins

    if backbone == "tiny":
        backbone = str(make_tiny_backbone(directory / "tiny-bert"))
    data = ROOT / "examples" / "partner_pack" / "data" / "train.jsonl"
    with only_plugins():
        verticals.train("text-classification", data, output=directory / "bundle", backbone=backbone,
                        overrides=["training.epochs=1"])
    return directory / "bundle"


def start_server(bundle: Path, port: int, batching: bool, metrics: bool = True) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "verticals", "serve", str(bundle), "--host", "127.0.0.1", "--port", str(port)]
    if batching:
        cmd.append("--batching")
    if not metrics:
        cmd.append("--no-metrics")
    env = dict(os.environ, VERTICALS_PLUGINS="")
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_ready(port: int, process: subprocess.Popen[bytes], timeout: float = 180) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with code {process.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.3)
    raise SystemExit("server did not become ready")


async def load(url: str, method: str, body: dict | None, clients: int, duration: float,
               max_requests: int) -> dict[str, Any]:
    import httpx

    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + duration
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(worker: int, http: httpx.AsyncClient) -> None:
        nonlocal errors
        i = worker
        # Bounded: stops at the deadline or after max_requests, whichever comes first.
        for _ in range(max_requests):
            if time.monotonic() >= deadline:
                return
            payload = {"inputs": [QUERIES[i % len(QUERIES)]]} if body is not None else None
            i += 1
            start = time.perf_counter()
            try:
                response = await http.request(method, url, json=payload)
                ok = response.status_code == 200 and (
                    payload is None or all(r["ok"] for r in response.json()["results"]))
            except (httpx.HTTPError, ValueError, KeyError):
                ok = False
            latencies.append(time.perf_counter() - start)
            errors += not ok

    started = time.monotonic()
    async with httpx.AsyncClient(limits=limits, timeout=60) as http:
        await asyncio.gather(*(client(w, http) for w in range(clients)))
    elapsed = time.monotonic() - started
    return {"latencies": latencies, "errors": errors, "elapsed": elapsed}


def summary(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Requests, errors, throughput and latency percentiles over one or more runs of a scenario."""
    ms = np.asarray([x for run in runs for x in run["latencies"]]) * 1000
    return {"requests": len(ms), "errors": sum(run["errors"] for run in runs),
            "rps": len(ms) / sum(run["elapsed"] for run in runs),
            "p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99))}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, help="bundle to serve (default: train a throw-away one)")
    parser.add_argument("--backbone", default="all-MiniLM-L6-v2", help="backbone for the throw-away bundle, or 'tiny'")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per scenario")
    parser.add_argument("--max-requests", type=int, default=100_000, help="per client per scenario")
    parser.add_argument("--rounds", type=int, default=2,
                        help="runs each of 'predict, unbatched' and 'predict, no metrics', alternating")
    parser.add_argument("--only-metrics-cost", action="store_true",
                        help="only the metrics on/off pair (skip health and batched)")
    args = parser.parse_args()

    predict = ("POST", "/v1/models/bundle/predict", {})
    pair = [("predict, unbatched", False, True, *predict), ("predict, no metrics", False, False, *predict)]
    scenarios = [] if args.only_metrics_cost else [("health", True, True, "GET", "/health", None)]
    scenarios += [s for _ in range(args.rounds) for s in pair]
    if not args.only_metrics_cost:
        scenarios.append(("predict, batched", True, True, *predict))
    with tempfile.TemporaryDirectory() as tmp:
        bundle = args.bundle or build_bundle(Path(tmp), args.backbone)
        which = str(args.bundle) if args.bundle else f"throw-away text-classification bundle ({args.backbone})"
        runs: dict[str, list[dict[str, Any]]] = {}
        for name, batching, metrics, method, path, body in scenarios:
            port = free_port()
            server = start_server(bundle, port, batching, metrics)
            try:
                wait_ready(port, server)
                url = f"http://127.0.0.1:{port}{path}" if args.bundle is None else \
                    f"http://127.0.0.1:{port}{path.replace('/bundle/', f'/{Path(bundle).name}/')}"
                asyncio.run(load(url, method, body, args.clients, 3.0, 50))  # warm-up
                runs.setdefault(name, []).append(asyncio.run(load(url, method, body, args.clients, args.duration,
                                                                  args.max_requests)))
            finally:
                server.terminate()
                server.wait(30)

    rows = [(name, summary(r)) for name, r in runs.items()]
    print(f"\nverticals serve, {args.clients} concurrent clients x {args.duration:g} s per scenario run "
          f"({args.rounds} runs of each predict scenario with and without metrics), loopback, "
          f"{os.cpu_count()} CPU cores shared by server and clients; {which}")
    print(f"| {'scenario':<20} | {'requests':>8} | {'errors':>6} | {'req/s':>7} | {'p50 ms':>8} | {'p99 ms':>8} |")
    print(f"|{'-' * 22}|{'-' * 10}:|{'-' * 7}:|{'-' * 8}:|{'-' * 9}:|{'-' * 9}:|")
    for name, r in rows:
        print(f"| {name:<20} | {r['requests']:>8} | {r['errors']:>6} | {r['rps']:>7.1f} | {r['p50']:>8.1f} | "
              f"{r['p99']:>8.1f} |")
    on, off = summary(runs["predict, unbatched"])["rps"], summary(runs["predict, no metrics"])["rps"]
    per_round = [summary([with_])["rps"] / summary([without])["rps"]
                 for with_, without in zip(runs["predict, unbatched"], runs["predict, no metrics"])]
    print(f"\nmetrics on / off throughput: {on / off:.3f} (cost {100 * (1 - on / off):+.1f} %; per round: "
          f"{', '.join(f'{r:.3f}' for r in per_round)})")


if __name__ == "__main__":
    main()
