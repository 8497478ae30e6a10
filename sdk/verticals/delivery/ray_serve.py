"""``verticals serve --ray``: the REST API of ``verticals serve`` as a Ray Serve application, for more than one
machine's worth of traffic (needs ``pip install 'verticals[ray-serve]'``).

Each replica is a Ray actor that builds the very app ``verticals serve`` runs (``serve.create_app``: the same
routes, limits, answers and errors); Ray's HTTP proxy spreads requests over the replicas, restarts a replica
whose process dies, and adds or removes replicas within the autoscaling bounds. Three ways in:

- ``verticals serve BUNDLE --ray --replicas 2`` (or ``--autoscaling min=1,max=4``): starts a local Ray cluster,
  or joins the one at ``--ray-address`` / ``RAY_ADDRESS``, and serves until interrupted (:func:`run`);
- Python: ``serve.run(build(RayServeArgs(bundles=[...]), replicas=2))`` (:func:`build`);
- a Serve config file (``serve deploy``, KubeRay's RayService): ``import_path:
  verticals.delivery.ray_serve:app_builder`` with ``args: {bundles: [...]}`` (:func:`app_builder`), the
  replicas and autoscaling in its ``deployments:`` section, as docs/delivery.md shows.

What changes against ``verticals serve``: the listening socket, keep-alive and header limits are Ray's proxy's;
``/metrics`` counts what the replica that answered saw; a feedback database (SQLite, one file) cannot be
shared by replicas on several machines and is refused. When a replica dies with requests in flight, Ray's
proxy would answer them with a bare 500; :func:`proxy_middlewares` (installed through Ray's
``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH``, which :func:`run` sets for the cluster it starts) answers 503
with ``Retry-After`` instead, so a client knows to send them again (a prediction has no side effect).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import ConfigError
from .schemas import ServeLimits

logger = logging.getLogger("verticals.serve")

EXTRA = "serving on Ray needs Ray Serve: pip install 'verticals[ray-serve]'"
APP_NAME = "verticals"
DEPLOYMENT_NAME = "Verticals"
PROXY_CALLBACK = f"{__name__}:proxy_middlewares"
# Ray reads this in its proxy actor's environment; the cluster must be started with it set.
PROXY_CALLBACK_ENV = "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"
# A replica waits at most this long for its warm-up pass before Ray routes to it (below Ray's 30 s health
# check timeout, so a slow warm-up means slow first answers, not a replica restarted for ever).
WARM_UP_WAIT_S = 20.0
# The shorthands of --autoscaling; any other key is one of Ray's AutoscalingConfig fields, passed as is.
AUTOSCALING_SHORTHANDS = {"min": "min_replicas", "max": "max_replicas", "initial": "initial_replicas",
                          "target": "target_ongoing_requests"}


class RayServeArgs(BaseModel):
    """What every replica serves: the arguments of :func:`app_builder` (a Serve config file's ``args:``)."""

    model_config = ConfigDict(extra="forbid")

    bundles: list[str] = Field(min_length=1, description="Bundle directories, readable on every node (bake them "
                                                         "into the image or mount shared storage).")
    engine: str = Field("auto", description="Where the encoder runs: auto, torch, onnx or onnx-int8.")
    overrides: list[str] = Field(default_factory=list, description="data.KEY=VALUE options, as `serve --set`.")
    limits: ServeLimits = Field(default_factory=ServeLimits, description="Request limits, as `verticals serve`'s.")
    api_key: str | None = Field(None, description="Required on /v1 routes. Default: VERTICALS_API_KEY in the "
                                                  "replicas' environment (preferred: Ray keeps deployment "
                                                  "arguments in its control store).")
    cors_origins: list[str] = Field(default_factory=list, description="Browser origins allowed to call the API.")
    show_data_info: bool = Field(False, description="Name the training data files in /v1/models.")
    page: bool = Field(True, description="Serve the page to try the models at /.")


def require_serve() -> Any:
    """``ray.serve``, or one line naming the extra to install (a Ray without Serve's dependencies included)."""
    try:
        from ray import serve
    except ImportError:
        raise ConfigError(EXTRA) from None
    return serve


class VerticalsReplica:
    """One replica: builds ``verticals serve``'s app in its own process (the models are loaded there, never
    pickled) and tells Ray it is healthy once the app answered its warm-up pass."""

    def __init__(self, args: Mapping[str, Any] | RayServeArgs) -> None:
        self._args = RayServeArgs.model_validate(args)
        self._app: Any = None

    def __serve_build_asgi_app__(self) -> Any:
        from transformers.utils import logging as hf_logging

        from .serve import create_app

        hf_logging.disable_progress_bar()  # a weight-loading bar per replica start is noise in the cluster's log
        args = self._args
        api_key = args.api_key if args.api_key is not None else os.environ.get("VERTICALS_API_KEY")
        self._app = create_app(args.bundles, args.limits, args.engine, args.overrides, api_key=api_key,
                               cors_origins=args.cors_origins, show_data_info=args.show_data_info, page=args.page)
        return self._app

    async def check_health(self) -> None:
        # Ray calls this once before routing to a new replica, then every few seconds: the first call waits
        # for the warm-up pass that the app's lifespan started, so no client waits for a cold model.
        readiness = self._app.state.readiness
        deadline = time.monotonic() + WARM_UP_WAIT_S
        while not readiness.warmed and time.monotonic() < deadline:
            await asyncio.sleep(0.05)


def parse_autoscaling(text: str) -> dict[str, Any]:
    """``min=1,max=4,target=2`` (or Ray's own key names, e.g. ``upscale_delay_s=5``) -> Ray's
    ``autoscaling_config``, checked by Ray's own model; a bad value is one line naming it."""
    serve = require_serve()
    config: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigError(f"--autoscaling: expected KEY=VALUE[,KEY=VALUE...], got '{part}'")
        key = AUTOSCALING_SHORTHANDS.get(key.strip(), key.strip())
        number: Any = value.strip()
        for kind in (int, float):
            try:
                number = kind(number)
                break
            except ValueError:
                continue
        config[key] = number
    if not config:
        raise ConfigError("--autoscaling: give at least max=N (e.g. --autoscaling min=1,max=4)")
    fields = set(serve.config.AutoscalingConfig.model_fields)
    unknown = sorted(set(config) - fields)
    if unknown:
        raise ConfigError(f"--autoscaling: unknown option {', '.join(unknown)}; use min, max, initial, target or "
                          f"one of Ray's: {', '.join(sorted(fields))}")
    try:
        serve.config.AutoscalingConfig(**config)
    except (ValidationError, ValueError) as exc:
        raise ConfigError(f"--autoscaling {text}: {_first_error(exc)}") from None
    return config


def _replica_error(serve: Any, exc: BaseException) -> str:
    """Why the replicas failed: our own error (a bad --set, a bundle a node cannot read) from the tracebacks
    Ray keeps in the deployment's status, else the last line of Ray's."""
    texts = [str(exc)]
    with contextlib.suppress(Exception):  # the status is a better message, not a requirement
        app = serve.status().applications[APP_NAME]
        texts += [app.message, *(d.message for d in app.deployments.values())]
    for text in texts:
        found = re.findall(r"verticals\.errors\.\w+: (.+)", text or "")
        if found:
            return str(found[-1]).strip()
    return _last_line(exc)


def _last_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        where = ".".join(map(str, error.get("loc", ()))) or "value"
        return f"{where}: {error['msg']}"
    return str(exc).splitlines()[0]


def build(args: RayServeArgs, *, replicas: int | None = None, autoscaling: Mapping[str, Any] | None = None,
          replica_cpus: float = 1.0, log_format: str = "text") -> Any:
    """The Ray Serve application (``serve.run`` it): ``replicas`` fixed replicas (default 1), or ``autoscaling``
    (Ray's ``autoscaling_config``) instead; each replica reserves ``replica_cpus`` CPUs, and Ray caps its
    intra-op threads to them (a fraction still gets one thread)."""
    serve = require_serve()
    if autoscaling is not None and replicas is not None:
        raise ConfigError("give either --replicas or --autoscaling, not both")
    if replica_cpus <= 0:
        raise ConfigError(f"--replica-cpus {replica_cpus:g} is out of range; expected a number > 0")
    if replicas is not None and replicas < 1:
        raise ConfigError(f"--replicas {replicas} is out of range; expected an integer >= 1")
    options: dict[str, Any] = {"name": DEPLOYMENT_NAME, "ray_actor_options": {"num_cpus": replica_cpus},
                               # drain like `verticals serve`'s SIGTERM: requests in flight get drain_timeout s
                               "graceful_shutdown_timeout_s": args.limits.drain_timeout,
                               "logging_config": {"encoding": "JSON" if log_format == "json" else "TEXT"}}
    if autoscaling is not None:
        options["autoscaling_config"] = dict(autoscaling)
    else:
        options["num_replicas"] = replicas or 1
    deployment = serve.deployment(serve.ingress()(VerticalsReplica), **options)
    return deployment.bind(args.model_dump())


def app_builder(args: dict[str, Any]) -> Any:
    """The entry point of a Serve config file (``import_path: verticals.delivery.ray_serve:app_builder``):
    ``args`` are :class:`RayServeArgs`' fields; replicas, autoscaling and CPUs come from the file's
    ``deployments:`` section (deployment name ``Verticals``), which Ray applies over these defaults."""
    try:
        parsed = RayServeArgs.model_validate(args)
    except ValidationError as exc:
        raise ConfigError(f"verticals.delivery.ray_serve args: {_first_error(exc)}") from None
    return build(parsed)


class RetryableProxyErrors:
    """ASGI middleware for Ray's HTTP proxy: a request that ended without an answer (its replica died, Ray
    could not reach it) gets a JSON 503 with ``Retry-After: 1`` instead of uvicorn's bare 500, and the
    ``X-Request-ID`` that both Ray's proxy and the app set is sent once."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_once(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started, seen = True, set()
                headers = []
                for name, value in message.get("headers", []):
                    if name.lower() == b"x-request-id":
                        if value in seen:
                            continue
                        seen.add(value)
                    headers.append((name, value))
                message = {**message, "headers": headers}
            await send(message)

        gone = False

        async def watched_receive() -> dict[str, Any]:
            nonlocal gone
            message: dict[str, Any] = await receive()
            gone = gone or message["type"] == "http.disconnect"
            return message

        failure: BaseException | None = None
        try:
            await self.app(scope, watched_receive, send_once)
        except Exception as exc:  # noqa: BLE001 - answered below when nothing was sent yet; else re-raised
            failure = exc
        if started or gone:  # answered, or the client left first (nobody to answer)
            if failure is not None:
                raise failure
            return
        logger.warning("request %s %s ended without an answer (%s); answered 503", scope.get("method"),
                       scope.get("path"), type(failure).__name__ if failure else "its replica stopped")
        body = json.dumps({"detail": "the replica serving this request stopped before it answered; send it "
                                     "again"}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"retry-after", b"1")]
        # Ray's proxy put its request id in the request's headers: the answer names it like every other one
        request_id = next((v for k, v in scope.get("headers", []) if k.lower() == b"x-request-id"), None)
        if request_id is not None:
            headers.append((b"x-request-id", request_id))
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def proxy_middlewares() -> list[Any]:
    """The middlewares Ray's proxy applies (``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH`` names this)."""
    from starlette.middleware import Middleware

    return [Middleware(RetryableProxyErrors)]


def run(args: RayServeArgs, *, host: str = "127.0.0.1", port: int = 8000, replicas: int | None = None,
        autoscaling: Mapping[str, Any] | None = None, replica_cpus: float = 1.0, address: str | None = None,
        log_format: str = "text", ready: threading.Event | None = None, stop: threading.Event | None = None) -> None:
    """Serve on Ray until SIGINT/SIGTERM (or ``stop``): start a local cluster, or join the one at ``address``
    (``RAY_ADDRESS``), put Serve's proxy on ``host:port`` and deploy; ``ready`` is set once every replica is
    healthy. Only what this started is shut down: Serve and Ray of a local cluster, the app on a joined one."""
    serve = require_serve()
    import ray

    app = build(args, replicas=replicas, autoscaling=autoscaling, replica_cpus=replica_cpus, log_format=log_format)
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is None:
        # the proxy actor inherits this through the raylet: the 503 middleware on the cluster we start
        os.environ.setdefault(PROXY_CALLBACK_ENV, PROXY_CALLBACK)
    started_ray = not ray.is_initialized()
    if started_ray:
        try:
            ray.init(address=address, include_dashboard=False, configure_logging=False, log_to_driver=True)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"join the Ray cluster at {address}" if address else "start a local Ray cluster"
            raise ConfigError(f"cannot {where}: {_last_line(exc)}") from None
    stop = stop or threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    try:
        serve.start(http_options={"host": host, "port": port})
        if address is not None and os.environ.get(PROXY_CALLBACK_ENV) != PROXY_CALLBACK:
            logger.warning("the cluster at %s may answer 500 when a replica dies; start it with %s=%s for a "
                           "503 clients can retry", address, PROXY_CALLBACK_ENV, PROXY_CALLBACK)
        try:
            serve.run(app, name=APP_NAME, route_prefix="/")
        except RuntimeError as exc:  # Ray gave up on replicas that failed to start
            raise ConfigError(f"the replicas failed to start: {_replica_error(serve, exc)}") from None
        how = f"autoscaling {dict(autoscaling)}" if autoscaling is not None else f"{replicas or 1} replica(s)"
        logger.info("serving %d bundle(s) on Ray Serve at http://%s:%d with %s", len(args.bundles), host, port, how)
        if ready is not None:
            ready.set()
        while not stop.wait(0.5):
            pass
        logger.info("shutting down: Ray drains the requests in flight (at most %d s)", args.limits.drain_timeout)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if started_ray and address is None:
            serve.shutdown()
        else:
            serve.delete(APP_NAME)
        if started_ray:
            ray.shutdown()


def replica_pids(app_name: str = APP_NAME) -> list[int]:
    """The process ids of the app's live replicas, from Ray's state API (served by the cluster's dashboard,
    which a cluster started by :func:`run` leaves out): what a test or an operator kills."""
    from ray.util.state import list_actors

    actors = list_actors(filters=[("state", "=", "ALIVE")], limit=1000)
    prefix = f"ServeReplica:{app_name}:{DEPLOYMENT_NAME}"
    return sorted(int(a.pid) for a in actors if (a.class_name or "").startswith(prefix) and a.pid)


def bundles_on_this_machine(bundles: Sequence[str]) -> list[str]:
    """Absolute paths of the bundles, each checked here first: a missing or broken one fails in one line now
    rather than as a replica that Ray restarts over and over."""
    from pathlib import Path

    from ..bundles.bundle import read_info, verify

    paths = []
    for bundle in bundles:
        verify(bundle)
        read_info(bundle, verified=True)
        paths.append(str(Path(bundle).resolve()))
    return paths
