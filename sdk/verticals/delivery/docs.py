"""``/docs`` (Swagger UI) and ``/redoc`` for ``verticals serve`` that work without internet.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, so on a client's closed network they are blank.
The assets here come from the ``fastapi-offline`` package (in the ``serve`` extra), which ships the
Swagger UI and ReDoc bundles; the app serves them itself under ``/docs-assets``.
"""

# No ``from __future__ import annotations``: FastAPI must see the real ``Request`` class, imported in a function.
import logging
from pathlib import Path
from typing import Any

ASSETS_URL = "/docs-assets"
logger = logging.getLogger("verticals.serve")


def _assets_dir() -> Path | None:
    try:
        import fastapi_offline
    except ImportError:
        return None
    directory = Path(fastapi_offline.__file__).parent / "static"
    return directory if (directory / "swagger-ui-bundle.js").is_file() else None


def add_offline_docs(app: Any) -> None:
    """Serve ``/docs``, ``/docs/oauth2-redirect`` and ``/redoc`` from local assets (the app must be created
    with ``docs_url=None, redoc_url=None``)."""
    from fastapi import Request
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
    from fastapi.responses import HTMLResponse
    from fastapi.staticfiles import StaticFiles

    assets = _assets_dir()
    if assets is None:  # never fall back to a CDN: say what to install instead
        logger.warning("no offline docs assets: pip install 'verticals[serve]' (fastapi-offline); "
                       "/docs shows how, the schema is at /openapi.json")

        @app.get("/docs", include_in_schema=False)
        @app.get("/redoc", include_in_schema=False)
        def missing() -> HTMLResponse:
            return HTMLResponse("<p>The API docs need the fastapi-offline package: "
                                "<code>pip install 'verticals[serve]'</code>. The OpenAPI schema is at "
                                "<a href='/openapi.json'>/openapi.json</a>.</p>")
        return

    app.mount(ASSETS_URL, StaticFiles(directory=assets), name="docs-assets")
    redirect_url = "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    def swagger(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - API docs",
                                   swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
                                   swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
                                   oauth2_redirect_url=f"{root}{redirect_url}")
        return _framed_by_no_one(page)

    @app.get(redirect_url, include_in_schema=False)
    def swagger_redirect() -> HTMLResponse:
        return _framed_by_no_one(get_swagger_ui_oauth2_redirect_html())

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _framed_by_no_one(get_redoc_html(openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - ReDoc",
                                                redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
                                                redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
                                                with_google_fonts=False))


def _framed_by_no_one(response: Any) -> Any:
    """The docs pages start Swagger UI / ReDoc from an inline script, so no script-src policy here (the try-it
    page has one); but no other site may frame them (clickjacking with a keyed user's session) or sniff types."""
    response.headers.update({"Content-Security-Policy": "frame-ancestors 'none'", "X-Frame-Options": "DENY",
                             "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"})
    return response


def request_examples(task: Any, *, keyed: bool = False) -> dict[str, dict[str, Any]]:
    """OpenAPI examples of a model's predict body, from the task's own record (never a gold label). With an
    API key (``keyed``) the schema stays public, so the example is built from the record's field names and
    placeholder values only: a task's own example may come from its fitted state (a known user id, the
    commonest category of a training column)."""
    from ..tasks.base import TaskType

    record = TaskType.example_record(task) if keyed else task.example_record()
    examples = {"record": {"summary": "One record", "value": {"inputs": [record]}}}
    text = task.record_from_text("TEXT")
    if list(text) == list(record) and isinstance(record.get(next(iter(record), ""), None), str):
        # a bare string stands for this record (text tasks): show that shorter form too
        examples["text"] = {"summary": "Bare texts", "value": {"inputs": list(record.values())}}
    return examples


def response_example(name: str, task: Any, record: dict[str, Any], *, keyed: bool = False) -> dict[str, Any] | None:
    """The answer to the docs' request example, predicted once at start-up (so it shows the model's own
    labels instead of placeholders), plus a refused record; None if the example cannot be predicted.

    /openapi.json is public (also when the server has an API key), so the prediction is scrubbed: a string
    stays only when it is a label or part of the example's own input; any other (a retrieved training
    utterance, an FAQ answer) becomes ``<field>``. With an API key labels go too (``<label N>``): the public
    schema then holds nothing from the bundle but field names."""
    try:
        prediction = task.predict([task.as_record(record)])[0].model_dump(mode="json")
    except Exception:  # noqa: BLE001 - the docs then show the schema's generic example
        logger.debug("no response example for %s", name, exc_info=True)
        return None
    labels = [str(label) for label in getattr(task, "labels_", [])]
    shown = {label: f"<label {i}>" if keyed else label for i, label in enumerate(labels)}
    if not keyed:  # entity types of BIO labels ('Drug' of 'B-Drug') are label names too
        shown.update({label[2:]: label[2:] for label in labels if label[:2] in ("B-", "I-")})
    refused = {"status": 422, "message": "expected a record object or a text, got int", "field": None}
    return {"model": name, "task": task.task_name, "results": [
        {"index": 0, "ok": True, "prediction": _scrub(prediction, shown, " ".join(_strings(record)), "value"),
         "prediction_id": "3f2b9c0e8d7a4b6f9e1d2c3b4a5f6e7d", "error": None},
        {"index": 1, "ok": False, "prediction": None, "prediction_id": None, "error": refused}]}


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


def _scrub(value: Any, labels: dict[str, str], given: str, field: str) -> Any:
    """``value`` with every string that is neither a label (mapped by ``labels``) nor part of the example's
    input (``given``) replaced by ``<field>``; numbers, booleans and nulls as they are."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            shown_key = labels.get(key, key)  # dict keys: field names, or labels (a scores dict)
            out[shown_key] = _scrub(item, labels, given, key if shown_key == key else field)
        return out
    if isinstance(value, list):
        return [_scrub(item, labels, given, field) for item in value]
    if isinstance(value, str):
        if value in labels:
            return labels[value]
        return value if value and value in given else f"<{field}>"
    return value
