"""The mutual-TLS device API (``serve --device-tls-port``, setting
``provisioning__device_tls_port``): ThingsBoard's ``POST /api/v1/provision`` over HTTPS,
on its own port, where a device may prove itself by its TLS client certificate
(certificate-chain attestation, services/attestation.py) instead of a profile's secret.

The body is ThingsBoard's, without ``provisionDeviceSecret`` (an empty body is fine); a
request that carries the secret is answered as on the HTTP port. Answers as there: HTTP 200
with ThingsBoard's JSON for every outcome, 429 with ``Retry-After`` when throttled, 413 past
64 KiB; any other method or path is 404. The server is h11 over asyncio's TLS
(transports/h11_server.py: uvicorn does not show the client certificate), with the MQTT
listeners' caps and deadlines; the TLS asks for a client certificate, which must chain to a
profile's device CA if sent (transports/tls.py).
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from provisiond.protocols import thingsboard as tb
from provisiond.services.provisioning import MAX_REQUEST_BYTES, Provisioner, Source
from provisiond.transports import h11_server
from provisiond.transports.mqtt.session import Limits

PATH = "/api/v1/provision"
TRANSPORT = "https-mtls"  # as the events and metrics name it


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    body: dict[str, Any]
    retry_after: float | None = None


_NOT_FOUND = _Reply(404, tb.failure(tb.NOT_FOUND, f"not found: POST {PATH} only"))


@dataclass(frozen=True, slots=True)
class _Provision:
    provisioner: Provisioner

    async def __call__(self, request: h11_server.Request) -> _Reply:
        if request.method != "POST" or urlsplit(request.target).path != PATH:
            return _NOT_FOUND
        source = Source(TRANSPORT, request.source, request.certificate)
        answer = await self.provisioner.answer(request.body, source)
        return _Reply(answer.http_status, answer.body, answer.retry_after)


async def start(
    provisioner: Provisioner,
    host: str,
    port: int,
    tls: ssl.SSLContext,
    limits: Limits | None = None,
) -> asyncio.Server:
    """Serve the API; ``server.close()`` and ``await server.wait_closed()`` stop it."""
    return await h11_server.serve(
        _Provision(provisioner),
        host,
        port,
        tls,
        limits or Limits(),
        name="mutual-TLS device API",
        too_large=_Reply(
            413, tb.failure(tb.FAILURE, f"the request is larger than {MAX_REQUEST_BYTES} bytes")
        ),
        max_body=MAX_REQUEST_BYTES,
    )
