"""The CoAP device API: ``POST coap://HOST:PORT/api/v1/provision`` with ThingsBoard's
provisioning JSON both ways (aiocoap). Started beside the HTTP server when ``coap_port`` is
set (``provisiond serve --coap-port 5683``); the same service answers as over HTTP, so a
device registered over CoAP exists for HTTP and MQTT, and the reverse.

Answers are 2.05 Content with the JSON (``SUCCESS``, ``NOT_FOUND``, ``FAILURE``), except a
rate-limited request: 4.29 Too Many Requests with Max-Age = the seconds to wait and a
``FAILURE`` body; a body that is not JSON is a ``FAILURE`` answer as over HTTP.

CoAP is served over UDP only: aiocoap would also serve it over TCP on the same port and over
WebSocket on port + 3000, connections without any cap or deadline. A request assembled from
blocks (Block1) is refused with 4.13 as soon as it would pass the provisioning request's
limit, rather than assembled without bound.
"""

from __future__ import annotations

import math
from typing import Any

import aiocoap
import aiocoap.error
import aiocoap.resource
import orjson
from aiocoap.defaults import get_default_servertransports

from provisiond.services.provisioning import MAX_REQUEST_BYTES, Provisioner, Source

JSON_FORMAT = 50  # application/json


UDP_TRANSPORTS = ("udp6", "simple6", "simplesocketserver")  # aiocoap's, by platform


class _Provision(aiocoap.resource.Resource):  # type: ignore[misc]
    def __init__(self, provisioner: Provisioner) -> None:
        super().__init__()
        self.provisioner = provisioner

    async def needs_blockwise_assembly(self, request: aiocoap.Message) -> bool:
        block1 = request.opt.block1
        if block1 is not None and block1.start + len(request.payload) > MAX_REQUEST_BYTES:
            raise aiocoap.error.RequestEntityTooLarge(
                f"the request is larger than {MAX_REQUEST_BYTES} bytes"
            )
        return True

    async def render_post(self, request: aiocoap.Message) -> aiocoap.Message:
        answer = await self.provisioner.answer(request.payload, Source("coap", _host(request)))
        if answer.too_large:
            return _answer(answer.body, aiocoap.REQUEST_ENTITY_TOO_LARGE)
        if answer.retry_after:
            message = _answer(answer.body, aiocoap.TOO_MANY_REQUESTS)
            message.opt.max_age = math.ceil(answer.retry_after)
            return message
        return _answer(answer.body)


def _host(request: aiocoap.Message) -> str:
    try:
        return str(request.remote.hostinfo.rsplit(":", 1)[0].strip("[]"))
    except (AttributeError, ValueError):
        return "unknown"


def _answer(body: dict[str, Any], code: Any = aiocoap.CONTENT) -> aiocoap.Message:
    return aiocoap.Message(code=code, payload=orjson.dumps(body), content_format=JSON_FORMAT)


async def start(provisioner: Provisioner, host: str, port: int) -> aiocoap.Context:
    """Serve the CoAP device API; ``await context.shutdown()`` stops it."""
    site = aiocoap.resource.Site()
    site.add_resource(["api", "v1", "provision"], _Provision(provisioner))
    transports = [t for t in get_default_servertransports() if t in UDP_TRANSPORTS]
    return await aiocoap.Context.create_server_context(
        site, bind=(host, port), transports=transports
    )
