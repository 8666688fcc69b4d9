"""/api/v1/profiles: provisioning profiles."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from provisiond.errors import (
    CaNotFound,
    Forbidden,
    GroupNotFound,
    ModelNotFound,
    ProfileExists,
    ProfileNotFound,
)
from provisiond.services import profiles as service
from provisiond.web.api.paging import LIMIT, Cursor, Limit, link_next
from provisiond.web.api.schemas import (
    ProfileCreate,
    ProfileJwtKey,
    ProfilePage,
    ProfileRead,
    ProfileSecret,
    ProfileUpdate,
    ProfileWithSecret,
)
from provisiond.web.deps import ContainerDep, OperatorDep, actor
from provisiond.web.problems import responses

router = APIRouter(prefix="/api/v1", tags=["profiles"])


def _with_secret(made: service.ProfileWithSecret) -> ProfileWithSecret:
    return ProfileWithSecret(**ProfileRead.of(made.profile).model_dump(), secret=made.secret)


@router.post(
    "/profiles",
    status_code=201,
    response_model=ProfileWithSecret,
    responses=responses(ProfileExists, GroupNotFound, ModelNotFound, CaNotFound, Forbidden),
)
async def create_profile(
    body: ProfileCreate, c: ContainerDep, op: OperatorDep
) -> ProfileWithSecret:
    """Create a provisioning profile. Its secret is in this answer only. A scoped admin
    token creates profiles for groups of its subtree."""
    made = await service.create_profile(
        c.uow(), scope=op.scope, spec=body.spec(), sealer=c.sealer, actor=actor(op), now=c.now()
    )
    return _with_secret(made)


@router.get("/profiles", response_model=ProfilePage)
async def list_profiles(
    request: Request,
    response: Response,
    c: ContainerDep,
    op: OperatorDep,
    cursor: Cursor = None,
    limit: Limit = LIMIT,
) -> ProfilePage:
    """The profiles of the token's subtree in name order (never a secret); profiles without
    a group are listed to operator-wide tokens only."""
    page = await service.list_profiles(c.uow(), scope=op.scope, cursor=cursor, limit=limit)
    link_next(request, response, page.next_cursor)
    return ProfilePage(items=[ProfileRead.of(p) for p in page.items], next_cursor=page.next_cursor)


@router.get("/profiles/{name}", response_model=ProfileRead, responses=responses(ProfileNotFound))
async def get_profile(name: str, c: ContainerDep, op: OperatorDep) -> ProfileRead:
    return ProfileRead.of(await service.get_profile(c.uow(), scope=op.scope, name=name))


@router.patch(
    "/profiles/{name}",
    response_model=ProfileRead,
    responses=responses(ProfileNotFound, CaNotFound, Forbidden),
)
async def update_profile(
    name: str, body: ProfileUpdate, c: ContainerDep, op: OperatorDep
) -> ProfileRead:
    """Change the profile (what is absent stays): its reprovisioning policy, the shortest
    token or password a device may choose, its device CA (null removes it), the CA that
    signs its devices' CSRs (null removes it) and their certificates' lifetime, its claim
    proof and window (null: the instance's default) and release policy."""
    return ProfileRead.of(
        await service.update_profile(
            c.uow(), scope=op.scope, name=name, changes=body.changes(), actor=actor(op), now=c.now()
        )
    )


@router.post(
    "/profiles/{name}/disable",
    response_model=ProfileRead,
    responses=responses(ProfileNotFound, Forbidden),
)
async def disable_profile(name: str, c: ContainerDep, op: OperatorDep) -> ProfileRead:
    """Stop the profile: devices presenting its key and secret are refused. Idempotent."""
    return ProfileRead.of(
        await service.set_profile_enabled(
            c.uow(), scope=op.scope, name=name, enabled=False, actor=actor(op), now=c.now()
        )
    )


@router.post(
    "/profiles/{name}/enable",
    response_model=ProfileRead,
    responses=responses(ProfileNotFound, Forbidden),
)
async def enable_profile(name: str, c: ContainerDep, op: OperatorDep) -> ProfileRead:
    """Let the profile provision again. Idempotent."""
    return ProfileRead.of(
        await service.set_profile_enabled(
            c.uow(), scope=op.scope, name=name, enabled=True, actor=actor(op), now=c.now()
        )
    )


@router.post(
    "/profiles/{name}/rotate-secret",
    response_model=ProfileWithSecret,
    responses=responses(ProfileNotFound, Forbidden),
)
async def rotate_secret(
    name: str, c: ContainerDep, op: OperatorDep, body: ProfileSecret | None = None
) -> ProfileWithSecret:
    """A new secret (generated unless given), in this answer only; the old one stops
    working at once."""
    made = await service.rotate_profile_secret(
        c.uow(),
        scope=op.scope,
        name=name,
        secret=body.secret if body else None,
        sealer=c.sealer,
        actor=actor(op),
        now=c.now(),
    )
    return _with_secret(made)


@router.put(
    "/profiles/{name}/jwt-key",
    response_model=ProfileRead,
    responses=responses(ProfileNotFound, Forbidden),
)
async def set_jwt_key(
    name: str, body: ProfileJwtKey, c: ContainerDep, op: OperatorDep
) -> ProfileRead:
    """Register, replace or (null) remove the ES256 public key of registration tokens."""
    return ProfileRead.of(
        await service.set_profile_jwt_key(
            c.uow(),
            scope=op.scope,
            name=name,
            public_key=body.public_key,
            actor=actor(op),
            now=c.now(),
        )
    )
