"""Caps on HTTP requests: a body over its route's limit, and refusals made before a request is
read.

:class:`BodyLimits` refuses a body over its route's limit (413) before reading it, and closes
the connection after. The connection caps and the descriptor budget shared with the MQTT
listener are in services/connection_caps.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from http import HTTPStatus

import orjson
from starlette.types import Message, Receive, Scope, Send

from provisiond.errors import PayloadTooLarge, ProvisiondError
from provisiond.protocols import thingsboard as tb
from provisiond.services.metrics import NO_COUNTS, Counts
from provisiond.settings import Settings
from provisiond.web.headers import BASELINE_HEADERS

PROBLEM_JSON = "application/problem+json"


# -------------------------------------------------------------------------------- responses


def raw_problem(err: ProvisiondError, headers: dict[str, str] | None = None) -> bytes:
    """A whole HTTP/1.1 answer carrying ``err``'s problem document, closing the connection:
    for refusals made before any request is read (the server's protocol writes it)."""
    body = orjson.dumps(err.to_problem())
    lines = [
        f"HTTP/1.1 {err.status} {HTTPStatus(err.status).phrase}",
        f"content-type: {PROBLEM_JSON}",
        f"content-length: {len(body)}",
        "connection: close",
        *(f"{k}: {v}" for k, v in {**BASELINE_HEADERS, **(headers or {})}.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


# ------------------------------------------------------------------------------------ bodies

App = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyLimits:
    """A limit on the request body of every route: ``public`` for what is open without an
    operator token, ``operator`` for the operator API's paths, the bulk import's own
    (it streams to disk and counts for itself). A body declared too large is refused before
    a byte of it is read; a chunked one is read up to the limit (at most that much held) and
    handed on whole. A refusal closes the connection, so the rest is never read."""

    def __init__(
        self,
        settings: Settings,
        operator_paths: Iterable[str],
        import_path: str,
        provision_path: str | None,
        counts: Counts = NO_COUNTS,
    ) -> None:
        self.public = settings.limits.http_public_max_body_bytes
        self.operator = settings.limits.http_max_body_bytes
        self.imports = settings.limits.api_max_body_bytes
        self.least = min(self.public, self.operator, self.imports)
        self.operator_paths = frozenset(operator_paths)
        self.import_path = import_path
        self.provision_path = provision_path
        self.counts = counts  # a provision request refused here is answered too: counted

    def needs_guard(self, scope: Scope) -> bool:
        """Whether :meth:`guard` has anything to do: a chunked body, or a declared one over
        the least limit (most requests, the provisioning hot path's included, pass here
        without another coroutine)."""
        length, chunked = _body_headers(scope["headers"])
        return chunked or (length is not None and length > self.least)

    def limit_for(self, path: str) -> tuple[int, str]:
        """The body limit of ``path`` and the setting that sets it."""
        if path == self.import_path:
            return self.imports, "api_max_body_bytes"
        if "/".join(path.split("/", 4)[:4]) in self.operator_paths:
            return self.operator, "http_max_body_bytes"
        return self.public, "http_public_max_body_bytes"

    async def guard(self, app: App, scope: Scope, receive: Receive, send: Send) -> None:
        limit, setting = self.limit_for(scope["path"])
        length, chunked = _body_headers(scope["headers"])
        if length is not None and length > limit:
            await self._refuse(scope, send, limit, setting)
            return
        if scope["path"] == self.import_path:
            await app(scope, receive, _closing_on_413(send))
            return
        if chunked:  # uvicorn holds a declared length to its word; a chunked body is counted
            body = bytearray()
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return  # the client left: nobody to answer
                body += message.get("body", b"")
                if len(body) > limit:
                    await self._refuse(scope, send, limit, setting)
                    return
                if not message.get("more_body", False):
                    break
            receive = _replay(bytes(body), receive)
        await app(scope, receive, send)

    async def _refuse(self, scope: Scope, send: Send, limit: int, setting: str) -> None:
        message = f"the body is larger than {limit} bytes (setting {setting})"
        if scope["path"] == self.provision_path:  # the device API's own shape
            body = orjson.dumps(tb.failure(tb.FAILURE, message))
            self.counts.provisioning_answered("http", tb.FAILURE)
            media = "application/json"
        else:
            body = orjson.dumps(
                PayloadTooLarge(message, limit=limit).to_problem(instance=scope["path"])
            )
            media = PROBLEM_JSON
        headers = [
            (b"content-type", media.encode()),
            (b"content-length", b"%d" % len(body)),
            (b"connection", b"close"),
            *((k.lower().encode(), v.encode()) for k, v in BASELINE_HEADERS.items()),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _body_headers(headers: Iterable[tuple[bytes, bytes]]) -> tuple[int | None, bool]:
    length: int | None = None
    chunked = False
    for name, value in headers:
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                length = None
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
    return length, chunked


def _replay(body: bytes, receive: Receive) -> Receive:
    given = False

    async def replay() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _closing_on_413(send: Send) -> Send:
    """The import refuses a chunked body over its limit itself: then close, unread."""

    async def closing(message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] == 413:
            message = {
                **message,
                "headers": [*message.get("headers", []), (b"connection", b"close")],
            }
        await send(message)

    return closing
