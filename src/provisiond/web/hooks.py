"""EMQX's HTTP authentication and authorisation hooks (``broker__kind=emqx``).

Configure EMQX 5 with an HTTP authenticator ``POST http://PROVISIOND/hooks/emqx/authn``,
body ``{"username": "${username}", "password": "${password}", "clientid": "${clientid}"}``,
and an HTTP authoriser ``POST http://PROVISIOND/hooks/emqx/authz``, body
``{"username": "${username}", "clientid": "${clientid}", "topic": "${topic}",
"action": "${action}"}`` (docs/integrations.md has the whole configuration). Both answer 200
with ``{"result": "allow"|"deny"|"ignore"}``; authentication also gives the device's ACL
(EMQX 5.8+), its id as a client attribute and ``expire_at``, when the session must
authenticate again (``broker__session_max_seconds``). A body without ``clientid`` is refused
(422, naming the field): a configuration that forgot ``${clientid}`` would otherwise let an
MQTT-basic credential connect under any client id. With ``broker__hook_secret`` set, EMQX
must send ``Authorization: Bearer <secret>``; without, only loopback callers are answered.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from provisiond.domain.broker import device_acl, session_expiry, topic_prefix
from provisiond.errors import Forbidden, InvalidInput, Problem, RouteNotFound, Unauthenticated
from provisiond.services.mqtt_auth import Asker, Verdict, authenticate, authorise
from provisiond.settings import BrokerKind, BrokerSettings
from provisiond.web.client_address import forwarded
from provisiond.web.deps import ContainerDep
from provisiond.web.problems import responses

router = APIRouter(prefix="/hooks/emqx", tags=["broker hooks"])


CLIENT_ID = Field(
    description="`${clientid}`: required, so that MQTT-basic credentials "
    "stay bound to their client id",
    max_length=65535,
)


def _filled(value: str | None) -> str | None:
    """A placeholder EMQX did not fill in (``${…}`` sent as it is) is a mistake in the
    configuration, not a value."""
    if value is not None and value.startswith("${") and value.endswith("}"):
        raise ValueError(
            f"is the placeholder {value} itself: EMQX did not fill it in "
            "(check its spelling in EMQX's configuration)"
        )
    return value


class AuthnRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    username: str | None = None
    password: str | None = None
    clientid: str = CLIENT_ID

    _placeholders = field_validator("username", "clientid")(_filled)


class AuthzRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    username: str | None = None
    clientid: str = CLIENT_ID
    topic: str = Field(min_length=1, max_length=65535)
    action: str | None = Field(None, description="publish or subscribe")

    _placeholders = field_validator("username", "clientid")(_filled)


class HookAnswer(BaseModel):
    result: str = Field(description="allow, deny or ignore")
    is_superuser: bool = False
    client_attrs: dict[str, str] | None = None
    acl: list[dict[str, Any]] | None = None
    expire_at: int | None = Field(
        None, description="Unix seconds: when the session must authenticate again (EMQX 5.8+)"
    )


def _check_caller(request: Request, c: Any) -> None:
    b = c.settings.broker
    if b.kind is not BrokerKind.EMQX:
        raise RouteNotFound(f"nothing at {request.url.path} (broker__kind is not emqx)")
    if b.hook_secret is not None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), b.hook_secret.get_secret_value().encode()
        ):
            raise Unauthenticated("send Authorization: Bearer <broker__hook_secret>")
        return
    host = request.client.host if request.client else ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    # a request a proxy forwarded is not the local broker, even when the proxy is local
    if not loopback or forwarded(request.headers):
        raise Forbidden("set broker__hook_secret to answer hooks from other hosts")


async def _body(request: Request, model: type[BaseModel]) -> Any:
    try:
        return model.model_validate(orjson.loads(await request.body()))
    except orjson.JSONDecodeError as err:
        raise InvalidInput(f"the body is not JSON: {err}") from None
    except ValidationError as err:
        problems = [
            Problem(e["msg"], field=".".join(map(str, e["loc"])) or None) for e in err.errors()
        ]
        raise InvalidInput("the body is not a hook request", problems=problems) from None


def _asker(b: BrokerSettings, username: str | None, client_id: str) -> Asker:
    return Asker(username or "", client_id, b.token_as_username)


def _answer(body: HookAnswer) -> Response:
    return Response(orjson.dumps(body.model_dump(exclude_none=True)), media_type="application/json")


@router.post(
    "/authn",
    response_model=HookAnswer,
    responses=responses(InvalidInput, Unauthenticated, Forbidden),
)
async def emqx_authn(request: Request, c: ContainerDep) -> Response:
    """EMQX asks whether a connecting client is a device (HTTP authentication)."""
    _check_caller(request, c)
    body: AuthnRequest = await _body(request, AuthnRequest)
    b = c.settings.broker
    now = c.now()
    verdict, device = await authenticate(
        c.uow(),
        asker=_asker(b, body.username, body.clientid),
        password=body.password,
        now=now,
        keep_name=c.broker_name_keeper,
    )
    if verdict is not Verdict.ALLOW or device is None:
        return _answer(HookAnswer(result=verdict.value))
    prefix = topic_prefix(b.topic_prefix, device.device_id)
    return _answer(
        HookAnswer(
            result="allow",
            client_attrs={"device_id": str(device.device_id), "serial": device.serial},
            acl=device_acl(prefix),
            expire_at=session_expiry(now, b.session_max_seconds, body.clientid),
        )
    )


@router.post(
    "/authz",
    response_model=HookAnswer,
    responses=responses(InvalidInput, Unauthenticated, Forbidden),
)
async def emqx_authz(request: Request, c: ContainerDep) -> Response:
    """EMQX asks whether a client may publish or subscribe to a topic (authorisation)."""
    _check_caller(request, c)
    body: AuthzRequest = await _body(request, AuthzRequest)
    b = c.settings.broker
    verdict = await authorise(
        c.uow(),
        asker=_asker(b, body.username, body.clientid),
        topic=body.topic,
        prefix_template=b.topic_prefix,
    )
    return _answer(HookAnswer(result=verdict.value))
