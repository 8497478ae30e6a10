"""What ``verticals serve`` tells operations: Prometheus ``/metrics``, ``/ready``, request ids, JSON logs.

Metrics (one ``CollectorRegistry`` per app, so several apps in one process never collide; with ``--workers``,
one scrape answers for all the workers: :mod:`.shared_metrics`), every one labelled by ``model`` (a name
not loaded is counted as ``(unknown)``, so no request can add series):

- ``verticals_requests_total{model,code}``: predict requests by HTTP status (200, 400, 401, 404, 408,
  413, 422, 500); ``verticals_requests_in_flight``; ``verticals_request_duration_seconds`` (histogram).
- ``verticals_records_total``: records received; ``verticals_record_errors_total{reason}``: records
  answered with their own error: ``invalid`` (refused before the model), ``refused`` (by the model, e.g. an
  unknown user), ``internal``; ``verticals_predictions_total``: records predicted.
- ``verticals_queue_wait_seconds`` (time in the model's queue), ``verticals_forward_seconds`` (one forward
  pass), ``verticals_batch_records`` (records per pass): histograms.
- ``verticals_decisions_total{label}``: decisions per label (entities per type for token tasks);
  ``verticals_out_of_scope_total``, ``verticals_fallback_total`` (customer service), ``verticals_flagged_total``
  (fraud), ``verticals_low_confidence_total`` (decisions whose probability is below ``low_confidence``,
  0.5 by default: the chosen label is less likely than all the others together), each only
  for models whose predictions carry it. Rates are PromQL ratios, e.g.
  ``rate(verticals_flagged_total[5m]) / rate(verticals_predictions_total[5m])``.
- ``verticals_drift_psi{statistic="label"|"score"}``: PSI of the last ``window`` records against the
  bundle's validation profile (:mod:`verticals.metrics.drift`: why PSI, threshold 0.2 "investigate",
  ``verticals_drift_investigate_threshold``), ``verticals_drift_psi_expected`` (its sampling-noise floor),
  ``verticals_drift_window_records``; shown once the window holds ``MIN_WINDOW`` records, never for a
  bundle without a profile (trained before profiles were kept: retrain to get them).
- ``verticals_model_info{task,engine,digest}`` (1), ``verticals_ready`` (0/1).

``/metrics`` and ``/ready`` are open like ``/health`` (probes and Prometheus scrape without the API key);
``/metrics`` holds counts and label names, never inputs.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import signal
import socket
import threading
import time
import uuid
from collections import Counter as Tally
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..metrics.drift import INVESTIGATE, NO_ENTITY, decision_fields, histogram, read_outcome

WINDOW = 500  # records: ~ the traffic of a few minutes on a busy model, and enough for 10 score bins
MIN_WINDOW = 100  # fewer records: PSI is mostly noise, so the gauges are not shown yet
LOW_CONFIDENCE = 0.5
UNKNOWN_MODEL = "(unknown)"
OTHER_LABEL = "(other)"
_EXTRA_LABELS = 32  # labels not in the bundle (e.g. an out-of-scope label) that get their own series
_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")  # a client's id is echoed only if this safe
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("verticals_request_id", default="-")
access_logger = logging.getLogger("verticals.access")
logger = logging.getLogger("verticals.serve")


# ---- logging ----------------------------------------------------------------------------------------------
class RequestIdFilter(logging.Filter):
    """Puts the current request's id on every log record (``-`` outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line (``--log-format json``): time, level, logger, message, request id, the
    access fields of access lines, and the exception when there is one."""

    converter = time.gmtime  # the time is written as UTC ("Z")

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage(),
            "request_id": getattr(record, "request_id", request_id.get())}
        entry.update(getattr(record, "http", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def log_config(log_format: str = "text", level: str = "info") -> dict[str, Any]:
    """The ``logging.config.dictConfig`` of the server: uvicorn's and Verticals' loggers to stderr, as text
    or JSON lines; uvicorn's own access log is replaced by ours (it has the request id)."""
    if log_format not in ("text", "json"):
        from ..errors import ConfigError, option

        raise ConfigError(f"{option('log_format')} {log_format!r}: expected 'text' or 'json'")
    formatter = {"()": JsonFormatter} if log_format == "json" else {
        "format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    # the stderr of the moment (console._Stderr), not the one at configuration time: pytest's capture, or a
    # CLI run again in-process, replaces sys.stderr
    handler = {"class": "verticals.console._Stderr", "formatter": "default", "filters": ["request_id"]}
    level = level.upper()
    return {"version": 1, "disable_existing_loggers": False, "formatters": {"default": formatter},
            "filters": {"request_id": {"()": RequestIdFilter}}, "handlers": {"default": handler},
            "loggers": {"uvicorn": {"handlers": ["default"], "level": level, "propagate": False},
                        "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
                        "verticals": {"handlers": ["default"], "level": level, "propagate": False},
                        "py.warnings": {"handlers": ["default"], "level": "WARNING", "propagate": False}}}


def configure_logging(log_format: str = "text", level: str = "info") -> None:
    """Apply :func:`log_config` (the server process only; the library never configures logging)."""
    import logging.config

    logging.config.dictConfig(log_config(log_format, level))
    if log_format == "json":
        logging.captureWarnings(True)  # a warnings.warn line is JSON too


# ---- readiness --------------------------------------------------------------------------------------------
@dataclass
class Readiness:
    """``/ready``: 503 until every model answered a warm-up pass, and again once a shutdown began.
    ``on_change(ready)`` is called whenever ``warmed`` or ``draining`` is set."""

    warmed: bool = False
    draining: bool = False
    on_change: Callable[[bool], None] | None = field(default=None, repr=False, compare=False)

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        # with workers, a scrape reads every worker's verticals_ready, so each sets its own as it changes
        callback = self.__dict__.get("on_change")
        if callback is not None and name in ("warmed", "draining"):
            callback(self.ready)

    @property
    def ready(self) -> bool:
        return self.warmed and not self.draining

    def status(self) -> str:
        return "draining" if self.draining else "ready" if self.warmed else "warming"


# ---- metrics ----------------------------------------------------------------------------------------------
class _ModelState:
    """One model's label vocabulary, decision window and profile."""

    def __init__(self, labels: set[str], profile: dict[str, Any] | None, window: int) -> None:
        self.labels, self.profile = labels, profile
        self.limit = len(labels) + _EXTRA_LABELS
        self.window: deque[list[tuple[str, float | None]]] = deque(maxlen=window)
        self.lock = threading.Lock()

    def label(self, value: str) -> str:
        if value in self.labels:
            return value
        with self.lock:  # the first labels outside the bundle's set get series; then one catch-all
            if len(self.labels) < self.limit:
                self.labels.add(value)
                return value
        return OTHER_LABEL


class Monitor:
    """The Prometheus metrics of one app. ``models``: name -> predictor; ``digests``: name -> bundle digest."""

    def __init__(self, models: Mapping[str, Any], digests: Mapping[str, str | None], *, window: int = WINDOW,
                 low_confidence: float = LOW_CONFIDENCE) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.window_size, self.low_confidence = window, low_confidence
        self.names = set(models)
        m, r = ["model"], self.registry
        self.requests = Counter("verticals_requests", "Predict requests by HTTP status.", ["model", "code"], registry=r)
        # multiprocess_mode: how `--workers` combine (delivery/shared_metrics.py); one process ignores it
        self.in_flight = Gauge("verticals_requests_in_flight", "Predict requests being answered.", m, registry=r,
                               multiprocess_mode="livesum")
        self.duration = Histogram("verticals_request_duration_seconds", "Predict request time, body to answer.",
                                  m, registry=r)
        self.records = Counter("verticals_records", "Records received in predict requests.", m, registry=r)
        self.record_errors = Counter("verticals_record_errors", "Records answered with their own error, by reason "
                                     "(invalid, refused by the model, internal).", ["model", "reason"], registry=r)
        self.predictions = Counter("verticals_predictions", "Records predicted.", m, registry=r)
        fast = (.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30)
        self.queue_wait = Histogram("verticals_queue_wait_seconds", "Time a request waited in the model's queue.",
                                    m, buckets=fast, registry=r)
        self.forward = Histogram("verticals_forward_seconds", "Duration of one forward pass.", m, buckets=fast,
                                 registry=r)
        self.batch = Histogram("verticals_batch_records", "Records per forward pass.", m,
                               buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512), registry=r)
        self.decisions = Counter("verticals_decisions", "Decisions per label (entities per type for token tasks).",
                                 ["model", "label"], registry=r)
        flags = {"out_of_scope": "Predictions out of scope.", "fallback": "Predictions decided by the fallback.",
                 "flagged": "Predictions flagged (score at or above the decision threshold).",
                 "low_confidence": f"Decisions whose probability is below {low_confidence:g}."}
        self.flags = {kind: Counter(f"verticals_{kind}", text, m, registry=r) for kind, text in flags.items()}
        info = Gauge("verticals_model_info", "Loaded models (value 1).", ["model", "task", "engine", "digest"],
                     registry=r, multiprocess_mode="livemax")
        self.ready = Gauge("verticals_ready", "1 when /ready answers 200.", registry=r, multiprocess_mode="livemin")
        Gauge("verticals_drift_investigate_threshold", "PSI above which drift is worth investigating.",
              registry=r, multiprocess_mode="livemax").set(INVESTIGATE)
        self.states: dict[str, _ModelState] = {}
        self.kinds: dict[str, tuple[str, ...]] = {}
        for name, predictor in models.items():
            fields = decision_fields(predictor.task.Prediction)
            profile = getattr(predictor.info, "profile", None) if fields else None
            labels = set(predictor.info.labels) | {label[2:] for label in predictor.info.labels
                                                   if label[:2] in ("B-", "I-")}
            if "entities" in fields:
                labels.add(NO_ENTITY)
            self.states[name] = _ModelState(labels | set((profile or {}).get("labels", {})), profile, window)
            # which counters apply: read_outcome's rules, from the fields the task's Prediction declares
            flagged = "flagged" in fields or {"threshold", "score"} <= fields
            confident = bool(fields & {"confidence", "entities"}) or ("score" in fields and "threshold" not in fields)
            self.kinds[name] = tuple(k for k in ("out_of_scope", "fallback") if k in fields) + (
                ("flagged",) if flagged else ()) + (("low_confidence",) if confident else ())
            for kind in self.kinds[name]:
                self.flags[kind].labels(name)  # shown at 0 from the start, so rate() works at once
            for metric in (self.records, self.predictions, self.in_flight):
                metric.labels(name)
            info.labels(name, predictor.task_name, predictor.engine, digests.get(name) or "").set(1)
            if fields and profile is None:
                logger.info("model %s: its bundle has no validation profile (trained before Verticals kept one): "
                            "served without drift gauges; retrain to get them", name)
        from .drift_gauges import DriftCollector

        self.drift_collector = DriftCollector(self)
        self.registry.register(self.drift_collector)
        self.shared: Any = None  # a DriftShare once share() was called

    def share(self, directory: str | Path) -> None:
        """Answer ``/metrics`` for all the workers sharing ``directory`` (:mod:`.shared_metrics`); this
        process's metrics must already be written there (``PROMETHEUS_MULTIPROC_DIR`` set before import)."""
        from .shared_metrics import DriftShare, check_multiprocess_mode

        check_multiprocess_mode()
        self.shared = DriftShare(Path(directory), lambda: {name: self.tallies(name) for name in self.states})

    def exposition(self) -> Any:
        """The registry a scrape reads: this app's, or with :meth:`share` every worker's."""
        if self.shared is None:
            return self.registry
        from .shared_metrics import exposition

        return exposition(self.shared.directory, self.drift_collector)

    def model(self, name: str) -> str:
        return name if name in self.names else UNKNOWN_MODEL

    def batch_observer(self, name: str) -> Any:
        """The :class:`~verticals.delivery.batcher.Batcher` callback feeding the queue/forward/batch histograms."""
        wait, forward, batch = self.queue_wait.labels(name), self.forward.labels(name), self.batch.labels(name)

        def observe(waits: list[float], seconds: float, records: int) -> None:
            for value in waits:
                wait.observe(value)
            forward.observe(seconds)
            batch.observe(records)
        return observe

    def observe_records(self, name: str, received: int, errors: Mapping[str, int], predictions: list[Any]) -> None:
        """One predict request's records: how many came, which failed why, and what was decided."""
        self.records.labels(name).inc(received)
        for reason, count in errors.items():
            if count:
                self.record_errors.labels(name, reason).inc(count)
        if not predictions:
            return
        self.predictions.labels(name).inc(len(predictions))
        state, kinds = self.states[name], self.kinds[name]
        labels: Tally[str] = Tally()
        flags: Tally[str] = Tally()
        window = []
        for prediction in predictions:
            outcome = read_outcome(prediction)
            for label, _ in outcome.decisions:
                labels[state.label(label)] += 1
            for kind in ("out_of_scope", "fallback", "flagged"):
                flags[kind] += bool(getattr(outcome, kind))
            flags["low_confidence"] += sum(c < self.low_confidence for c in outcome.confidences)
            window.append(outcome.decisions)
        for label, count in labels.items():
            self.decisions.labels(name, label).inc(count)
        for kind in kinds:
            if flags[kind]:
                self.flags[kind].labels(name).inc(flags[kind])
        if state.profile is not None:
            with state.lock:
                state.window.extend(window)

    def tallies(self, name: str) -> dict[str, Any]:
        """What drift needs of this process's window: ``records``, decisions per label, and with a score
        profile the window's ``scores`` histogram on its bins and how many were ``scored``."""
        state = self.states[name]
        with state.lock:
            window = list(state.window)
        decisions = [d for record in window for d in record]
        result: dict[str, Any] = {"records": len(window), "labels": dict(Tally(label for label, _ in decisions))}
        score = (state.profile or {}).get("score")
        scores = [s for _, s in decisions if s is not None]
        if score and scores:
            result["scores"], result["scored"] = histogram(scores, score["edges"]), len(scores)
        return result

    def drift(self, name: str, others: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
        """PSI of the current window (with ``others``: other workers' :meth:`tallies` added) against the
        profile: ``records`` in the window, and per statistic (``label``, ``score``) its ``psi`` and
        ``expected`` noise floor; no statistic below ``MIN_WINDOW``."""
        from .drift_gauges import merge, window_drift

        return window_drift(self.states[name].profile, merge([self.tallies(name), *others]), MIN_WINDOW)


# ---- ASGI: request ids, access log, request counts ---------------------------------------------------------
class Observe:
    """Outermost middleware: gives every answer an ``X-Request-ID`` (the client's own when it sent a safe
    one, else a new one), writes the access log line with it, and counts predict requests by status."""

    def __init__(self, app: Any, monitor: Monitor | None = None) -> None:
        self.app, self.monitor = app, monitor

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        rid = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        token = request_id.set(rid)
        path: str = scope.get("path", "")
        model = None
        if self.monitor is not None and scope.get("method") == "POST" and path.startswith("/v1/models/") \
                and path.endswith("/predict"):  # not a CORS preflight
            model = self.monitor.model(path[len("/v1/models/"):-len("/predict")])
            self.monitor.in_flight.labels(model).inc()
        status, started = 500, time.perf_counter()

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            if model is not None and self.monitor is not None:
                self.monitor.in_flight.labels(model).dec()
                self.monitor.requests.labels(model, str(status)).inc()
                self.monitor.duration.labels(model).observe(seconds)
            if access_logger.isEnabledFor(logging.INFO):
                client = scope.get("client") or ("-", 0)
                # the path only: a query string may hold what a client did not mean to have logged
                access_logger.info('%s:%s "%s %s HTTP/%s" %d %.1f ms request_id=%s', client[0], client[1],
                                   scope.get("method"), path, scope.get("http_version"), status, seconds * 1000,
                                   rid, extra={"http": {"client": f"{client[0]}:{client[1]}",
                                                        "method": scope.get("method"), "path": path,
                                                        "status": status, "duration_ms": round(seconds * 1000, 2)}})
            request_id.reset(token)


def add_routes(app: Any, readiness: Readiness, monitor: Monitor | None, names: list[str]) -> None:
    """``GET /ready`` and, with metrics on, ``GET /metrics`` (both open, like ``/health``)."""
    from fastapi.responses import JSONResponse, Response

    # response_model=None: annotations are strings here (postponed), FastAPI must not resolve them
    @app.get("/ready", response_model=None, responses={503: {"description": "Warming up or shutting down"}})
    def ready() -> JSONResponse:
        """200 once every model is loaded and answered a warm-up pass; 503 while warming or draining."""
        return JSONResponse(status_code=200 if readiness.ready else 503,
                            content={"status": readiness.status(), "models": names})

    # HEAD for load balancers' checks (uvicorn sends no body); not in the schema (one operation id per route)
    app.add_api_route("/ready", ready, methods=["HEAD"], include_in_schema=False, response_model=None)

    if monitor is None:
        return

    @app.get("/metrics", response_model=None, response_class=Response)
    def metrics() -> Response:
        """Prometheus text exposition of this server's metrics."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        monitor.ready.set(1 if readiness.ready else 0)
        return Response(generate_latest(monitor.exposition()), media_type=CONTENT_TYPE_LATEST)


def warm_up(readiness: Readiness, passes: Mapping[str, Any]) -> None:
    """Run one warm-up pass per model (``passes``: name -> callable) then mark the server ready. A model
    whose example cannot be predicted is still ready (it served /docs' example at start-up already)."""
    for name, run_pass in passes.items():
        try:
            run_pass()
        except Exception:  # noqa: BLE001 - warm-up is best effort; requests report their own errors
            logger.warning("model %s: warm-up pass failed", name, exc_info=True)
    readiness.warmed = True
    logger.info("ready: %s", ", ".join(passes))


def serve_draining(config: Any, sock: socket.socket, readiness: Readiness) -> None:
    """Run uvicorn on ``sock`` until SIGTERM or SIGINT, then drain: stop accepting connections, let the
    requests in flight finish (at most ``config.timeout_graceful_shutdown`` s), return normally."""
    import uvicorn

    class Server(uvicorn.Server):  # type: ignore[misc]
        def handle_exit(self, sig: int, frame: Any) -> None:
            readiness.draining = True  # /ready answers 503 from the first signal on
            logger.info("shutting down: draining the requests in flight (at most %g s)",
                        config.timeout_graceful_shutdown)
            super().handle_exit(sig, frame)

    # uvicorn re-raises the SIGTERM it drained for once it restored the previous handler; a no-op handler
    # there makes a drained shutdown exit 0 (a requested stop), not 143.
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, lambda *_: None) if main_thread else None
    try:
        Server(config).run(sockets=[sock])
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
