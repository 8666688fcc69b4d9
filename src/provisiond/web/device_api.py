"""The device API: what devices call, without an operator token.

``POST /api/v1/provision`` is ThingsBoard's HTTP provisioning endpoint: the same JSON both
ways, HTTP 200 for every answer (``SUCCESS``, ``NOT_FOUND``, ``FAILURE`` with ``errorMsg``),
except a rate-limited request: 429 with ``Retry-After`` and a ``FAILURE`` body.
"""

from __future__ import annotations

import math

import orjson
from fastapi import APIRouter, Request, Response

from provisiond.protocols import thingsboard as tb
from provisiond.services.provisioning import policy_from, provision
from provisiond.web.deps import ContainerDep

router = APIRouter(tags=["device API"])
MAX_BODY = 64 * 1024


def _json(body: dict[str, object], status: int = 200,
          headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, headers=headers,
                    media_type="application/json")


@router.post("/api/v1/provision", openapi_extra={"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"type": "object", "properties": {
        "deviceName": {"type": "string"}, "provisionDeviceKey": {"type": "string"},
        "provisionDeviceSecret": {"type": "string"},
        "credentialsType": {"enum": [t.value for t in tb.TbCredentialsType]},
        "token": {"type": "string"}, "clientId": {"type": "string"},
        "username": {"type": "string"}, "password": {"type": "string"},
        "hash": {"type": "string"}},
        "required": ["provisionDeviceKey", "provisionDeviceSecret"]}}}}})
async def provision_device(request: Request, c: ContainerDep) -> Response:
    """Self-provisioning, compatible with ThingsBoard's device API: the device presents a
    profile's key and secret and receives its credentials (see docs/provisioning.md)."""
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            return _json(tb.failure(tb.FAILURE, f"the request is larger than {MAX_BODY} bytes"),
                         413)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _json(tb.failure(tb.FAILURE, "the request is not valid JSON"))
    s = c.settings
    answer = await provision(
        c.uow(), c.limiter, body=body,
        source=request.client.host if request.client else "unknown",
        policy=policy_from(s.provision_retry_window_seconds,
                           s.provision_unknown_source_rate_per_minute),
        now=c.now())
    if answer.retry_after:
        return _json(answer.body, 429, {"Retry-After": str(math.ceil(answer.retry_after))})
    return _json(answer.body)
