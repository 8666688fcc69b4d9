"""uvicorn's HTTP protocol (httptools), with the deadlines and the cap it lacks.

uvicorn reads headers for as long as a client takes (a client sending a header line a
second holds its connection, and a descriptor, for ever), bounds neither their size nor the
pace of a body, and its ``limit_concurrency`` answers 503 to everyone once reached — the
health check included — while every slow connection stays open. This protocol:

- closes a connection whose request line and headers are not all in within
  ``http_header_timeout_seconds`` (from the connection, or from the end of the previous
  answer plus uvicorn's keep-alive), and answers 431 past ``http_max_header_bytes``;
- closes one whose body pauses longer than ``http_body_timeout_seconds`` or, past that
  time, averages less than ``http_body_min_rate`` bytes a second (time while reading is
  paused because the app has not taken what came does not count);
- holds at most ``http_max_connections`` through a gate
  (:class:`~provisiond.services.connection_caps.Gate`): at the cap a new connection takes
  the place of the one idle longest (no request in hand); when all are busy, up to
  ``http_reserved_connections`` more may ask /healthz, /readyz or /metrics only, and past
  those a connection is answered 503 and closed.

uvicorn's protocol is subclassed at its documented seams (``Config(http=...)``, the
parser callbacks); the subclass is bound to one server's gate by :func:`server_options`.
"""

from __future__ import annotations

import asyncio
from enum import Enum
from typing import Any, ClassVar

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from provisiond.errors import HeadersTooLarge, ProvisiondError, Unavailable
from provisiond.services.connection_caps import HTTP_BACKLOG, Caps, Gate, fit_descriptors
from provisiond.settings import Settings
from provisiond.web.limits import raw_problem

HEALTH_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
KEEP_ALIVE_SECONDS = 5  # uvicorn's default, named here: the idle deadline counts it
LINGER_SECONDS = 2.0  # after a refusal: how long what the client still sends is dropped
LINGER_BYTES = 1024 * 1024  # … and how much of it, before the connection is closed anyway


class _Phase(Enum):
    WAITING = "waiting"  # for a request's line and headers (idle: evictable)
    BODY = "body"  # reading its body
    ANSWERING = "answering"  # the app has it
    CLOSING = "closing"  # refused: the answer is out, what still comes is dropped


