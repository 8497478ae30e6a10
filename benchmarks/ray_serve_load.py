"""``verticals serve`` against ``verticals serve --ray`` on one machine, loopback, one record per request.

Measured with wrk (Debian's ``wrk``: a compiled client, so the load generator takes little of the server's
cores) at 1 and at --connections kept-alive connections, in one run against the same bundle:

  serve             ``verticals serve BUNDLE`` at its defaults
  ray, 1 replica    ``--ray --replicas 1 --replica-cpus CORES``: what Ray's proxy and actor hop cost
  ray, N replicas   ``--ray --replicas N --replica-cpus CORES/N``: the scale-out route, here on one machine

Ray Serve is for more than one machine: on one machine its replicas share the same cores, and each request
crosses Ray's proxy and an actor call on top of the app. The printed ratio says what it costs or gains here.
Without --bundle it trains a throw-away bundle (examples/partner_pack/data, 1 epoch) on --backbone.

    flock /tmp/verticals-bench.lock nice -n 10 python benchmarks/ray_serve_load.py --duration 15
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

QUERY = "I was charged twice for the same order, please refund one payment."
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wait_answering(port: int, model: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    """Until a predict answers 200 (Ray's proxy holds requests while its replicas start, so /ready alone
    would block); the server process must stay alive meanwhile."""
    body = json.dumps({"inputs": [QUERY]}).encode()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with code {process.returncode}")
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/models/{model}/predict", body,
                                         {"content-type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                if answer.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            time.sleep(1)
    raise SystemExit(f"the server on port {port} did not answer within {timeout:g} s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wrk(url: str, connections: int, duration: float, script: Path, close: bool = False) -> dict[str, Any]:
    """``close``: a new connection per request (no keep-alive), which shows what Nagle's algorithm costs a
    server whose connections lack TCP_NODELAY (the delayed-ACK wait only hits kept-alive connections)."""
    header = ["-H", "Connection: close"] if close else []
    seconds = max(1, round(duration))  # wrk takes whole seconds only ("-d7.5s" is a usage error)
    done = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", *header, "-s",
                           str(script), url], capture_output=True, text=True, check=True)
    out = done.stdout

    def latency(pct: str) -> float:
        match = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        return float(match.group(1)) * UNITS[match.group(2)] if match else float("nan")

    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return {"rps": float(rate.group(1)) if rate else 0.0, "p50": latency("50"), "p99": latency("99"),
            "errors": (int(non_2xx.group(1)) if non_2xx else 0) + (sum(map(int, sockets.groups())) if sockets else 0)}


def run_scenario(bundle: Path, extra: list[str], port: int, args: argparse.Namespace, script: Path) -> list[dict]:
    cmd = [sys.executable, "-m", "verticals", "serve", str(bundle), "--host", "127.0.0.1", "--port", str(port),
           *extra]
    env = dict(os.environ, VERTICALS_PLUGINS="")
    process = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_answering(port, bundle.name, process, args.start_timeout)
        url = f"http://127.0.0.1:{port}/v1/models/{bundle.name}/predict"
        wrk(url, args.connections, 3, script)  # warm-up, not counted
        return [wrk(url, 1, args.duration, script), wrk(url, args.connections, args.duration, script),
                wrk(url, 1, args.duration / 2, script, close=True)]
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(120)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, help="bundle to serve (default: train a throw-away one)")
    parser.add_argument("--backbone", default="all-MiniLM-L6-v2", help="backbone of the throw-away bundle, or 'tiny'")
    parser.add_argument("--duration", type=int, default=15, help="seconds of load per measurement")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--start-timeout", type=float, default=600, help="seconds a server may take to answer")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("needs wrk on PATH (apt-get install wrk)")
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        if args.bundle is None:
            sys.path.insert(0, str(Path(__file__).parent))
            from serve_load import build_bundle  # the throw-away bundle of the serve load test

            bundle = build_bundle(Path(tmp), args.backbone)
        else:
            bundle = args.bundle.resolve()
        script = Path(tmp) / "post.lua"
        script.write_text(f'wrk.method = "POST"\nwrk.body = {json.dumps(json.dumps({"inputs": [QUERY]}))}\n'
                          f'wrk.headers["Content-Type"] = "application/json"\n', encoding="utf-8")
        scenarios = [("serve (defaults)", []),
                     ("ray, 1 replica", ["--ray", "--replicas", "1", "--replica-cpus", str(cores)]),
                     (f"ray, {args.replicas} replicas", ["--ray", "--replicas", str(args.replicas),
                                                         "--replica-cpus", f"{cores / args.replicas:g}"])]
        results = {}
        for name, extra in scenarios:
            print(f"measuring {name} ...", file=sys.stderr, flush=True)
            results[name] = run_scenario(bundle, extra, free_port(), args, script)
    print(f"\n{cores} cores, loopback, one record per request, wrk -t1, {args.duration:g} s per cell\n")
    print(f"| server | 1 conn req/s | p50 / p99 ms | {args.connections} conn req/s | p50 / p99 ms | "
          f"1 conn, no keep-alive: p50 ms | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, (one, many, fresh) in results.items():
        print(f"| {name} | {one['rps']:.1f} | {one['p50']:.1f} / {one['p99']:.1f} | {many['rps']:.1f} | "
              f"{many['p50']:.1f} / {many['p99']:.1f} | {fresh['p50']:.1f} | "
              f"{one['errors'] + many['errors'] + fresh['errors']} |")
    base = results["serve (defaults)"][1]["rps"]
    for name in list(results)[1:]:
        print(f"{name} / serve at {args.connections} connections: {results[name][1]['rps'] / base:.2f}x")


if __name__ == "__main__":
    main()
