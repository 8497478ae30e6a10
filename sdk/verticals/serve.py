"""REST serving of bundles: ``verticals serve BUNDLE [BUNDLE ...]`` (needs ``pip install verticals[serve]``).

Endpoints (OpenAPI docs at ``/docs``):

- ``GET /health``: liveness plus the names of the loaded models.
- ``GET /ready``: 200 once the models are loaded and warmed, 503 while warming up or draining.
- ``GET /metrics``: Prometheus metrics (``delivery.monitoring``: requests, latency, decisions, drift).
- ``GET /v1/models`` and ``GET /v1/models/{name}``: bundle metadata (task, pack, labels, metrics, data).
- ``POST /v1/models/{name}/predict``: ``{"inputs": [record or text, ...]}`` -> one result per input.

Each record is validated and predicted on its own terms, so one bad record (invalid, too long, nested
too deep, holding a lone surrogate, or refused by the model: an unknown user) gets its own error in the
answer while the others are still predicted. Too many records or too large a body answers 413, a body
too slow 408, a body that is not the expected shape 422, malformed JSON 400, a missing API key 401;
none of them is ever a 500. ``_serve_asgi`` holds the limits enforced below the routes.

Every answer carries an ``X-Request-ID`` (the client's own when it sent a safe one), also in the access
log line; SIGTERM stops accepting connections, lets the requests in flight finish (``drain_timeout``) and
exits 0.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import re
import socket
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, Field, SkipValidation, create_model

from ._batcher import Batcher
from ._version import __version__
from .bundle import digest
from .errors import ConfigError, DataError, VerticalsError
from .predictor import Predictor

DEFAULT_MAX_BATCH = 64
DEFAULT_MAX_CHARS = 20_000
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 32  # records are flat objects of texts, numbers and lists: deeper nesting is never a record
_SURROGATE = re.compile("[\ud800-\udfff]")  # only a lone surrogate survives JSON decoding as one
logger = logging.getLogger("verticals.serve")


class ServeLimits(BaseModel):
    """Request limits; each one answered with a clear status code when exceeded."""

    max_batch: int = Field(DEFAULT_MAX_BATCH, ge=1, description="Most records per predict request (else 413).")
    max_chars: int = Field(DEFAULT_MAX_CHARS, ge=1,
                           description="Most characters of text in one record (else that record fails, 422).")
    max_body_bytes: int = Field(DEFAULT_MAX_BODY_BYTES, ge=1, description="Largest request body (else 413).")
    header_timeout: float = Field(10.0, gt=0, description="Seconds a client has to send a request's headers, from "
                                                          "connecting or from the previous answer (else closed).")
    body_timeout: float = Field(30.0, gt=0, description="Seconds a client has to send a request's body once its "
                                                        "headers are in (else 408).")
    max_connections: int = Field(1000, ge=1, description="Most open connections and requests at once (uvicorn's "
                                                         "limit_concurrency; beyond it, 503).")
    # Off by default: on a 2-core CPU, batching gave no throughput and a 2.3x worse p99 (benchmarks/serve_load.py).
    batching: bool = Field(False, description="Run the records of concurrent requests in one forward pass.")
    metrics: bool = Field(True, description="Serve Prometheus /metrics and count what the models decide "
                                            "(--no-metrics turns it off).")
    drift_window: int = Field(500, ge=1, description="Recent records per model compared with the bundle's "
                                                      "validation profile for the drift gauges.")
    low_confidence: float = Field(0.5, ge=0, le=1, description="A decision whose probability is below this "
                                                               "counts as low-confidence.")
    drain_timeout: int = Field(30, ge=1, description="Seconds SIGTERM waits for the requests in flight "
                                                         "before closing their connections.")


class ModelInfo(BaseModel):
    """What ``/v1/models`` says about one loaded bundle."""

    name: str = Field(description="Name used in the predict URL (the bundle directory's name).")
    task: str
    task_type: str
    pack: str | None
    pack_version: str | None
    sdk_version: str
    labels: list[str]
    metrics: dict[str, dict[str, float]]
    data: dict[str, Any] = Field(description="Fingerprints (sha256, record count) of the training/validation/test "
                                             "data; the file names only when the server runs with --show-data-info.")
    created_at: str
    digest: str | None = Field(description="sha256 of the bundle's manifest.json, as `verticals inspect` prints "
                                           "it (null for a predictor served from memory).")
    engine: str = Field(description="Where the encoder runs: torch, onnx or onnx-int8.")
    predict_url: str


class Health(BaseModel):
    status: str = "ok"
    sdk_version: str
    models: list[str]


class RecordError(BaseModel):
    status: int = Field(description="HTTP-style status of this record alone (422: invalid input).")
    message: str
    field: str | None = None


def _require_fastapi() -> Any:
    try:
        import fastapi
    except ImportError:
        raise ConfigError("serving needs FastAPI and uvicorn: pip install 'verticals[serve]'") from None
    return fastapi


def scan_item(item: Any) -> tuple[int, RecordError | None]:
    """Characters of text in one API input (all strings in it), or why it cannot be a record: nested deeper
    than ``MAX_DEPTH`` or holding a lone surrogate (not Unicode text: tokenizers and JSON encoders fail on
    it). Iterative, so no nesting depth can exhaust the stack."""
    chars, stack = 0, [(item, 1, None)]
    while stack:
        value, depth, field = stack.pop()
        if depth > MAX_DEPTH:
            return chars, RecordError(status=422, field=field, message=f"record is nested deeper than {MAX_DEPTH} "
                                                                       f"levels; send flat fields of texts and numbers")
        if isinstance(value, dict):
            texts = list(value)  # keys are texts too (not counted against max_chars)
            stack.extend((child, depth + 1, field or key) for key, child in value.items())
        elif isinstance(value, (list, tuple)):
            texts = []
            stack.extend((child, depth + 1, field) for child in value)
        elif isinstance(value, str):
            chars += len(value)
            texts = [value]
        else:
            texts = []
        if any(_SURROGATE.search(text) for text in texts):
            return chars, RecordError(status=422, field=field, message=(
                "text holds a lone surrogate (an unpaired \\ud800-\\udfff escape), which is not Unicode "
                "text; send valid UTF-8"))
    return chars, None


def _model_names(predictors: Sequence[Predictor]) -> list[str]:
    names: list[str] = []
    for predictor in predictors:
        base = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(str(predictor.path or predictor.task_name)).name) or "model"
        name, n = base, 2
        while name in names:
            name, n = f"{base}-{n}", n + 1
        names.append(name)
    return names


def _schemas(name: str, predictor: Predictor, limits: ServeLimits) -> tuple[type[BaseModel], type[BaseModel]]:
    """Per-model request/response models: the OpenAPI docs show the task's own record and prediction.

    Items are documented as the task's ``Record`` (or a bare text) but not validated by FastAPI
    (``SkipValidation``): each record is validated separately so that one bad record fails alone.
    """
    task = predictor.task
    stem = re.sub(r"\W", "_", name).strip("_").title().replace("_", "") or "Model"
    item_type = SkipValidation[task.Record | str]  # type: ignore[name-defined]
    request = create_model(
        f"{stem}PredictRequest",
        inputs=(list[item_type], Field(min_length=1, description=(  # type: ignore[valid-type]
            f"Records ({task.Record.__name__} objects) or bare texts; at most {limits.max_batch} per request."))),
    )
    result = create_model(
        f"{stem}PredictResult",
        index=(int, Field(description="Position of the input in the request.")),
        ok=(bool, ...),
        prediction=(task.Prediction | None, None),
        error=(RecordError | None, None),
    )
    response = create_model(
        f"{stem}PredictResponse",
        model=(str, ...),
        task=(str, ...),
        results=(list[result], ...),  # type: ignore[valid-type]
    )
    return request, response


def create_app(bundles: Sequence[str | Path | Predictor], limits: ServeLimits | None = None,
               engine: str = "auto", overrides: Sequence[str] | None = None, *, api_key: str | None = None,
               cors_origins: Sequence[str] = (), show_data_info: bool = False) -> Any:
    """A FastAPI app serving the given bundles (paths, or already loaded predictors). Bundles given as
    paths are loaded on ``engine`` ('auto': ONNX Runtime where it applies, for lower per-request latency).

    ``api_key``: required on every ``/v1`` route (``Authorization: Bearer KEY`` or ``X-API-Key: KEY``);
    ``cors_origins``: browser origins allowed to call the API (none by default); ``show_data_info``:
    ``/v1/models`` names the training data files (by default only their sha256 and record counts).
    """
    fastapi = _require_fastapi()
    from fastapi import Depends, FastAPI, Request, Security
    from fastapi.exceptions import RequestValidationError
    from fastapi.middleware.cors import CORSMiddleware
    from fastapi.responses import JSONResponse
    from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

    from ._serve_asgi import BodyLimit, CatchAll
    from ._serve_docs import add_offline_docs, request_examples
    from .api import load
    from .delivery.monitoring import Observe, Readiness, add_routes, warm_up

    limits = limits or ServeLimits()
    if not bundles:
        raise ConfigError("nothing to serve: give at least one bundle directory")
    # overrides: data.* options (e.g. a client's column names), as `serve --set data.text_column=utterance`
    predictors = [b.with_overrides(overrides) if isinstance(b, Predictor)
                  else load(b, engine=engine, overrides=overrides) for b in bundles]
    names = _model_names(predictors)
    models = dict(zip(names, predictors))
    # A predictor built in memory has no bundle directory, hence no digest.
    digests = {name: digest(p.path) if p.path is not None else None for name, p in models.items()}
    # Inference is compute-bound: one forward pass per model at a time keeps threads from fighting over
    # the same cores (requests queue; with ``batching`` the queued ones share the next pass).
    monitor = _monitor(models, digests, limits)
    batchers = {name: Batcher(models[name].task.predict, limits.max_batch, limits.batching,
                              monitor.batch_observer(name) if monitor else None) for name in names}
    readiness = Readiness()

    def warm_pass(name: str) -> Any:
        example = request_examples(models[name].task)["record"]["value"]["inputs"][0]
        return lambda: batchers[name]([models[name].task.as_record(example)])

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> Any:
        # /health answers while the models warm up; /ready only after (a thread: the event loop stays free)
        threading.Thread(target=warm_up, args=(readiness, {name: warm_pass(name) for name in names}),
                         name="verticals-warm-up", daemon=True).start()
        yield
        readiness.draining = True
        for batcher in batchers.values():
            batcher.close()

    app = FastAPI(title="Verticals", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Predictions from Verticals bundles. Every model has its own request schema.")
    add_offline_docs(app)
    # Outermost last: CatchAll > CORS (so refusals carry CORS headers) > BodyLimit > FastAPI.
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes, timeout=limits.body_timeout)
    if cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "X-API-Key", "Content-Type"])
    app.add_middleware(CatchAll)
    app.add_middleware(Observe, monitor=monitor)  # outermost: even a refusal above carries a request id
    app.state.readiness, app.state.monitor = readiness, monitor

    guard: list[Any] = []
    if api_key:
        expected = api_key.encode()
        bearer = HTTPBearer(auto_error=False, description="The server's API key as a bearer token.")
        header = APIKeyHeader(name="X-API-Key", auto_error=False, description="The server's API key.")

        def require_key(credentials: HTTPAuthorizationCredentials | None = Security(bearer),
                        key: str | None = Security(header)) -> None:
            given = key or (credentials.credentials if credentials else "")
            if not hmac.compare_digest(given.encode(), expected):  # constant time: no timing oracle
                raise fastapi.HTTPException(401, "missing or wrong API key: send 'Authorization: Bearer KEY' or "
                                                 "'X-API-Key: KEY'", headers={"WWW-Authenticate": "Bearer"})
        guard = [Depends(require_key)]

    def info(name: str) -> ModelInfo:
        bundle = models[name].info
        data = bundle.data if show_data_info else {  # file names can say whose data it was: opt-in
            split: {k: v for k, v in fingerprint.items() if k in ("sha256", "records")}
            for split, fingerprint in bundle.data.items()}
        return ModelInfo(name=name, task=bundle.task, task_type=bundle.task_type, pack=bundle.pack,
                         pack_version=bundle.pack_version, sdk_version=bundle.sdk_version, labels=bundle.labels,
                         metrics=bundle.metrics, data=data, created_at=bundle.created_at, digest=digests[name],
                         engine=models[name].engine, predict_url=f"/v1/models/{name}/predict")

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            ctx = next(e for e in errors if e.get("type") == "json_invalid").get("ctx", {})
            return JSONResponse(status_code=400, content={
                "detail": f"malformed JSON body: {ctx.get('error', 'cannot parse')}; "
                          f"send {{\"inputs\": [...]}} with Content-Type: application/json"})
        if any(e.get("type") == "model_attributes_type" and list(e.get("loc", [])) == ["body"] for e in errors):
            return JSONResponse(status_code=422, content={
                "detail": "expected a JSON object {\"inputs\": [...]} with Content-Type: application/json"})
        shown = "; ".join(f"{'.'.join(map(str, e['loc'][1:])) or 'body'}: {e['msg']}" for e in errors[:5])
        return JSONResponse(status_code=422, content={"detail": f"invalid request: {shown}",
                                                      "errors": json.loads(json.dumps(errors, default=str))})

    @app.get("/health", response_model=Health)
    def health() -> Health:
        return Health(sdk_version=__version__, models=names)

    add_routes(app, readiness, monitor, names)

    @app.get("/v1/models", response_model=list[ModelInfo], dependencies=guard)
    def list_models() -> list[ModelInfo]:
        return [info(name) for name in names]

    @app.get("/v1/models/{name}", response_model=ModelInfo, dependencies=guard)
    def get_model(name: str) -> ModelInfo:
        if name not in models:
            raise fastapi.HTTPException(404, f"no model '{name}'; loaded: {', '.join(names)}")
        return info(name)

    for name in names:
        _add_predict_route(app, name, models[name], batchers[name], limits, guard, monitor)

    @app.post("/v1/models/{name}/predict", include_in_schema=False, dependencies=guard)
    def unknown_model(name: str) -> None:
        raise fastapi.HTTPException(404, f"no model '{name}'; loaded: {', '.join(names)}")

    return app


def _monitor(models: dict[str, Predictor], digests: dict[str, str | None], limits: ServeLimits) -> Any:
    if not limits.metrics:
        return None
    from .delivery.monitoring import Monitor

    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        raise ConfigError("serving metrics needs prometheus-client: pip install 'verticals[serve]' (or serve "
                          "with --no-metrics)") from None
    return Monitor(models, digests, window=limits.drift_window, low_confidence=limits.low_confidence)


def _add_predict_route(app: Any, name: str, predictor: Predictor, batcher: Batcher, limits: ServeLimits,
                       guard: list[Any], monitor: Any = None) -> None:
    from fastapi import Body, HTTPException

    from ._serve_docs import request_examples, response_example

    request_model, response_model = _schemas(name, predictor, limits)
    result_model = response_model.model_fields["results"].annotation.__args__[0]  # type: ignore[union-attr]

    def predict(body: Any) -> Any:
        inputs = list(body.inputs)
        if len(inputs) > limits.max_batch:
            raise HTTPException(413, f"{len(inputs)} records in one request; the limit is {limits.max_batch} "
                                     f"(split the batch)")
        results: list[Any] = [None] * len(inputs)
        valid: list[tuple[int, Any]] = []
        for i, item in enumerate(inputs):
            checked = _check_item(predictor, item, i, limits)
            if isinstance(checked, RecordError):
                results[i] = result_model(index=i, ok=False, error=checked)
            else:
                valid.append((i, checked))
        outcomes = predict_records(batcher, [record for _, record in valid]) if valid else []
        for (i, _), outcome in zip(valid, outcomes):
            results[i] = result_model(index=i, ok=False, error=outcome) if isinstance(outcome, RecordError) \
                else result_model(index=i, ok=True, prediction=outcome)
        if monitor is not None:
            failed = [o.status for o in outcomes if isinstance(o, RecordError)]
            monitor.observe_records(name, len(inputs), {
                "invalid": len(inputs) - len(valid), "refused": failed.count(422), "internal": failed.count(500)},
                [o for o in outcomes if not isinstance(o, RecordError)])
        return response_model(model=name, task=predictor.task_name, results=results)

    # The body type is built at run time, so it is set here rather than as a (stringified) annotation.
    examples = request_examples(predictor.task)
    answer = response_example(name, predictor.task, examples["record"]["value"]["inputs"][0])
    ok_response: dict[str, Any] = {"content": {"application/json": {"example": answer}}} if answer else {}
    predict.__annotations__["body"] = Annotated[request_model, Body(openapi_examples=examples)]  # type: ignore
    app.add_api_route(f"/v1/models/{name}/predict", predict, methods=["POST"], response_model=response_model,
                      summary=f"Predict with {name} ({predictor.task_name})", name=f"predict_{name}",
                      dependencies=guard,
                      responses={200: ok_response, 400: {"description": "Malformed JSON"},
                                 401: {"description": "Missing or wrong API key (when the server has one)"},
                                 408: {"description": "Body not received in time"},
                                 413: {"description": "Too many records or too large a body"},
                                 422: {"description": "Body is not {\"inputs\": [...]}"}})


def predict_records(batcher: Batcher, records: list[Any]) -> list[Any]:
    """Predictions for valid records in one pass. When the pass fails, each record is predicted alone, so
    a record the model refuses (an unknown user, an item not in the catalogue: any ``VerticalsError``) gets
    its own 422 :class:`RecordError` and the others their predictions. Any other exception is a bug: it is
    logged and that record alone gets a 500."""
    try:
        return batcher(records)
    except Exception as exc:  # noqa: BLE001 - narrowed to the records at fault, then told apart below
        if len(records) > 1:
            return [predict_records(batcher, [record])[0] for record in records]
        error = exc
    if isinstance(error, DataError):
        return [RecordError(status=422, message=error.reason.removeprefix("Value error, "), field=error.field)]
    if isinstance(error, VerticalsError):
        return [RecordError(status=422, message=str(error))]
    logger.error("internal error predicting one record", exc_info=error)
    return [RecordError(status=500, message=f"internal error ({type(error).__name__}) predicting this record; "
                                            f"the server log has the details")]


def _check_item(predictor: Predictor, item: Any, index: int, limits: ServeLimits) -> Any:
    """The validated record for one input, or the :class:`RecordError` saying why it is refused."""
    if not isinstance(item, (str, dict)):
        return RecordError(status=422, message=f"expected a record object or a text, got {type(item).__name__}")
    size, problem = scan_item(item)
    if problem is not None:
        return problem
    if size > limits.max_chars:
        return RecordError(status=422, message=f"record has {size} characters of text; the limit is "
                                               f"{limits.max_chars}")
    try:
        return predictor.task.as_record(item, index)
    except DataError as exc:
        return RecordError(status=422, message=exc.reason.removeprefix("Value error, "), field=exc.field)


def uvicorn_config(app: Any, limits: ServeLimits | None = None, **kwargs: Any) -> Any:
    """The uvicorn configuration ``verticals serve`` runs ``app`` with: idle keep-alive connections closed
    after 5 s, a request's headers due within ``header_timeout`` (their size is bounded by h11: a 1 MB
    header block is answered 400), at most ``max_connections`` connections and requests at once, requests
    in flight given ``drain_timeout`` to finish on shutdown, and the app's own access log (with request
    ids) instead of uvicorn's."""
    import uvicorn

    from ._serve_asgi import header_timeout_protocol

    limits = limits or ServeLimits()
    return uvicorn.Config(app, http=header_timeout_protocol(limits.header_timeout), timeout_keep_alive=5,
                          limit_concurrency=limits.max_connections, timeout_graceful_shutdown=limits.drain_timeout,
                          access_log=False, **kwargs)


