"""Request dependencies: the container and the authenticated operator."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Annotated, Protocol

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from provisiond.domain.tokens import ApiToken
from provisiond.errors import Unauthenticated
from provisiond.services.accounts import SessionPolicy
from provisiond.services.certificates import SignerCache
from provisiond.services.claim_hub import ClaimHub
from provisiond.services.claims.policy import ClaimPolicy
from provisiond.services.destinations import DestinationGuard
from provisiond.services.directory import authenticate_token
from provisiond.services.ocsp import OcspResponder
from provisiond.services.provisioning import ProvisionPolicy
from provisiond.services.ratelimit import RateLimiter
from provisiond.services.sealing import Sealer
from provisiond.settings import Settings
from provisiond.store.provision_writer import ProvisionWriter
from provisiond.store.uow import UnitOfWork

_bearer = HTTPBearer(auto_error=False, description="An operator token: `provisiond tokens create`")


class Container(Protocol):
    """What the app needs from the composition root (bootstrap.Container)."""

    settings: Settings
    limiter: RateLimiter
    signers: SignerCache
    hub: ClaimHub

    def uow(self) -> UnitOfWork: ...

    @property
    def provision_writer(self) -> ProvisionWriter: ...

    @property
    def provision_policy(self) -> ProvisionPolicy: ...

    @property
    def claim_policy(self) -> ClaimPolicy: ...

    @property
    def session_policy(self) -> SessionPolicy: ...

    @property
    def ocsp(self) -> OcspResponder: ...

    def now(self) -> datetime: ...

    def background(self) -> AbstractAsyncContextManager[object]:
        """The background loops of a server (outbox, broker accounts, webhooks)."""
        ...

    @property
    def broker_sealer(self) -> Sealer | None: ...

    @property
    def sealer(self) -> Sealer: ...

    @property
    def webhook_guard(self) -> DestinationGuard: ...

    @property
    def broker_name_keeper(self) -> Callable[[str], str] | None:
        """How the EMQX hook records a user name at a credential's first use (None: not)."""
        ...


def container_of(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


async def get_operator(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> ApiToken:
    secret = (
        credentials.credentials
        if credentials is not None and credentials.scheme.lower() == "bearer"
        else None
    )
    if secret is None:
        # ThingsBoard's REST clients send their bearer token in X-Authorization.
        scheme, _, value = request.headers.get("x-authorization", "").partition(" ")
        secret = value.strip() if scheme.lower() == "bearer" and value.strip() else None
    if secret is None:
        raise Unauthenticated("send an operator token: Authorization: Bearer pvd_…")
    c = container_of(request)
    return await authenticate_token(c.uow(), secret=secret, now=c.now())


async def get_container(request: Request) -> Container:
    # async: FastAPI runs a plain function dependency in a worker thread, on every request
    return container_of(request)


ContainerDep = Annotated[Container, Depends(get_container)]
OperatorDep = Annotated[ApiToken, Depends(get_operator)]


def actor(token: ApiToken) -> str:
    return f"token:{token.name}"
