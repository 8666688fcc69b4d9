"""Azure DPS's HTTPS REST API (``serve --dps-https-port``; Azure's is 443):

- ``PUT /{idScope}/registrations/{registrationId}/register?api-version=…`` with
  ``{"registrationId": …}``: 202 ``{"operationId", "status": "assigning"}``;
- ``GET /{idScope}/registrations/{registrationId}/operations/{operationId}?api-version=…``:
  200 with ``assigned`` or ``failed`` and the ``registrationState``;

each authenticated again by a shared access signature in ``Authorization`` or the TLS client
certificate. Errors are DPS's JSON (``errorCode``, ``trackingId``, ``message``). Caps: a
connection must send its request head within ``limits__mqtt_connect_timeout_seconds``, a
body holds at most 64 KiB, a connection makes at most ``dps__https_requests_per_connection``
requests (16 unless set) and sessions are capped as the MQTT listeners' are
(transports/h11_server.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
from urllib.parse import unquote, urlsplit

from provisiond.protocols import dps
from provisiond.services.dps import Answer, Attempt, Registrar
from provisiond.transports import h11_server
from provisiond.transports.azure.mqtt import MAX_REQUEST_BYTES, request_body
from provisiond.transports.mqtt.listener import Limits


def _route(method: str, target: str) -> tuple[str, str, str, str | None] | None:
    """(kind, id scope, registration id, operation id) of a request, None if not DPS's."""
    parts = [unquote(p) for p in urlsplit(target).path.split("/")]
    if len(parts) == 5 and parts[2] == "registrations" and parts[4] == "register":
        return ("register", parts[1], parts[3], None) if method == "PUT" else None
    if len(parts) == 6 and parts[2] == "registrations" and parts[4] == "operations":
        return ("status", parts[1], parts[3], parts[5]) if method == "GET" else None
    return None


@dataclasses.dataclass(frozen=True, slots=True)
class _Answerer:
    registrar: Registrar

    async def __call__(self, request: h11_server.Request) -> Answer:
        route = _route(request.method, request.target)
        if route is None:
            return Answer(404, {"errorCode": 404000, "message": "Not found."})
        kind, id_scope, registration_id, operation_id = route
        sas = request.headers.get(b"authorization")
        attempt = Attempt(
            id_scope,
            registration_id,
            sas.decode("ascii", "replace") if sas is not None else None,
            request.certificate,
            "dps-https",
            request.source,
        )
        if kind == "status":
            return await self.registrar.status(
                attempt, operation_id or "", f"{id_scope}/{registration_id}", attest=True
            )
        parsed = request_body(request.body, registration_id)
        if isinstance(parsed, str):
            return Answer(400, {"errorCode": 400004, "message": parsed})
        try:
            dps.check_registration_id(registration_id)
        except dps.DpsRefused as refused:
            return Answer(400, {"errorCode": 400004, "message": str(refused)})
        attempt = dataclasses.replace(attempt, payload=parsed.get("payload"))
        return await self.registrar.register(attempt, f"{id_scope}/{registration_id}")


async def start(
    registrar: Registrar,
    host: str,
    port: int,
    tls: ssl.SSLContext,
    limits: Limits | None = None,
) -> asyncio.Server:
    return await h11_server.serve(
        _Answerer(registrar),
        host,
        port,
        tls,
        limits or Limits(),
        name="DPS HTTPS",
        too_large=Answer(413, {"message": "too large"}),
        max_requests=registrar.policy.https_requests,
        max_body=MAX_REQUEST_BYTES,
    )