def run(bundles: Sequence[str | Path], host: str = "127.0.0.1", port: int = 8000,
        limits: ServeLimits | None = None, log_level: str = "info", engine: str = "auto",
        overrides: Sequence[str] | None = None, *, api_key: str | None = None, cors_origins: Sequence[str] = (),
        show_data_info: bool = False, log_format: str = "text") -> None:
    """Serve bundles with uvicorn until interrupted (``create_app`` says what the options do); logs go to
    stderr as text or, with ``log_format="json"``, one JSON object per line. SIGTERM drains, then returns."""
    try:
        import uvicorn
    except ImportError:
        raise ConfigError("serving needs uvicorn: pip install 'verticals[serve]'") from None
    from .delivery.monitoring import configure_logging, serve_draining

    limits = limits or ServeLimits()
    # Bind before loading the models: a busy port fails in a second, with one line, not after loading.
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another --port or "
                          f"--host") from None
    with sock:
        configure_logging(log_format, log_level)  # before loading: its notes and warnings in the same format
        app = create_app(bundles, limits, engine, overrides, api_key=api_key, cors_origins=cors_origins,
                         show_data_info=show_data_info)
        logger.info("serving %d bundle(s) on http://%s:%d (docs at /docs)", len(bundles), host, port)
        serve_draining(uvicorn_config(app, limits, log_level=log_level, log_config=None), sock,
                       app.state.readiness)
