"""REST serving of bundles: ``verticals serve BUNDLE [BUNDLE ...]`` (needs ``pip install verticals[serve]``).

Endpoints (OpenAPI docs at ``/docs``):

- ``GET /health``: liveness plus the names of the loaded models.
- ``GET /v1/models`` and ``GET /v1/models/{name}``: bundle metadata (task, pack, labels, metrics, data).
- ``POST /v1/models/{name}/predict``: ``{"inputs": [record or text, ...]}`` -> one result per input.

Each record is validated on its own, so one bad record gets its own error in the answer while the
others are still predicted. Too many records or too large a body answers 413, a body that is not the
expected shape 422, malformed JSON 400; none of them is ever a 500.
"""

from __future__ import annotations

import contextlib
import json
import queue
import re
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, SkipValidation, create_model

from ._version import __version__
from .bundle import digest
from .errors import ConfigError, VerticalsError
from .predictor import Predictor

DEFAULT_MAX_BATCH = 64
DEFAULT_MAX_CHARS = 20_000
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024


class ServeLimits(BaseModel):
    """Request limits; each one answered with a clear status code when exceeded."""

    max_batch: int = Field(DEFAULT_MAX_BATCH, ge=1, description="Most records per predict request (else 413).")
    max_chars: int = Field(DEFAULT_MAX_CHARS, ge=1,
                           description="Most characters of text in one record (else that record fails, 422).")
    max_body_bytes: int = Field(DEFAULT_MAX_BODY_BYTES, ge=1, description="Largest request body (else 413).")
    # Off by default: on a 2-core CPU, batching gave no throughput and a 2.3x worse p99 (benchmarks/serve_load.py).
    batching: bool = Field(False, description="Run the records of concurrent requests in one forward pass.")


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
    data: dict[str, Any] = Field(description="Fingerprints of the training/validation/test data.")
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