class LimitedHttpProtocol(HttpToolsProtocol):
    gate: ClassVar[Gate[LimitedHttpProtocol]]
    reserve: ClassVar[Gate[LimitedHttpProtocol]]
    header_seconds: ClassVar[float]
    body_seconds: ClassVar[float]
    body_rate: ClassVar[int]
    max_header_bytes: ClassVar[int]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._phase = _Phase.WAITING
        self._timer: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._discarded = 0  # bytes dropped after a refusal
        self._header_tail = b""  # the last bytes read while waiting: a CRLFCRLF may span reads
        self._body_since = 0.0
        self._body_heard = 0.0
        self._body_bytes = 0
        self._held_by: Gate[LimitedHttpProtocol] | None = None

    # ------------------------------------------------------------------- the connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.gate.admit(self):
            self._held_by = self.gate
        elif self.reserve.admit(self):
            self._held_by = self.reserve
            self.app = _health_only(self.app)
        else:
            transport.write(_AT_CAP)
            transport.close()
            return
        self._wait(self.header_seconds)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._held_by is not None:
            self._held_by.leave(self)
        self._cancel()
        super().connection_lost(exc)

    def evict(self) -> None:
        self._held_by = None
        self._cancel()
        if not self.transport.is_closing():
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        # Counted before the parser sees the data: a whole oversized header block can
        # arrive in one read, and the parser would complete it before a check after it.
        if self._phase is _Phase.WAITING:
            seen = self._header_tail + data
            end = seen.find(b"\r\n\r\n")
            self._header_bytes += len(data) if end < 0 else end + 4 - len(self._header_tail)
            self._header_tail = seen[-3:]
            if self._header_bytes > self.max_header_bytes:
                self._refuse(
                    HeadersTooLarge(
                        f"the request line and headers are over {self.max_header_bytes} "
                        "bytes (setting http_max_header_bytes)"
                    )
                )
                return
        elif self._phase is _Phase.CLOSING:
            self._discarded += len(data)
            if self._discarded > LINGER_BYTES:
                self.transport.close()
            return
        super().data_received(data)

    def _refuse(self, error: ProvisiondError) -> None:
        """Answer ``error`` and close without losing the answer: closing a socket with
        unread input resets the connection, and a client still sending would read the reset
        instead of the answer. So the sending side is shut, what still comes is read and
        dropped for a moment (at most LINGER_BYTES), then the connection is closed."""
        if self.transport.is_closing():
            return
        self.transport.write(raw_problem(error))
        self._phase = _Phase.CLOSING
        self._discarded = 0
        if self._held_by is not None:  # still counted, but the first to make room
            self._held_by.idle(self)
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self._wait(LINGER_SECONDS)
        else:
            self.transport.close()

    # ---------------------------------------------------------------- parser callbacks

    def on_headers_complete(self) -> None:
        self._phase = _Phase.BODY
        self._header_bytes = 0
        self._header_tail = b""
        self._body_since = self._body_heard = self.loop.time()
        self._body_bytes = 0
        if self._held_by is not None:
            self._held_by.busy(self)
        self._arm(self._body_due())
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        self._body_heard = self.loop.time()
        super().on_body(body)

    def on_message_complete(self) -> None:
        if self._phase is _Phase.BODY:
            if self.cycle is not None and self.cycle.response_complete:
                self._phase = _Phase.WAITING  # answered before its end: the next request
                self._wait(KEEP_ALIVE_SECONDS + self.header_seconds)
            else:
                self._phase = _Phase.ANSWERING
                self._cancel()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a pipelined request has started
        if self._phase is not _Phase.BODY:  # an answer before the whole body: let it come
            self._phase = _Phase.WAITING
        if self._held_by is not None:
            self._held_by.idle(self)
        self._wait(KEEP_ALIVE_SECONDS + self.header_seconds)

    # ------------------------------------------------------------------------ deadlines

    def _wait(self, seconds: float) -> None:
        self._arm(self.loop.time() + seconds)

    def _body_due(self) -> float:
        paused = self._body_heard + self.body_seconds
        if not self.body_rate:
            return paused
        return min(paused, self._body_since + self.body_seconds + self._body_bytes / self.body_rate)

    def _arm(self, due: float) -> None:
        self._cancel()
        self._timer = self.loop.call_at(due, self._deadline)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _deadline(self) -> None:
        self._timer = None
        if self._phase is _Phase.BODY:
            if self.flow.read_paused:  # the app has not taken what came: the wait is ours
                self._body_since = self._body_heard = self.loop.time()
                self._body_bytes = 0
            due = self._body_due()
            if self.loop.time() < due:
                self._arm(due)
                return
        elif self._phase is _Phase.ANSWERING:
            return
        if not self.transport.is_closing():
            self.transport.close()


_BUSY = Unavailable("every connection is in use (setting http_max_connections)", retry_after=1)
_AT_CAP = raw_problem(_BUSY, {"Retry-After": "1"})
_AT_CAP_BODY = orjson.dumps(_BUSY.to_problem())


def _health_only(app: Any) -> Any:
    """The app for a connection past the cap: the health paths, then close; 503 else."""

    async def health_only(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] not in HEALTH_PATHS:
            await send(
                {
                    "type": "http.response.start",
                    "status": 503,
                    "headers": [
                        (b"content-type", b"application/problem+json"),
                        (b"content-length", b"%d" % len(_AT_CAP_BODY)),
                        (b"connection", b"close"),
                        (b"retry-after", b"1"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": _AT_CAP_BODY})
            return

        async def closing(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (b"connection", b"close")],
                }
            await send(message)

        await app(scope, receive, closing)

    return health_only


def protocol_class(settings: Settings, caps: Caps) -> type[LimitedHttpProtocol]:
    """The protocol class of one server, bound to its own gate."""
    attrs = {
        "gate": Gate[LimitedHttpProtocol](caps.http_connections),
        "reserve": Gate[LimitedHttpProtocol](caps.http_reserved),
        "header_seconds": settings.limits.http_header_timeout_seconds,
        "body_seconds": settings.limits.http_body_timeout_seconds,
        "body_rate": settings.limits.http_body_min_rate,
        "max_header_bytes": settings.limits.http_max_header_bytes,
    }
    return type("ProvisiondHttpProtocol", (LimitedHttpProtocol,), attrs)


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options for `provisiond serve`: this protocol, a backlog the descriptor
    budget counts, no WebSocket upgrade (nothing here speaks it)."""
    caps = fit_descriptors(settings)
    return {
        "http": protocol_class(settings, caps),
        "ws": "none",
        "backlog": HTTP_BACKLOG,
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
    }
