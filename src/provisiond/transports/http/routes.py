"""The device API: what devices call, without an operator token.

``POST /api/v1/provision`` is ThingsBoard's HTTP provisioning endpoint: the same JSON both
ways, HTTP 200 for every answer (``SUCCESS``, ``NOT_FOUND``, ``FAILURE`` with ``errorMsg``),
except a rate-limited request: 429 with ``Retry-After`` and a ``FAILURE`` body.

``POST /api/v1/register`` trades a manufacturer-signed registration token (JWT) for a new
device and its access token; errors are problem documents like the admin API's.

The HTTP app serves these routes on its port (bootstrap.py adds them, with the app's own way
of documenting problem answers); provisioning is its hot path, answered before the app's
routing (web/app.py, ``FastRoute``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any, Protocol

import orjson
from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from provisiond.errors import (
    ClaimClosed,
    DeviceAlreadyClaimed,
    DeviceExists,
    InvalidInput,
    ModelNotFound,
    ProvisiondError,
    RegistrationRefused,
    TooManyRequests,
    Unauthenticated,
)
from provisiond.protocols import thingsboard as tb
from provisiond.services.claims.associations import associate
from provisiond.services.claims.windows import open_device_window, press_button
from provisiond.services.container import Container
from provisiond.services.devices import authenticate_device
from provisiond.services.metrics import counted_claim
from provisiond.services.provisioning import MAX_REQUEST_BYTES, Source
from provisiond.services.registration_tokens import register_with_token

if TYPE_CHECKING:
    pass

PROVISION_PATH = "/api/v1/provision"


class Responses(Protocol):
    """How the HTTP app documents a route's problem answers (web/problems.py's)."""

    def __call__(self, *errors: type[ProvisiondError]) -> dict[int | str, dict[str, Any]]: ...


def container_of(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


ContainerDep = Annotated[Container, Depends(container_of)]


def _source(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _json(
    body: dict[str, object], status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, headers=headers, media_type="application/json"
    )


PROVISION_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "deviceName": {"type": "string"},
                        "provisionDeviceKey": {"type": "string"},
                        "provisionDeviceSecret": {"type": "string"},
                        "credentialsType": {"enum": [t.value for t in tb.TbCredentialsType]},
                        "token": {"type": "string"},
                        "clientId": {"type": "string"},
                        "username": {"type": "string"},
                        "password": {"type": "string"},
                        "hash": {"type": "string"},
                    },
                    "required": ["provisionDeviceKey", "provisionDeviceSecret"],
                }
            }
        },
    }
}


async def provision_device(request: Request) -> Response:
    """Self-provisioning, compatible with ThingsBoard's device API: the device presents a
    profile's key and secret and receives its credentials (see docs/provisioning.md)."""
    return await provision_response(request)


async def provision_response(request: Request) -> Response:
    """The answer to ``POST /api/v1/provision``. The app serves that path with this directly,
    before its routing and middleware (see web/app.py's ProvisiondApp): this is the hot path
    of a provisioning storm. The app adds the baseline headers, and answers a failure
    raised here as a problem document."""
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_REQUEST_BYTES:
            break  # enough to refuse it: the rest is not read
    c: Container = request.app.state.container
    answer = await c.provisioner.answer(raw, Source("http", _source(request)))
    if answer.retry_after:
        retry = {"Retry-After": str(math.ceil(answer.retry_after))}
        return _json(answer.body, answer.http_status, retry)
    return _json(answer.body, answer.http_status)


class RegisterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(max_length=8192, description="the registration token (a JWT)")


class Registered(BaseModel):
    deviceId: str
    serial: str
    credentialsType: str
    key: str = Field(description="the access token's public part (its credential id)")
    secret: str = Field(description="its secret part, shown in this answer only")
    token: str = Field(description="key.secret: the access token to connect with")


async def register(body: RegisterRequest, request: Request, c: ContainerDep) -> Registered:
    """Signed-token registration: a JWT from the manufacturer (header `kid` = the profile's
    provision key; claims `serial`, optional `model`, `exp`, `jti`) creates the device and
    answers its id and access token (see docs/provisioning.md)."""
    done = await register_with_token(
        c.uow(),
        c.limiter,
        token=body.token,
        source=_source(request),
        unknown_source_rate_per_minute=c.settings.provisioning.unknown_source_rate_per_minute,
        now=c.now(),
        keys=c.sealer,
        sealer=c.broker_sealer,
    )
    issued = done.credential
    key, _, secret = issued.secret.partition(".")
    return Registered(
        deviceId=str(done.device.id),
        serial=done.device.serial,
        credentialsType=issued.credential.type.value,
        key=key,
        secret=secret,
        token=issued.secret,
    )