class Batcher:
    """Serialises a model's forward passes; with ``batching``, requests that arrive while one pass runs
    are predicted together in the next (no added wait at low load, far fewer passes under load)."""

    def __init__(self, predict: Any, max_records: int, batching: bool = True) -> None:
        self._predict = predict
        self._max_records = max_records if batching else 0
        self._queue: queue.Queue[tuple[list[Any], Future[list[Any]]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="verticals-batcher", daemon=True)
        self._thread.start()

    def __call__(self, records: list[Any]) -> list[Any]:
        future: Future[list[Any]] = Future()
        self._queue.put((records, future))
        return future.result()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while (first := self._queue.get()) is not None:
            items, size, stop = [first], len(first[0]), False
            while size < self._max_records:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                items.append(item)
                size += len(item[0])
            try:
                predictions = self._predict([r for records, _ in items for r in records])
            except Exception as exc:  # noqa: BLE001 - handed to every waiting request
                for _, future in items:
                    future.set_exception(exc)
            else:
                start = 0
                for records, future in items:
                    future.set_result(predictions[start:start + len(records)])
                    start += len(records)
            if stop:
                return


def _require_fastapi() -> Any:
    try:
        import fastapi
    except ImportError:
        raise ConfigError("serving needs FastAPI and uvicorn: pip install 'verticals[serve]'") from None
    return fastapi


def text_length(item: Any) -> int:
    """Characters of text in one API input (all strings in it, however nested)."""
    if isinstance(item, str):
        return len(item)
    if isinstance(item, dict):
        return sum(text_length(v) for v in item.values())
    if isinstance(item, (list, tuple)):
        return sum(text_length(v) for v in item)
    return 0


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
               engine: str = "auto", overrides: Sequence[str] | None = None) -> Any:
    """A FastAPI app serving the given bundles (paths, or already loaded predictors). Bundles given as
    paths are loaded on ``engine`` ('auto': ONNX Runtime where it applies, for lower per-request latency)."""
    fastapi = _require_fastapi()
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    from .api import load

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
    batchers = {name: Batcher(models[name].task.predict, limits.max_batch, limits.batching) for name in names}

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> Any:
        yield
        for batcher in batchers.values():
            batcher.close()

    app = FastAPI(title="Verticals", version=__version__, lifespan=lifespan,
                  description="Predictions from Verticals bundles. Every model has its own request schema.")

    def info(name: str) -> ModelInfo:
        bundle = models[name].info
        return ModelInfo(name=name, task=bundle.task, task_type=bundle.task_type, pack=bundle.pack,
                         pack_version=bundle.pack_version, sdk_version=bundle.sdk_version, labels=bundle.labels,
                         metrics=bundle.metrics, data=bundle.data, created_at=bundle.created_at, digest=digests[name],
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

    @app.middleware("http")
    async def _limit_body(request: Request, call_next: Any) -> Any:
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > limits.max_body_bytes:
            return JSONResponse(status_code=413, content={
                "detail": f"request body is {int(length)} bytes; the limit is {limits.max_body_bytes}"})
        return await call_next(request)

    @app.get("/health", response_model=Health)
    def health() -> Health:
        return Health(sdk_version=__version__, models=names)

    @app.get("/v1/models", response_model=list[ModelInfo])
    def list_models() -> list[ModelInfo]:
        return [info(name) for name in names]

    @app.get("/v1/models/{name}", response_model=ModelInfo)
    def get_model(name: str) -> ModelInfo:
        if name not in models:
            raise fastapi.HTTPException(404, f"no model '{name}'; loaded: {', '.join(names)}")
        return info(name)

    for name in names:
        _add_predict_route(app, name, models[name], batchers[name], limits)

    @app.post("/v1/models/{name}/predict", include_in_schema=False)
    def unknown_model(name: str) -> None:
        raise fastapi.HTTPException(404, f"no model '{name}'; loaded: {', '.join(names)}")

    return app


def _add_predict_route(app: Any, name: str, predictor: Predictor, batcher: Batcher, limits: ServeLimits) -> None:
    from fastapi import HTTPException

    request_model, response_model = _schemas(name, predictor, limits)
    result_model = response_model.model_fields["results"].annotation.__args__[0]  # type: ignore[union-attr]

    def predict(body: request_model) -> Any:  # type: ignore[valid-type]
        inputs = list(body.inputs)  # type: ignore[attr-defined]
        if len(inputs) > limits.max_batch:
            raise HTTPException(413, f"{len(inputs)} records in one request; the limit is {limits.max_batch} "
                                     f"(split the batch)")
        results: list[Any] = [None] * len(inputs)
        valid: list[tuple[int, Any]] = []
        for i, item in enumerate(inputs):
            error = _check_item(predictor, item, i, limits)
            if isinstance(error, RecordError):
                results[i] = result_model(index=i, ok=False, error=error)
            else:
                valid.append((i, error))
        if valid:
            try:
                predictions = batcher([record for _, record in valid])
            except VerticalsError as exc:
                raise HTTPException(422, str(exc)) from None
            for (i, _), prediction in zip(valid, predictions):
                results[i] = result_model(index=i, ok=True, prediction=prediction)
        return response_model(model=name, task=predictor.task_name, results=results)

    # The body type is built at run time, so it is set here rather than as a (stringified) annotation.
    predict.__annotations__["body"] = request_model
    app.add_api_route(f"/v1/models/{name}/predict", predict, methods=["POST"], response_model=response_model,
                      summary=f"Predict with {name} ({predictor.task_name})", name=f"predict_{name}",
                      responses={400: {"description": "Malformed JSON"},
                                 413: {"description": "Too many records or too large a body"},
                                 422: {"description": "Body is not {\"inputs\": [...]}"}})


def _check_item(predictor: Predictor, item: Any, index: int, limits: ServeLimits) -> Any:
    """The validated record for one input, or the :class:`RecordError` saying why it is refused."""
    from .errors import DataError

    if not isinstance(item, (str, dict)):
        return RecordError(status=422, message=f"expected a record object or a text, got {type(item).__name__}")
    size = text_length(item)
    if size > limits.max_chars:
        return RecordError(status=422, message=f"record has {size} characters of text; the limit is "
                                               f"{limits.max_chars}")
    try:
        return predictor.task.as_record(item, index)
    except DataError as exc:
        return RecordError(status=422, message=exc.reason.removeprefix("Value error, "), field=exc.field)


def run(bundles: Sequence[str | Path], host: str = "127.0.0.1", port: int = 8000,
        limits: ServeLimits | None = None, log_level: str = "info", engine: str = "auto",
        overrides: Sequence[str] | None = None) -> None:
    """Serve bundles with uvicorn until interrupted."""
    app = create_app(bundles, limits, engine, overrides)
    try:
        import uvicorn
    except ImportError:
        raise ConfigError("serving needs uvicorn: pip install 'verticals[serve]'") from None
    uvicorn.run(app, host=host, port=port, log_level=log_level)
