"""One ``/metrics`` for all the worker processes of ``verticals serve --workers N``.

prometheus_client's multiprocess mode: every worker writes its counters, histograms and gauges to mmap'ed
files in one directory, ``PROMETHEUS_MULTIPROC_DIR``, which must be set before the worker imports
prometheus_client (the parent sets it in the environment its spawned workers inherit), and whichever worker
takes a scrape reads them all (``MultiProcessCollector``). The files of a worker that died stay, so its
counters and histograms stay counted; the parent removes its ``live*`` gauges (``mark_process_dead``), so
the requests it had in flight do not linger. How each gauge combines over workers (``multiprocess_mode``):

- ``verticals_requests_in_flight``: ``livesum``, the server's requests in flight are those of its live workers;
- ``verticals_ready``: ``livemin``, 1 only when every live worker answers ``/ready`` with 200 (a connection
  may land on any worker, so one still warming means some probes get 503), each worker setting its own
  gauge when its readiness changes;
- ``verticals_model_info``, ``verticals_drift_investigate_threshold``: ``livemax``, constants every worker
  sets alike, shown as one series as with one process (``all``/``liveall`` would add a ``pid`` label).

Drift: the PSI gauges come from a custom collector, which multiprocess mode does not merge. So each worker
writes its drift window's tallies (per model: records, label counts, score histogram counts) to
``verticals-drift-PARENT-PID.json`` in the same directory, atomically (a temporary file, then a rename), at
most once a second and from its own thread, never on the request path; the scraping worker adds the files of
its server's other workers (same ``PARENT``) to its own window. The merged window is the last ``window``
records of each worker; the parent removes a worker's file when that worker exits.

The directory: the parent creates it (``tempfile.mkdtemp``) and removes it when the server stops. A
``PROMETHEUS_MULTIPROC_DIR`` the user set is used as it is and never removed (only our workers' drift files
in it are); prometheus_client's rule then applies: empty it between runs, else earlier counts add up.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..errors import ConfigError

ENV = "PROMETHEUS_MULTIPROC_DIR"
_LEGACY_ENV = "prometheus_multiproc_dir"  # prometheus_client still honours the old lower-case name
DRIFT_INTERVAL = 1.0  # seconds between two writes of a worker's drift tallies (drift moves over minutes)
logger = logging.getLogger("verticals.serve")

Tallies = dict[str, dict[str, Any]]  # model name -> {"records", "labels", and "scores", "scored" when scored}


@contextlib.contextmanager
def shared_directory() -> Iterator[Path]:
    """The parent's side: the directory the workers share their metrics in, set in the environment they
    inherit for as long as the server runs; removed afterwards only if it was created here."""
    given = os.environ.get(ENV) or os.environ.get(_LEGACY_ENV)
    if given:
        path = Path(given)
        if not path.is_dir():
            raise ConfigError(f"{ENV}={given} is not a directory: create it, or unset {ENV} (the server then "
                              f"uses a temporary one)")
        if any(path.glob("*.db")):
            logger.warning("%s=%s holds metrics of an earlier run: their counts add to this server's (empty it "
                           "between runs)", ENV, given)
        yield path
        return
    path = Path(tempfile.mkdtemp(prefix="verticals-metrics-"))
    os.environ[ENV] = str(path)
    try:
        yield path
    finally:
        if os.environ.get(ENV) == str(path):
            del os.environ[ENV]
        shutil.rmtree(path, ignore_errors=True)


def _drift_file(directory: Path, parent: int, pid: int) -> Path:
    return directory / f"verticals-drift-{parent}-{pid}.json"


def worker_gone(directory: Path, pid: int | None) -> None:
    """The parent's bookkeeping for a worker that exited: its live gauges and its drift window leave
    ``/metrics`` (its counters stay counted)."""
    if pid is None:
        return
    try:
        from prometheus_client import multiprocess
    except ImportError:  # the workers could not have started with metrics on
        return
    multiprocess.mark_process_dead(pid, str(directory))
    _drift_file(directory, os.getpid(), pid).unlink(missing_ok=True)


def check_multiprocess_mode() -> None:
    """A worker's check that prometheus_client writes to the shared directory (it chose so when imported)."""
    from prometheus_client import values

    if not getattr(values.ValueClass, "_multiprocess", False):
        raise RuntimeError(f"prometheus_client was imported before {ENV} was set: metrics would not be shared")


def exposition(directory: Path, drift: Any) -> Any:
    """A registry for one scrape: every worker's metrics from their files, and the merged drift gauges."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    registry.register(drift)
    return registry


class DriftShare:
    """A worker's side of the drift window: writes ``tallies()`` at most once a second when they changed,
    reads the other workers' of the same server."""

    def __init__(self, directory: Path, tallies: Callable[[], Tallies]) -> None:
        self.directory, self.tallies = directory, tallies
        self.parent, self.pid = os.getppid(), os.getpid()
        self.path = _drift_file(directory, self.parent, self.pid)
        self._written: Tallies | None = None
        threading.Thread(target=self._loop, name="verticals-drift-share", daemon=True).start()

    def _loop(self) -> None:
        stop = threading.Event()  # never set: a daemon thread that ends with the worker
        while not stop.wait(DRIFT_INTERVAL):
            try:
                self.write()
            except Exception:  # noqa: BLE001 - a full disk must not end the thread; the next second retries
                logger.warning("could not share this worker's drift window", exc_info=True)

    def write(self) -> None:
        tallies = self.tallies()
        if tallies == self._written:
            return
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        temporary.write_text(json.dumps(tallies), encoding="utf-8")
        os.replace(temporary, self.path)  # a reader sees the old file or the new one, never half of one
        self._written = tallies

    def others(self) -> list[Tallies]:
        """The tallies the server's other workers last wrote (a file gone meanwhile is skipped)."""
        found = []
        for path in self.directory.glob(f"verticals-drift-{self.parent}-*.json"):
            if path != self.path:
                with contextlib.suppress(OSError, ValueError):
                    found.append(json.loads(path.read_text(encoding="utf-8")))
        return found

