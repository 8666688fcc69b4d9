"""Azure DPS's HTTPS REST API (``serve --dps-https-port``; Azure's is 443):

- ``PUT /{idScope}/registrations/{registrationId}/register?api-version=…`` with
  ``{"registrationId": …}``: 202 ``{"operationId", "status": "assigning"}``;
- ``GET /{idScope}/registrations/{registrationId}/operations/{operationId}?api-version=…``:
  200 with ``assigned`` or ``failed`` and the ``registrationState``;

each authenticated again by a shared access signature in ``Authorization`` or the TLS client
certificate. Errors are DPS's JSON (``errorCode``, ``trackingId``, ``message``). Caps: a
connection must send its request head within ``limits__mqtt_connect_timeout_seconds``, a
body holds at most 64 KiB, a connection makes at most ``dps__https_requests_per_connection``
requests (16 unless set) and sessions are capped as the MQTT listeners' are.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import ssl
from urllib.parse import unquote, urlsplit

import h11
import orjson

from provisiond.protocols import dps
from provisiond.services.connection_caps import MQTT_BACKLOG, Gate, source_of
from provisiond.services.dps import Answer, Attempt, Registrar
from provisiond.transports.azure.mqtt import MAX_REQUEST_BYTES, peer_certificate, request_body
from provisiond.transports.mqtt.listener import Limits

log = logging.getLogger(__name__)
MAX_HEAD_BYTES = 16 * 1024


class _Conn:
    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer

    def evict(self) -> None:
        self.writer.close()


def _route(method: str, target: str) -> tuple[str, str, str, str | None] | None:
    """(kind, id scope, registration id, operation id) of a request, None if not DPS's."""
    parts = [unquote(p) for p in urlsplit(target).path.split("/")]
    if len(parts) == 5 and parts[2] == "registrations" and parts[4] == "register":
        return ("register", parts[1], parts[3], None) if method == "PUT" else None
    if len(parts) == 6 and parts[2] == "registrations" and parts[4] == "operations":
        return ("status", parts[1], parts[3], parts[5]) if method == "GET" else None
    return None


class _Handler:
    def __init__(self, registrar: Registrar, limits: Limits, gate: Gate[_Conn]) -> None:
        self.registrar, self.limits, self.gate = registrar, limits, gate

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
            log.exception("DPS HTTPS connection failed")
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
        for _ in range(self.registrar.policy.https_requests):
            request = await self._next(http, reader)
            if not isinstance(request, h11.Request):
                return
            body = b""
            while True:
                event = await self._next(http, reader)
                if isinstance(event, h11.Data):
                    body += event.data
                    if len(body) > MAX_REQUEST_BYTES:
                        await self._send(http, writer, Answer(413, {"message": "too large"}))
                        return
                elif isinstance(event, h11.EndOfMessage):
                    break
                else:
                    return
            answer = await self._answer(request, body, certificate, source)
            await self._send(http, writer, answer)
            if http.our_state is not h11.DONE or http.their_state is not h11.DONE:
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

    async def _answer(
        self, request: h11.Request, body: bytes, certificate: bytes | None, source: str
    ) -> Answer:
        route = _route(request.method.decode(), request.target.decode("ascii", "replace"))
        if route is None:
            return Answer(404, {"errorCode": 404000, "message": "Not found."})
        kind, id_scope, registration_id, operation_id = route
        headers = {k.lower(): v for k, v in request.headers}
        sas = headers.get(b"authorization")
        attempt = Attempt(
            id_scope,
            registration_id,
            sas.decode("ascii", "replace") if sas is not None else None,
            certificate,
            "dps-https",
            source,
        )
        if kind == "status":
            return await self.registrar.status(
                attempt, operation_id or "", f"{id_scope}/{registration_id}", attest=True
            )
        parsed = request_body(body, registration_id)
        if isinstance(parsed, str):
            return Answer(400, {"errorCode": 400004, "message": parsed})
        try:
            dps.check_registration_id(registration_id)
        except dps.DpsRefused as refused:
            return Answer(400, {"errorCode": 400004, "message": str(refused)})
        attempt = dataclasses.replace(attempt, payload=parsed.get("payload"))
        return await self.registrar.register(attempt, f"{id_scope}/{registration_id}")

    async def _send(
        self, http: h11.Connection, writer: asyncio.StreamWriter, answer: Answer
    ) -> None:
        payload = orjson.dumps(answer.body)
        headers = [
            (b"content-type", b"application/json; charset=utf-8"),
            (b"content-length", str(len(payload)).encode()),
        ]
        if answer.retry_after is not None:
            headers.append((b"retry-after", str(answer.retry_after).encode()))
        response = http.send(h11.Response(status_code=answer.status, headers=headers)) or b""
        response += http.send(h11.Data(data=payload)) or b""
        response += http.send(h11.EndOfMessage()) or b""
        writer.write(response)  # one write: one TLS record, one system call
        await writer.drain()


async def start(
    registrar: Registrar,
    host: str,
    port: int,
    tls: ssl.SSLContext,
    limits: Limits | None = None,
) -> asyncio.Server:
    limits = limits or Limits()
    gate = Gate[_Conn](limits.max_sessions, limits.max_per_address)
    return await asyncio.start_server(
        _Handler(registrar, limits, gate),
        host,
        port,
        ssl=tls,
        backlog=MQTT_BACKLOG,
        ssl_handshake_timeout=limits.connect_seconds,
    )
