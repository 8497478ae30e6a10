"""``verticals serve --workers N``: N processes answering on one port.

The parent binds the listening socket (so a busy port still fails at once, and its ``IPPROTO_TCP`` protocol
keeps ``TCP_NODELAY`` on every accepted connection) and hands it to N worker processes started with
``spawn`` (never ``fork``: torch and ONNX Runtime thread pools do not survive a fork). Every worker loads the
bundles itself and accepts from the shared socket, so the kernel spreads connections over the workers; each
runs ``cores / N`` intra-op threads, so N workers together use the cores once, not N times.

What one process cannot do in parallel (HTTP parsing, validation, JSON) then overlaps with another
process's forward pass. Each worker keeps its own queue and warm-up: ``/ready`` describes the worker that
took the connection (``/health`` names its ``pid``), while ``/metrics``, whichever worker takes the scrape,
answers for all of them (:mod:`.shared_metrics`). SIGTERM or SIGINT on the parent drains every worker, then
the parent exits 0; a worker that dies while serving is replaced, one that fails while starting stops the
server with its error; a worker whose parent was killed (SIGKILL) drains and exits rather than serve on.

``--workers auto`` (the CLI's default, :func:`auto_workers`): one worker per core, at most ``AUTO_MAX``.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from typing import Any

from ..errors import ConfigError, VerticalsError
from ..runtime import available_cores

logger = logging.getLogger("verticals.serve")
STARTUP_GRACE = 120.0  # seconds: a worker that exits sooner failed to start (bad bundle): not restarted
# Why at most 4: a second worker gains because its event loop (HTTP, validation, JSON: about a third of the
# CPU in the README's profile) overlaps the other's forward pass; with 4 that part is covered several times
# over, while each more worker costs a copy of the models in memory and leaves a lone request's forward pass
# fewer threads (cores / N). Measured up to 2 cores only (README "Serving performance"): on larger machines
# measure with benchmarks/serve_load.py and pass --workers N.
AUTO_MAX = 4


def auto_workers(cores: int | None = None) -> int:
    """``--workers auto``: one worker per core, at most ``AUTO_MAX`` (1 on one core)."""
    return max(1, min(cores or available_cores(), AUTO_MAX))


def worker_threads(workers: int, cores: int | None = None) -> int:
    """Intra-op threads per worker: the cores shared out, at least one each."""
    return max(1, (cores or available_cores()) // workers)


def _worker(sock: socket.socket, threads: int, serve: Any, kwargs: dict[str, Any]) -> None:
    """One worker process: cap its threads, then serve on the inherited socket like a single server."""
    from ..runtime import limit_threads

    limit_threads(threads)
    threading.Thread(target=_drain_if_orphaned, args=(os.getppid(),), name="verticals-parent-watch",
                     daemon=True).start()
    try:
        serve(sock, **kwargs)
    except VerticalsError as exc:  # the CLI's one line, from the worker that met it: a worker is the CLI's own
        # process (its entry point), so it answers as the CLI does, whatever the logging configuration
        sys.stderr.write(f"verticals: error: {exc}\n")
        sys.stderr.flush()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        pass  # the parent's SIGINT reached the whole process group: the parent drains the workers


def _drain_if_orphaned(parent: int) -> None:
    """A parent killed without draining its workers (SIGKILL, OOM) would leave them serving the port for ever:
    a worker whose parent is gone drains and exits as on SIGTERM."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)


def run_workers(sock: socket.socket, workers: int, serve: Any, kwargs: dict[str, Any],
                drain_timeout: float, metrics: bool = False) -> None:
    """Serve with ``workers`` processes on ``sock`` until SIGTERM or SIGINT, then drain them and return.

    ``serve(sock, **kwargs)`` is what each worker runs (it must be importable: workers are spawned); with
    ``metrics`` it is also given ``metrics_dir``, the directory where the workers share their metrics."""
    from .shared_metrics import shared_directory

    with shared_directory() if metrics else contextlib.nullcontext() as directory:
        if directory is not None:
            kwargs = dict(kwargs, metrics_dir=str(directory))
        _supervise(sock, workers, serve, kwargs, drain_timeout, directory)


def _supervise(sock: socket.socket, workers: int, serve: Any, kwargs: dict[str, Any], drain_timeout: float,
               directory: Any) -> None:
    from .shared_metrics import worker_gone

    context = multiprocessing.get_context("spawn")
    threads = worker_threads(workers)
    stopping = threading.Event()

    def start(index: int) -> Any:
        process = context.Process(target=_worker, args=(sock, threads, serve, kwargs),
                                  name=f"verticals-worker-{index}", daemon=False)
        process.start()
        return process, time.monotonic()

    def stop(signum: int, frame: Any) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    processes = [start(i) for i in range(workers)]
    logger.info("%d workers, %d intra-op thread(s) each", workers, threads)
    failed: int | None = None
    try:
        while not stopping.wait(0.5):
            for index, (process, started) in enumerate(processes):
                if process.is_alive():
                    continue
                if time.monotonic() - started < STARTUP_GRACE and (process.exitcode or 0) > 0:
                    failed = process.exitcode
                    stopping.set()
                    break
                logger.warning("worker %d (pid %s) exited with code %s; starting another", index, process.pid,
                               process.exitcode)
                if directory is not None:
                    worker_gone(directory, process.pid)
                processes[index] = start(index)
    finally:
        for process, _ in processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: the worker drains its requests in flight
        deadline = time.monotonic() + drain_timeout + 10
        for process, _ in processes:
            process.join(max(0.1, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join(5)
            if directory is not None:
                worker_gone(directory, process.pid)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if failed is not None:
        raise ConfigError(f"a serving worker exited with code {failed} while starting (its error is above)")
