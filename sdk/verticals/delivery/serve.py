"""REST serving of bundles: ``verticals serve BUNDLE [BUNDLE ...]`` (needs ``pip install verticals[serve]``).

Endpoints (OpenAPI docs at ``/docs``):

- ``GET /``: a page to try each model and correct it in a browser (``delivery/page.py``; ``page=False``
  / ``--no-page`` leaves it out).
- ``GET /health``: liveness plus the names of the loaded models.
- ``GET /ready``: 200 once the models are loaded and warmed, 503 while warming up or draining.
- ``GET /metrics``: Prometheus metrics (``delivery.monitoring``: requests, latency, decisions, drift).
- ``GET /v1/models`` and ``GET /v1/models/{name}``: bundle metadata (task, pack, labels, metrics, data).
- ``POST /v1/models/{name}/predict``: ``{"inputs": [record or text, ...]}`` -> one result per input, each
  predicted one with a ``prediction_id``. ``"explain": true`` adds each prediction's explanation
  (:mod:`verticals.tasks.explain`; torch engine only, else 422; at most ``MAX_EXPLAIN_BATCH`` records, else
  413); off by default.
- ``POST /v1/models/{name}/feedback``: a user's correction, stored in ``--feedback-db`` (see
  :mod:`verticals.operate.feedback_route`).

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
import os
import re
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, Field, SkipValidation, create_model

from .._version import __version__
from ..errors import ConfigError, VerticalsError, option
from ..predictor import Predictor
from ..tasks.explain import (
    DEFAULT_METHOD,
    MAX_EXPLAIN_BATCH,
    EntitiesExplanation,
    TextExplanation,
    check_explainable,
    explain_records,
)
from .batcher import Batcher
from .request_records import (  # noqa: F401 - MAX_DEPTH and scan_item: part of this module's documented API
    _SURROGATE,
    MAX_DEPTH,
    RecordError,
    check_item,
    feedback_body_problem,
    feedback_input,
    predict_records_async,
    scan_item,
)
from .schemas import (  # noqa: F401 - the limits and answers of the API, importable from here as before
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_CHARS,
    Health,
    ModelInfo,
    ServeLimits,
    input_model,
)

logger = logging.getLogger("verticals.serve")


def _require_fastapi() -> Any:
    try:
        import fastapi
    except ImportError:
        raise ConfigError("serving needs FastAPI and uvicorn: pip install 'verticals[serve]'") from None
    return fastapi


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
    record = input_model(task, stem)
    item_type = SkipValidation[record | str]  # type: ignore[valid-type]
    request = create_model(
        f"{stem}PredictRequest",
        inputs=(list[item_type], Field(min_length=1, description=(  # type: ignore[valid-type]
            f"Records ({record.__name__} objects) or bare texts; at most {limits.max_batch} per request."))),
        explain=(bool, Field(False, description=(
            f"Add each prediction's explanation (the words that drove it; torch engine only); at most "
            f"{MAX_EXPLAIN_BATCH} records per request then (413)"))),
    )
    result = create_model(
        f"{stem}PredictResult",
        index=(int, Field(description="Position of the input in the request.")),
        ok=(bool, ...),
        prediction=(task.Prediction | None, None),
        prediction_id=(str | None, Field(None, description=(
            "Id of this prediction (uuid4 hex) for POST /v1/models/{name}/feedback; null for a failed record."))),
        explanation=(TextExplanation | EntitiesExplanation | None, None),
        error=(RecordError | None, None),
    )
    response = create_model(
        f"{stem}PredictResponse",
        model=(str, ...),
        task=(str, ...),
        results=(list[result], ...),  # type: ignore[valid-type]
    )
    return request, response


def create_app(bundles: str | Path | Predictor | Sequence[str | Path | Predictor], limits: ServeLimits | None = None,
               engine: str = "auto", overrides: Sequence[str] | None = None, *, api_key: str | None = None,
               cors_origins: Sequence[str] = (), show_data_info: bool = False,
               feedback_db: str | Path | None = None, log_predictions: bool = False,
               log_retention: str = "30d", page: bool = True) -> Any:
    """A FastAPI app serving the given bundles (paths, or already loaded predictors; one alone, or a list). Bundles
    given as paths are loaded on ``engine`` ('auto': ONNX Runtime where it applies, for lower per-request latency).

    ``api_key``: required on every ``/v1`` route (``Authorization: Bearer KEY`` or ``X-API-Key: KEY``);
    ``cors_origins``: browser origins allowed to call the API (none by default); ``show_data_info``:
    ``/v1/models`` names the training data files (by default only their sha256 and record counts).
    ``feedback_db``: where feedback is stored: a SQLite file, or a database URL (``sqlite:///FILE``,
    ``postgresql+psycopg://user@host/db``); created when missing, refused when not ours;
    ``log_predictions``: also store every predicted input and answer there, kept per ``log_retention``
    ('N' records or 'Nd' days), so feedback can name a ``prediction_id`` alone (off: inputs are private).
    ``page``: serve the page to try the models at ``/`` (``delivery/page.py``).
    """
    fastapi = _require_fastapi()
    from fastapi import Depends, FastAPI, Request, Security
    from fastapi.exception_handlers import http_exception_handler
    from fastapi.exceptions import RequestValidationError
    from fastapi.middleware.cors import CORSMiddleware
    from fastapi.responses import JSONResponse
    from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from ..api import load
    from .asgi import BodyLimit, CatchAll, body_problem
    from .docs import add_offline_docs, request_examples
    from .monitoring import Observe, Readiness, add_routes, warm_up

    limits = limits or ServeLimits()
    if isinstance(bundles, (str, Path, Predictor)):  # one bundle (a path is a Sequence of characters)
        bundles = [bundles]
    if log_predictions and feedback_db is None:
        raise ConfigError(f"{option('log_predictions', True)} stores predictions in the feedback database: give "
                          f"{option('feedback_db', 'FILE')}")
    if not bundles:
        raise ConfigError("nothing to serve: give at least one bundle directory")
    store = None
    if feedback_db is not None:  # opened (or refused) before loading models: a foreign file fails at once
        from ..operate.feedback_store import open_store

        store = open_store(feedback_db, retention=log_retention)
    # overrides: data.* options (e.g. a client's column names), as `serve --set data.text_column=utterance`
    try:
        predictors = [b.with_overrides(overrides) if isinstance(b, Predictor)
                      else load(b, engine=engine, overrides=overrides) for b in bundles]
    except BaseException:
        if store is not None:
            store.close()
        raise
    names = _model_names(predictors)
    models = dict(zip(names, predictors))
    # the digest read with each load (the path may hold another bundle by now); None for one built in memory
    digests = {name: p.digest for name, p in models.items()}
    # Inference is compute-bound: one forward pass per model at a time keeps threads from fighting over
    # the same cores (requests queue; with ``batching`` the queued ones share the next pass).
    monitor = _monitor(models, digests, limits)
    batchers = {name: Batcher(models[name].task.predict, limits.max_batch, limits.batching,
                              monitor.batch_observer(name) if monitor else None) for name in names}
    if store is not None:
        from ..operate.feedback_route import model_columns

        for name, p in models.items():
            store.register_model(name, digests[name] or "", p.task_name, p.info.task_type, p.info.labels,
                                 model_columns(p.task))
        if log_predictions:  # the retention holds also after a pause in traffic, not only at the next request
            store.prune()
    readiness = Readiness(on_change=(lambda ready: monitor.ready.set(int(ready))) if monitor is not None else None)

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
        if store is not None:
            store.close()

    app = FastAPI(title="Verticals", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Predictions from Verticals bundles. Every model has its own request schema.")
    add_offline_docs(app)
    if page:
        from .page import add_page
        add_page(app)
    from ..operate.feedback_route import allowed_labels
    from .page import page_input
    inputs = {name: page_input(models[name].task) for name in names}  # computed once: the task is fixed
    # Outermost last: CatchAll > CORS (so refusals carry CORS headers) > BodyLimit > FastAPI.
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes, timeout=limits.body_timeout)
    if cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "X-API-Key", "Content-Type"])
    app.add_middleware(CatchAll)
    app.add_middleware(Observe, monitor=monitor)  # outermost: even a refusal above carries a request id
    app.state.readiness, app.state.monitor = readiness, monitor

    guard: list[Any] = []
    check_api_key(api_key)
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
                         engine=models[name].engine, predict_url=f"/v1/models/{name}/predict",
                         example=inputs[name][0], text_input=inputs[name][1],
                         feedback_labels=allowed_labels(models[name]))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Any:
        # FastAPI answers every unparsable body "There was an error parsing the body": say which problem it was
        detail = body_problem(exc.__cause__) if exc.status_code == 400 else None
        if detail is None:
            return await http_exception_handler(request, exc)
        return JSONResponse(status_code=400, content={"detail": detail})

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            ctx = next(e for e in errors if e.get("type") == "json_invalid").get("ctx", {})
            return JSONResponse(status_code=400, content={
                "detail": f"malformed JSON body: {ctx.get('error', 'cannot parse')}; "
                          f"send {{\"inputs\": [...]}} with Content-Type: application/json"})
        if any(e.get("type") == "model_attributes_type" and list(e.get("loc", [])) == ["body"] for e in errors):
            shape = ('{"prediction_id": ..., "label": ...}' if request.url.path.endswith("/feedback")
                     else '{"inputs": [...]}')
            return JSONResponse(status_code=422, content={
                "detail": f"expected a JSON object {shape} with Content-Type: application/json"})
        shown = "; ".join(f"{'.'.join(map(str, e['loc'][1:])) or 'body'}: {e['msg']}" for e in errors[:5])
        # A lone surrogate the client sent comes back in the error's "input" and cannot be encoded as UTF-8:
        # replaced (U+FFFD) so that the answer is a 422, not a 500; a NaN or Infinity it sent comes back as
        # the text "NaN" / "Infinity" (JSON has no such numbers, and the response refuses them)
        text = _SURROGATE.sub("\ufffd", json.dumps(errors, default=str, ensure_ascii=False))
        return JSONResponse(status_code=422, content={"detail": _SURROGATE.sub("\ufffd", f"invalid request: {shown}"),
                                                      "errors": json.loads(text, parse_constant=str)})

    @app.get("/health", response_model=Health)
    def health() -> Health:
        return Health(sdk_version=__version__, models=names, pid=os.getpid())

    # HEAD for load balancers' checks (uvicorn sends no body); not in the schema (one operation id per route)
    app.add_api_route("/health", health, methods=["HEAD"], include_in_schema=False)

    add_routes(app, readiness, monitor, names)

    @app.get("/v1/models", response_model=list[ModelInfo], dependencies=guard)
    def list_models() -> list[ModelInfo]:
        return [info(name) for name in names]

    @app.get("/v1/models/{name}", response_model=ModelInfo, dependencies=guard)
    def get_model(name: str) -> ModelInfo:
        if name not in models:
            raise fastapi.HTTPException(404, f"no model '{name}'; loaded: {', '.join(names)}")
        return info(name)

    log = store if log_predictions else None
    for name in names:
        _add_predict_route(app, name, models[name], batchers[name], limits, guard, log, digests[name], monitor)

    from ..operate.feedback_route import add_feedback_route

    add_feedback_route(app, models, digests, store, log_predictions, guard,
                       lambda predictor, item: feedback_input(predictor, item, limits), feedback_body_problem)

    @app.post("/v1/models/{name}/predict", include_in_schema=False, dependencies=guard)
    def unknown_model(name: str) -> None:
        raise fastapi.HTTPException(404, f"no model '{name}'; loaded: {', '.join(names)}")

    return app


def _monitor(models: dict[str, Predictor], digests: dict[str, str | None], limits: ServeLimits) -> Any:
    if not limits.metrics:
        return None
    from .monitoring import Monitor

    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        raise ConfigError(f"serving metrics needs prometheus-client: pip install 'verticals[serve]' (or serve "
                          f"with {option('limits=ServeLimits(metrics=False)', cli='--no-metrics')})") from None
    return Monitor(models, digests, window=limits.drift_window, low_confidence=limits.low_confidence)


def _add_predict_route(app: Any, name: str, predictor: Predictor, batcher: Batcher, limits: ServeLimits,
                       guard: list[Any], log: Any = None, model_digest: str | None = None,
                       monitor: Any = None) -> None:
    from fastapi import Body, HTTPException
    from fastapi.responses import Response
    from starlette.concurrency import run_in_threadpool

    from .docs import request_examples, response_example

    request_model, response_model = _schemas(name, predictor, limits)
    result_model = response_model.model_fields["results"].annotation.__args__[0]  # type: ignore[union-attr]

    # async: the request waits for its forward pass on the event loop (asyncio.wrap_future), not in a pool
    # thread parked on the batcher, so 32 connections cost no 32 threads fighting over the GIL at each
    # answer; the blocking work (explanations, the prediction log's SQLite write) still goes to the pool.
    async def predict(body: Any) -> Any:
        inputs = list(body.inputs)
        if len(inputs) > limits.max_batch:
            raise HTTPException(413, f"{len(inputs)} records in one request; the limit is {limits.max_batch} "
                                     f"(split the batch)")
        explain = bool(getattr(body, "explain", False))
        if explain:  # bounded cost: each explained record costs about one forward pass per word
            if len(inputs) > MAX_EXPLAIN_BATCH:
                raise HTTPException(413, f"{len(inputs)} records to explain in one request; the limit with "
                                         f"\"explain\": true is {MAX_EXPLAIN_BATCH} (split the batch)")
            try:
                check_explainable(predictor.task, predictor.engine, DEFAULT_METHOD)
            except VerticalsError as exc:
                raise HTTPException(422, f"cannot explain with this model: {exc}") from None
        results: list[Any] = [None] * len(inputs)
        valid: list[tuple[int, Any]] = []
        for i, item in enumerate(inputs):
            checked = check_item(predictor, item, i, limits)
            if isinstance(checked, RecordError):
                results[i] = result_model(index=i, ok=False, error=checked)
            else:
                valid.append((i, checked))
        outcomes = await predict_records_async(batcher, [record for _, record in valid]) if valid else []
        for (i, _), outcome in zip(valid, outcomes):
            results[i] = result_model(index=i, ok=False, error=outcome) if isinstance(outcome, RecordError) \
                else result_model(index=i, ok=True, prediction=outcome, prediction_id=uuid.uuid4().hex)
        if monitor is not None:
            failed = [o.status for o in outcomes if isinstance(o, RecordError)]
            monitor.observe_records(name, len(inputs), {
                "invalid": len(inputs) - len(valid), "refused": failed.count(422), "internal": failed.count(500)},
                [o for o in outcomes if not isinstance(o, RecordError)])
        for i, record in valid if explain else []:
            if results[i].ok:
                outcome = await run_in_threadpool(explain_record, predictor, record)
                results[i] = result_model(index=i, ok=False, error=outcome) if isinstance(outcome, RecordError) \
                    else result_model(index=i, ok=True, prediction=results[i].prediction,
                                      prediction_id=results[i].prediction_id, explanation=outcome)
        if log is not None and valid:  # opt-in (--log-predictions): committed before the answer names the ids
            logged = [(results[i].prediction_id, record, results[i].prediction) for i, record in valid
                      if results[i].ok]
            try:
                await run_in_threadpool(log.log_predictions, name, model_digest or "", logged)
            except VerticalsError as exc:  # the predictions stand; feedback on them then needs the input
                logger.warning("predictions not logged: %s", exc)
            except Exception:  # noqa: BLE001 - a bug in logging must not take the answer (never a 500)
                logger.exception("predictions not logged")
        # Serialised once, in pydantic's Rust encoder: returning the model would make FastAPI dump it, validate
        # the dump against response_model again, then encode it with json.dumps
        return Response(response_model(model=name, task=predictor.task_name, results=results).model_dump_json(),
                        media_type="application/json")

    # The body type is built at run time, so it is set here rather than as a (stringified) annotation.
    keyed = bool(guard)  # the schema stays public with a key: examples then hold no bundle data (_serve_docs)
    examples = request_examples(predictor.task, keyed=keyed)
    answer = response_example(name, predictor.task, examples["record"]["value"]["inputs"][0], keyed=keyed)
    ok_response: dict[str, Any] = {"content": {"application/json": {"example": answer}}} if answer else {}
    predict.__annotations__["body"] = Annotated[request_model, Body(openapi_examples=examples)]  # type: ignore
    app.add_api_route(f"/v1/models/{name}/predict", predict, methods=["POST"], response_model=response_model,
                      summary=f"Predict with {name} ({predictor.task_name})", name=f"predict_{name}",
                      dependencies=guard,
                      responses={200: ok_response, 400: {"description": "Malformed JSON"},
                                 401: {"description": "Missing or wrong API key (when the server has one)"},
                                 408: {"description": "Body not received in time"},
                                 413: {"description": "Too many records (to explain) or too large a body"},
                                 422: {"description": "Body is not {\"inputs\": [...]}"}})


def explain_record(predictor: Predictor, record: Any) -> Any:
    """The explanation of one valid record, or the :class:`RecordError` (422 refused, 500 a logged bug)."""
    try:
        return explain_records(predictor.task, [record], engine=predictor.engine)[0]
    except VerticalsError as exc:
        return RecordError(status=422, message=str(exc))
    except Exception as exc:  # noqa: BLE001 - a bug: logged, and only this record fails
        logger.error("internal error explaining one record", exc_info=exc)
        return RecordError(status=500, message=f"internal error ({type(exc).__name__}) explaining this record; "
                                               f"the server log has the details")


def check_api_key(api_key: str | None) -> None:
    """Refuse a key that would silently weaken authentication: an empty one (an unset shell variable would
    turn it off) or one no HTTP client can send (headers are ASCII: a non-ASCII key could never match)."""
    if api_key is None:
        return
    if not api_key.strip():
        raise ConfigError(f"the API key is empty ({option('api_key', '')} or VERTICALS_API_KEY= set to nothing), "
                          f"which would leave the API open; give a key, or unset it to serve without authentication")
    if not api_key.isascii() or not api_key.isprintable() or api_key != api_key.strip():
        raise ConfigError("the API key must be printable ASCII without surrounding spaces: HTTP headers carry "
                          "ASCII, so any other key could never match what a client sends")
