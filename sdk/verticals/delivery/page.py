"""The page ``verticals serve`` shows at ``/``: try each served model in a browser, and correct it.

The page is three static files shipped in the package (``static/``: HTML, CSS, vanilla JavaScript, no CDN,
so it works on a closed network). Everything it shows comes from the public API (``/v1/models``,
``/v1/models/{name}/predict`` and ``/feedback``), called with the API key the user types into the page, so
serving the files themselves needs no key: they hold no model data.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from ..errors import ConfigError, VerticalsError, option

# Only the page's own files, no inline script or style, no framing by another site: a prediction or FAQ
# answer that holds markup can then never run as code (the script also inserts all text as text).
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # a newer SDK's page replaces an older one at the next load
}
ASSETS = {"page.js": "text/javascript; charset=utf-8", "page.css": "text/css; charset=utf-8"}


def _read(name: str) -> bytes:
    return resources.files("verticals.delivery").joinpath("static", name).read_bytes()


def page_input(task: Any) -> tuple[dict[str, Any] | None, bool]:
    """What the page's input looks like for ``task``: an example record (its form's fields and starting
    values; never a label) and whether a bare line of text is a complete record (then the page shows a text
    box taking one record per line, else a form of the example's fields)."""
    try:
        example = task.example_record()
    except Exception:  # noqa: BLE001 - a task that cannot build an example (unfitted state) gets no form
        example = None
    try:
        task.as_record(task.record_from_text("example"))
        text_ok = True
    except VerticalsError:  # e.g. finance.fraud: a record needs its declared columns
        text_ok = False
    # A record of several fields (a user and how many items) is better typed into a form than one line.
    return example, text_ok and (example is None or len(example) <= 1)


def add_page(app: Any) -> None:
    """Serve the page at ``/`` and its script and style sheet under ``/page/``."""
    from fastapi.responses import Response

    try:
        index = _read("index.html")
        assets = {name: _read(name) for name in ASSETS}
    except OSError as exc:  # an installation without the package data: say so at start-up, not with a 500
        raise ConfigError(f"the page's files are missing from this installation ({exc}); reinstall verticals, "
                          f"or serve with {option('page', False)}") from None

    @app.get("/", include_in_schema=False)
    def page() -> Response:
        return Response(index, media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS)

    def serve_file(body: bytes, media_type: str) -> Any:
        # a closure per file: FastAPI would read default arguments as request parameters
        def asset() -> Response:
            return Response(body, media_type=media_type, headers=SECURITY_HEADERS)
        return asset

    for name, media_type in ASSETS.items():
        app.add_api_route(f"/page/{name}", serve_file(assets[name], media_type), methods=["GET"],
                          include_in_schema=False, name=f"page_{name}")
