"""Request dependencies: the container and the authenticated operator."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from provisiond.domain.tokens import ApiToken
from provisiond.errors import Unauthenticated
from provisiond.services.container import Container
from provisiond.services.directory import authenticate_token

_bearer = HTTPBearer(auto_error=False, description="An operator token: `provisiond tokens create`")


def container_of(request: Request) -> Container:
    """The running container (set by the app's lifespan), by its typed interface."""
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
