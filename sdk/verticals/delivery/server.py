"""Running the REST API: the listening socket (bound before the models load, so a busy port fails at once),
uvicorn's configuration with our protocol limits, the API-key rules, and ``run``."""

from __future__ import annotations

import logging
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError, option
from ..predictor import Predictor
from .serve import ServeLimits, create_app

logger = logging.getLogger("verticals.serve")


def uvicorn_config(app: Any, limits: ServeLimits | None = None, **kwargs: Any) -> Any:
    """The uvicorn configuration ``verticals serve`` runs ``app`` with: idle keep-alive connections closed
    after 5 s, a request's headers due within ``header_timeout`` (their size is bounded by h11: a 1 MB
    header block is answered 400), at most ``max_connections`` connections and requests at once, requests
    in flight given ``drain_timeout`` to finish on shutdown, and the app's own access log (with request
    ids) instead of uvicorn's."""
    import uvicorn

    from .asgi import header_timeout_protocol

    limits = limits or ServeLimits()
    return uvicorn.Config(app, http=header_timeout_protocol(limits.header_timeout), timeout_keep_alive=5,
                          limit_concurrency=limits.max_connections, timeout_graceful_shutdown=limits.drain_timeout,
                          access_log=False, **kwargs)


def listen_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket for uvicorn, or one line saying why not (a busy port, a bad address).

    The protocol must be ``IPPROTO_TCP``, not 0: asyncio sets ``TCP_NODELAY`` on accepted connections only for
    sockets whose ``proto`` says TCP, and without it Nagle's algorithm meets the client's delayed ACK and every
    request on a kept-alive connection waits ~40 ms."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        # listen now: with SO_REUSEADDR two servers racing for a port may both bind, and only listen() tells
        # the loser (inside uvicorn, as a traceback); the backlog is uvicorn's default, which it sets again
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another "
                          f"{option('port')} or {option('host')}") from None
    return sock


def run(bundles: str | Path | Predictor | Sequence[str | Path | Predictor], host: str = "127.0.0.1", port: int = 8000,
        limits: ServeLimits | None = None, log_level: str = "info", engine: str = "auto",
        overrides: Sequence[str] | None = None, *, api_key: str | None = None, cors_origins: Sequence[str] = (),
        show_data_info: bool = False, feedback_db: str | Path | None = None, log_predictions: bool = False,
        log_retention: str = "30d", page: bool = True, log_format: str = "text", workers: int | str = 1) -> None:
    """Serve bundles (paths or loaded predictors, one or a list) with uvicorn until interrupted: ``verticals.serve``,
    as ``verticals serve`` does (``create_app`` says what the options do). Logs go to stderr as text or, with
    ``log_format="json"``, one JSON object per line. SIGTERM (or Ctrl-C) drains, then returns.
    ``workers``: processes answering on the port (:mod:`verticals.delivery.workers`); they load bundles from
    their paths, so a loaded predictor stands for the bundle directory it was loaded from. ``"auto"`` (the
    CLI's default): one per core, at most 4, and 1 when a bundle is given as a loaded predictor (served as
    it is). The default here stays 1: workers are spawned processes, which import the calling script again
    (it then needs an ``if __name__ == "__main__":`` guard)."""
    try:
        import uvicorn  # noqa: F401
    except ImportError:
        raise ConfigError("serving needs uvicorn: pip install 'verticals[serve]'") from None
    limits = limits or ServeLimits()
    if isinstance(bundles, (str, Path, Predictor)):
        bundles = [bundles]
    workers = resolve_workers(workers, bundles)
    if workers > 1:  # each worker process loads its own copy from the bundle's directory
        bundles = [b.path if isinstance(b, Predictor) else b for b in bundles]
    options: dict[str, Any] = dict(bundles=list(bundles), limits=limits, log_level=log_level, engine=engine,
                   overrides=list(overrides or []), api_key=api_key, cors_origins=list(cors_origins),
                   show_data_info=show_data_info, feedback_db=feedback_db, log_predictions=log_predictions,
                   log_retention=log_retention, page=page, log_format=log_format)
    # Bind before loading the models: a busy port fails in a second, with one line, not after loading.
    with listen_socket(host, port) as sock:
        if workers == 1:
            serve_on(sock, **options)
            return
        from ..bundles.bundle import verify
        from .monitoring import configure_logging
        from .workers import run_workers

        for bundle in bundles:  # a bad bundle: one line from here, not one from each worker
            verify(Path(bundle))
        if feedback_db is not None:  # created (or refused) once here: workers racing to create it could not
            from ..operate.feedback_store import open_store  # agree on one file; a URL is a database, not a path

            open_store(feedback_db, retention=log_retention).close()
        configure_logging(log_format, log_level)
        logger.info("serving %d bundle(s) on http://%s:%d with %d workers", len(bundles), host,
                    sock.getsockname()[1], workers)
        run_workers(sock, workers, serve_on, options, drain_timeout=limits.drain_timeout, metrics=limits.metrics)


def resolve_workers(workers: int | str, bundles: Sequence[str | Path | Predictor]) -> int:
    """The number of worker processes ``workers`` (an integer >= 1 or ``"auto"``) stands for."""
    from .workers import auto_workers

    if workers == "auto":
        return 1 if any(isinstance(b, Predictor) for b in bundles) else auto_workers()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"{option('workers', workers)} is out of range; expected 'auto' or an integer >= 1")
    return workers


def serve_on(sock: socket.socket, bundles: Sequence[str | Path], limits: ServeLimits, log_level: str = "info",
             log_format: str = "text", metrics_dir: str | None = None, **options: Any) -> None:
    """Load the bundles and serve them on the bound ``sock`` (one process; ``run`` says what the options do).
    ``metrics_dir``: a worker's, where the server's workers share their metrics (:mod:`.shared_metrics`)."""
    from .monitoring import configure_logging, serve_draining

    configure_logging(log_format, log_level)  # before loading: its notes and warnings in the same format
    app = create_app(bundles, limits, **options)
    if metrics_dir is not None and app.state.monitor is not None:
        app.state.monitor.share(metrics_dir)
    host, port = sock.getsockname()[:2]
    logger.info("serving %d bundle(s) on http://%s:%d (%sdocs at /docs)", len(bundles), host, port,
                "page at /, " if options.get("page", True) else "")
    serve_draining(uvicorn_config(app, limits, log_level=log_level, log_config=None), sock, app.state.readiness)
