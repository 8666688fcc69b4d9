"""A small HTTP/1.1 server over asyncio TLS streams, with h11: for the device listeners
that must see the TLS client certificate (uvicorn does not show it) — Azure DPS's HTTPS
API (transports/azure/https.py) and the mutual-TLS device API (transports/http/mtls.py).

A connection takes a place under the listeners' gate (``limits__mqtt_max_sessions``, per
address too), must send each request head within ``limits__mqtt_connect_timeout_seconds``
(the handshake itself is bounded by the server's handshake timeout), lasts at most the
session's length, and makes at most ``max_requests`` requests; a head holds at most 16 KiB,
a body ``max_body`` bytes (past it: the ``too_large`` answer, and the connection closes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import h11
import orjson

from provisiond.services.connection_caps import MQTT_BACKLOG, Gate, source_of
from provisiond.transports.mqtt.session import Limits
from provisiond.transports.tls import peer_certificate

log = logging.getLogger(__name__)
MAX_HEAD_BYTES = 16 * 1024


class Reply(Protocol):
    """What a handler answers: a status, a JSON body, and for a throttled request when to
    retry (``Retry-After``)."""

    @property
    def status(self) -> int: ...

    @property
    def body(self) -> dict[str, Any]: ...

    @property
    def retry_after(self) -> float | None: ...


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    target: str
    headers: dict[bytes, bytes]  # names in lower case
    body: bytes
    certificate: bytes | None  # the TLS client certificate (DER) the handshake verified
    source: str  # the client's address


Respond = Callable[[Request], Awaitable[Reply]]


class _Conn:
    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer

    def evict(self) -> None:
        self.writer.close()


@dataclass(frozen=True, slots=True)
class H11Server:
    """The connection handler of ``asyncio.start_server``: each request is given to
    ``respond`` and its reply sent as JSON."""

    respond: Respond
    limits: Limits
    gate: Gate[_Conn]
    name: str  # in the log: "DPS HTTPS", "mutual-TLS device API"
    too_large: Reply
    max_requests: int = 16
    max_body: int = 64 * 1024

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        source = str(peer[0]) if peer else "unknown"
        conn = _Conn(writer)
        if not self.gate.admit(conn, source_of(source)):
            writer.close()
            return
        try:
            async with asyncio.timeout(self.limits.session_seconds):
                await self._serve(reader, writer, source)
        except (TimeoutError, ConnectionError, h11.ProtocolError, ssl.SSLError):
            pass
        except Exception:
            log.exception("%s connection failed", self.name)
        finally:
            self.gate.leave(conn)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, source: str
    ) -> None:
        http = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        certificate = peer_certificate(writer.transport)
        for served in range(1, self.max_requests + 1):
            head = await self._next(http, reader)
            if not isinstance(head, h11.Request):
                return
            body = b""
            while True:
                event = await self._next(http, reader)
                if isinstance(event, h11.Data):
                    body += event.data
                    if len(body) > self.max_body:
                        await self._send(http, writer, self.too_large, close=True)
                        return
                elif isinstance(event, h11.EndOfMessage):
                    break
                else:
                    return
            request = Request(
                head.method.decode(),
                head.target.decode("ascii", "replace"),
                {k.lower(): v for k, v in head.headers},
                body,
                certificate,
                source,
            )
            last = served == self.max_requests
            await self._send(http, writer, await self.respond(request), close=last)
            if last or http.our_state is not h11.DONE or http.their_state is not h11.DONE:
                return
            http.start_next_cycle()

    async def _next(self, http: h11.Connection, reader: asyncio.StreamReader) -> object:
        while True:
            event = http.next_event()
            if event is h11.NEED_DATA:
                async with asyncio.timeout(self.limits.connect_seconds):
                    data = await reader.read(65_536)
                http.receive_data(data)
                continue
            return event

    async def _send(
        self, http: h11.Connection, writer: asyncio.StreamWriter, reply: Reply, *, close: bool
    ) -> None:
        """Send a reply; with ``close``, say the connection ends after it (the client must
        not send another request on it)."""
        payload = orjson.dumps(reply.body)
        headers = [
            (b"content-type", b"application/json; charset=utf-8"),
            (b"content-length", str(len(payload)).encode()),
        ]
        if close:
            headers.append((b"connection", b"close"))
        if reply.retry_after is not None:
            headers.append((b"retry-after", str(max(1, math.ceil(reply.retry_after))).encode()))
        response = http.send(h11.Response(status_code=reply.status, headers=headers)) or b""
        response += http.send(h11.Data(data=payload)) or b""
        response += http.send(h11.EndOfMessage()) or b""
        writer.write(response)  # one write: one TLS record, one system call
        await writer.drain()


async def serve(  # noqa: PLR0913 - the listener's place and the server's caps, passed through
    respond: Respond,
    host: str,
    port: int,
    tls: ssl.SSLContext,
    limits: Limits,
    *,
    name: str,
    too_large: Reply,
    max_requests: int = 16,
    max_body: int = 64 * 1024,
) -> asyncio.Server:
    """Listen; ``server.close()`` and ``await server.wait_closed()`` stop it."""
    gate = Gate[_Conn](limits.max_sessions, limits.max_per_address)
    handler = H11Server(respond, limits, gate, name, too_large, max_requests, max_body)
    return await asyncio.start_server(
        handler,
        host,
        port,
        ssl=tls,
        backlog=MQTT_BACKLOG,
        ssl_handshake_timeout=limits.connect_seconds,
    )
