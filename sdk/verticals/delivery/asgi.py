"""What protects ``verticals serve`` below the routes: body size and time limits while the body streams in,
a JSON answer for any error a route lets escape, and a time limit on reading a request's headers.

The routes never see a request that breaks these limits, so no request content can make them allocate
without bound, hold a connection for ever, or answer with uvicorn's bare 500 that also drops the
connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from typing import Any

logger = logging.getLogger("verticals.serve")

Scope = dict[str, Any]
Message = dict[str, Any]


async def send_json(send: Any, status: int, detail: str, *, close: bool = False) -> None:
    """A complete JSON response ``{"detail": ...}`` (``close``: ask the client to open a new connection)."""
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _Refused(Exception):
    """Raised into the app from ``receive`` when the body breaks a limit; the middleware answers."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


class BodyLimit:
    """Counts the body bytes as they arrive (Content-Length and chunked alike) and answers 413 as soon as
    ``max_bytes`` is passed, or 408 when the body is not complete ``timeout`` seconds after the headers.

    Starlette's own body reading has no limit, and a Content-Length check alone is bypassed by
    ``Transfer-Encoding: chunked``. The refusal closes the connection, so the rest of an oversized upload
    is never read.
    """

    def __init__(self, app: Any, max_bytes: int, timeout: float) -> None:
        self.app, self.max_bytes, self.timeout = app, max_bytes, timeout

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await send_json(send, 413, f"request body is {int(declared)} bytes; the limit is {self.max_bytes}",
                            close=True)
            return
        deadline = time.monotonic() + self.timeout
        received, complete = 0, False
        refused: _Refused | None = None
        started = False

        async def limited_receive() -> Message:
            nonlocal received, complete, refused
            if refused is not None:
                raise refused
            if complete:  # after the body, receive() only waits for a disconnect: no deadline
                return await receive()  # type: ignore[no-any-return]
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                refused = _Refused(408, f"the request body was not received within {self.timeout:g} s")
                raise refused from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if received > self.max_bytes:
                    refused = _Refused(413, f"request body is over {self.max_bytes} bytes (the limit)")
                    raise refused
            return message  # type: ignore[no-any-return]

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused is not None:
                return  # the app's answer to the refused body (e.g. FastAPI's 400) is replaced by ours
            started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _Refused:
            pass  # answered below
        if refused is not None and not started:
            await send_json(send, refused.status, refused.detail, close=True)


class CatchAll:
    """Turns an exception that escapes the app into a JSON 500 that keeps the connection usable.

    Request content is checked before it reaches a model (serve.py), so what lands here is a bug; the
    traceback goes to the server log. Without this, uvicorn answers a bare 500 and closes the
    connection, which resets the client's next keep-alive request.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:  # noqa: BLE001 - the last line of defence; logged with its traceback
            logger.exception("internal error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            await send_json(send, 500, f"internal error ({type(exc).__name__}); the server log has the details")


def header_timeout_protocol(timeout: float) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol class with a limit on the time a client may take to send a request's headers.

    uvicorn's ``timeout_keep_alive`` only starts after a response and is cancelled by any byte received, so
    a client that opens a connection and sends its headers a byte at a time ("slow loris") holds the
    connection for ever. This closes a connection whose next request's headers are not complete within
    ``timeout`` seconds of it opening or of the previous response.
    """
    # h11, never uvicorn's "auto" choice: once httptools is installed (uvicorn[standard], which ray[serve]
    # brings) auto picks it, and httptools accepts header blocks of any size (10 MB answered 200) where h11
    # answers 400 and closes.
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderTimeoutProtocol(H11Protocol):  # type: ignore[misc]
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm(None)

        def on_response_complete(self) -> None:
            finished = self.cycle  # a pipelined request may start a new cycle inside super()
            super().on_response_complete()
            self._arm(finished)

        def send_400_response(self, msg: str) -> None:
            # uvicorn says only "Invalid HTTP request received." and closes, also after pipelined requests it
            # answered; the parser's reason (no Host header, a bad Content-Length or request line) is the
            # exception uvicorn is handling right now: say it, and that nothing after it was read
            reason = sys.exc_info()[1]
            if reason is not None:
                text = " ".join(str(reason).split())[:200] or type(reason).__name__
                msg = (f"{msg.rstrip('.')}: {text}; the connection is closed, and requests sent after this one on "
                       f"it were not read")
            super().send_400_response(msg.encode("ascii", "replace").decode("ascii"))  # h11 sends ASCII only

        def connection_lost(self, exc: Exception | None) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
            super().connection_lost(exc)

        def _arm(self, waiting_after: Any) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
            if not self.transport.is_closing():
                self._header_timer = self.loop.call_later(timeout, self._expire, waiting_after)

        def _expire(self, waiting_after: Any) -> None:
            # Still no new request (the cycle a request's headers create) since the timer was armed.
            if self.cycle is waiting_after and not self.transport.is_closing():
                self.transport.close()

    return HeaderTimeoutProtocol


def body_problem(cause: BaseException | None) -> str | None:
    """Why a request body could not be parsed, from the exception FastAPI hides behind "There was an error
    parsing the body" (its 400 chains it as ``__cause__``); None when it is something else."""
    if isinstance(cause, UnicodeDecodeError):
        raw = cause.object if isinstance(cause.object, bytes) else b""
        if raw.startswith(b"\x1f\x8b"):
            return ("the body is gzip-compressed; compressed bodies (Content-Encoding: gzip) are not accepted: send "
                    "the JSON uncompressed")
        return (f"the body is not UTF-8 (byte 0x{raw[cause.start]:02x} at position {cause.start} cannot be decoded; "
                f"Latin-1 or Windows-1252 text?): send JSON encoded as UTF-8") if raw else None
    if isinstance(cause, ValueError) and "integer string conversion" in str(cause):
        return ("a number in the body has more digits than the JSON parser accepts (4300): send it as a string, "
                "or fewer digits")
    if isinstance(cause, RecursionError):
        return "the body is nested too deeply to parse; send flat records"
    return None
