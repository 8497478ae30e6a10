"""The per-model queue of ``verticals serve``: one forward pass at a time, optionally batching requests."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

logger = logging.getLogger("verticals.serve")
# observe(queue waits in seconds, one per request in the pass; forward-pass seconds; records in the pass)
Observer = Callable[[list[float], float, int], None]


class Batcher:
    """Serialises a model's forward passes; with ``batching``, requests that arrive while one pass runs
    are predicted together in the next (no added wait at low load, far fewer passes under load).
    ``observe`` is told each pass's queue waits, duration and size (the server's metrics)."""

    def __init__(self, predict: Any, max_records: int, batching: bool = True, observe: Observer | None = None) -> None:
        self._predict = predict
        self._observe = observe
        self._max_records = max_records if batching else 0
        self._queue: queue.Queue[tuple[list[Any], Future[list[Any]], float] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="verticals-batcher", daemon=True)
        self._thread.start()

    def __call__(self, records: list[Any]) -> list[Any]:
        return self.submit(records).result()

    def submit(self, records: list[Any]) -> Future[list[Any]]:
        """Queue ``records`` for a pass; the future holds their predictions (an event loop awaits it through
        ``asyncio.wrap_future`` instead of parking a thread on it)."""
        future: Future[list[Any]] = Future()
        self._queue.put((records, future, time.perf_counter()))
        return future

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        carried: tuple[list[Any], Future[list[Any]], float] | None = None  # did not fit the previous pass
        while (first := carried or self._queue.get()) is not None:
            items, size, stop, carried = [first], len(first[0]), False, None
            # Adaptive: only what queued while the previous pass ran joins this one (no added wait), up to
            # max_records in all; a request that would pass the bound opens the next pass instead.
            while size < self._max_records:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                if size + len(item[0]) > self._max_records:
                    carried = item
                    break
                items.append(item)
                size += len(item[0])
            started = time.perf_counter()
            try:
                predictions = self._predict([r for records, _, _ in items for r in records])
            except Exception as exc:  # noqa: BLE001 - handed to every waiting request
                for _, future, _ in items:
                    future.set_exception(exc)
            else:
                elapsed = time.perf_counter() - started
                start = 0
                for records, future, _ in items:
                    future.set_result(predictions[start:start + len(records)])
                    start += len(records)
                if self._observe is not None:  # after the answers: metrics never delay nor block a request
                    try:
                        self._observe([started - queued for _, _, queued in items], elapsed, size)
                    except Exception:  # noqa: BLE001 - a metrics bug must not stop the model's queue
                        logger.exception("metrics observer failed")
            if stop:
                return