class ButtonPressed(BaseModel):
    proven: bool = Field(description="true when the press proved an open claim")
    claim: str | None = Field(None, description="the claim it proved")


async def claim_button(access_token: str, c: ContainerDep) -> ButtonPressed:
    """The device's claim button was pressed: it proves the open claim of a person who chose
    the device, if one waits inside its window (see docs/claiming.md). A press with no claim
    waiting proves nothing and is answered `proven: false`."""
    device = await authenticate_device(c.uow(), token=access_token, now=c.now())
    claim = await press_button(c.uow(), c.hub, device_id=device.id, now=c.now())
    return ButtonPressed(proven=claim is not None, claim=str(claim.id) if claim else None)


class ClaimWindow(BaseModel):
    model_config = ConfigDict(extra="ignore")
    secretKey: str = Field(max_length=256, description="what the person claiming must type")
    durationMs: int | None = Field(
        None,
        description="how long the window stays open, in milliseconds (optional, as in "
        "ThingsBoard: the device's claim window, its profile's or the instance's)",
    )


class ClaimWindowOpened(BaseModel):
    expiresAt: int = Field(description="when the window closes, ms since the Unix epoch")


async def claim_window(access_token: str, body: ClaimWindow, c: ContainerDep) -> ClaimWindowOpened:
    """ThingsBoard's device claiming: the device allows itself to be claimed by whoever
    types `secretKey` within `durationMs` (a device-secret proof)."""
    device = await authenticate_device(c.uow(), token=access_token, now=c.now())
    expires_at = await open_device_window(
        c.uow(),
        c.claim_policy,
        device_id=device.id,
        secret=body.secretKey,
        duration_ms=body.durationMs,
        now=c.now(),
    )
    return ClaimWindowOpened(expiresAt=int(expires_at.timestamp() * 1000))


class UserMapping(BaseModel):
    model_config = ConfigDict(extra="ignore")
    user_id: str = Field(max_length=64, description="the user id the host gave the device")
    secret_key: str = Field(max_length=256, description="the one-time secret it gave with it")


class Associated(BaseModel):
    claimed: bool
    serial: str


async def user_association(access_token: str, body: UserMapping, c: ContainerDep) -> Associated:
    """The device reports the user mapping it got during Wi-Fi provisioning (ESP RainMaker's
    user-node association, `provisiond wifi provision --claim EMAIL`): it is claimed for
    that user. The token works once, within 15 minutes."""
    device = await authenticate_device(c.uow(), token=access_token, now=c.now())
    with counted_claim(c.counts, "associate"):
        serial = await associate(
            c.uow(), device=device, user_id=body.user_id, secret_key=body.secret_key, now=c.now()
        )
    return Associated(claimed=True, serial=serial)


def build_router(responses: Responses) -> APIRouter:
    """The device API's routes; ``responses`` documents each route's problem answers."""
    router = APIRouter(tags=["device API"])
    router.add_api_route(
        PROVISION_PATH, provision_device, methods=["POST"], openapi_extra=PROVISION_BODY
    )
    router.add_api_route(
        "/api/v1/register",
        register,
        methods=["POST"],
        status_code=201,
        response_model=Registered,
        responses=responses(RegistrationRefused, DeviceExists, ModelNotFound, TooManyRequests),
    )
    router.add_api_route(
        "/api/v1/{access_token}/claim/button",
        claim_button,
        methods=["POST"],
        response_model=ButtonPressed,
        responses=responses(Unauthenticated),
    )
    router.add_api_route(
        "/api/v1/{access_token}/claim",
        claim_window,
        methods=["POST"],
        response_model=ClaimWindowOpened,
        responses=responses(Unauthenticated, InvalidInput, DeviceAlreadyClaimed),
    )
    router.add_api_route(
        "/api/v1/{access_token}/association",
        user_association,
        methods=["POST"],
        response_model=Associated,
        responses=responses(Unauthenticated, ClaimClosed, DeviceAlreadyClaimed),
    )
    return router
