"""/api/v1/groups, /users, /models, /tokens."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response, status

from provisiond.errors import (
    Forbidden,
    GroupExists,
    GroupNotEmpty,
    GroupNotFound,
    ModelExists,
    ModelInUse,
    ModelNotFound,
    TokenExists,
    TokenNotFound,
    UserExists,
    UserNotFound,
)
from provisiond.services import directory
from provisiond.web.api.paging import LIMIT, Cursor, Limit, link_next
from provisiond.web.api.schemas import (
    GroupCreate,
    GroupCreated,
    GroupPage,
    GroupRead,
    ModelCreate,
    ModelRead,
    TokenCreate,
    TokenCreated,
    TokenPage,
    TokenRead,
    UserCreate,
    UserDisabled,
    UserPage,
    UserRead,
)
from provisiond.web.deps import ContainerDep, OperatorDep, actor
from provisiond.web.problems import responses

router = APIRouter(prefix="/api/v1")
Under = Query(None, description="only this group's subtree (within the token's)")


@router.post(
    "/groups",
    status_code=201,
    response_model=GroupCreated,
    tags=["groups"],
    responses=responses(GroupExists, Forbidden),
)
async def create_group(
    body: GroupCreate, c: ContainerDep, op: OperatorDep, response: Response
) -> GroupCreated:
    """Create a group and any missing parents (like `mkdir -p`); 200 when it existed. A
    scoped admin token creates groups within its subtree."""
    group, created = await directory.create_group(
        c.uow(), scope=op.scope, path=body.path, actor=actor(op), now=c.now()
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return GroupCreated(**GroupRead.of(group).model_dump(), created=[g.path for g in created])


@router.get(
    "/groups", response_model=GroupPage, tags=["groups"], responses=responses(GroupNotFound)
)
async def list_groups(
    request: Request,
    response: Response,
    c: ContainerDep,
    op: OperatorDep,
    under: str | None = Under,
    cursor: Cursor = None,
    limit: Limit = LIMIT,
) -> GroupPage:
    """The groups of the token's subtree in path order, with the number of devices directly
    in each."""
    page = await directory.list_groups(
        c.uow(), scope=op.scope, under=under, cursor=cursor, limit=limit
    )
    link_next(request, response, page.next_cursor)
    return GroupPage(
        items=[GroupRead.of(g, n) for g, n in page.items], next_cursor=page.next_cursor
    )


@router.delete(
    "/groups/{path:path}",
    status_code=204,
    tags=["groups"],
    responses=responses(GroupNotFound, GroupNotEmpty, Forbidden),
)
async def delete_group(path: str, c: ContainerDep, op: OperatorDep) -> Response:
    """Delete an empty group (no subgroups, users, devices, profiles or unrevoked tokens)."""
    await directory.delete_group(c.uow(), scope=op.scope, path=path, actor=actor(op), now=c.now())
    return Response(status_code=204)


@router.post(
    "/users",
    status_code=201,
    response_model=UserRead,
    tags=["users"],
    responses=responses(GroupNotFound, UserExists, Forbidden),
)
async def create_user(body: UserCreate, c: ContainerDep, op: OperatorDep) -> UserRead:
    """Create a user (the password is hashed with argon2 and never returned), in a group of
    the token's subtree, with no higher role than the token's."""
    user = await directory.create_user(
        c.uow(),
        scope=op.scope,
        spec=body.spec(),
        actor=actor(op),
        now=c.now(),
    )
    return UserRead.of(user)


@router.post(
    "/users/{email}/disable",
    response_model=UserDisabled,
    tags=["users"],
    responses=responses(UserNotFound, Forbidden),
)
async def disable_user(email: str, c: ContainerDep, op: OperatorDep) -> UserDisabled:
    """Disable a user: sign-in is refused and every session of theirs ends at once (a person
    who left, a rogue installer). What they did stays in the audit log; their devices stay
    theirs until released."""
    user, ended = await directory.set_user_disabled(
        c.uow(), scope=op.scope, email=email, disabled=True, actor=actor(op), now=c.now()
    )
    return UserDisabled(**UserRead.of(user).model_dump(), sessions_ended=ended)


@router.post(
    "/users/{email}/enable",
    response_model=UserRead,
    tags=["users"],
    responses=responses(UserNotFound, Forbidden),
)
async def enable_user(email: str, c: ContainerDep, op: OperatorDep) -> UserRead:
    """Let a disabled user sign in again."""
    user, _ = await directory.set_user_disabled(
        c.uow(), scope=op.scope, email=email, disabled=False, actor=actor(op), now=c.now()
    )
    return UserRead.of(user)


@router.get("/users", response_model=UserPage, tags=["users"], responses=responses(GroupNotFound))
async def list_users(
    request: Request,
    response: Response,
    c: ContainerDep,
    op: OperatorDep,
    under: str | None = Under,
    cursor: Cursor = None,
    limit: Limit = LIMIT,
) -> UserPage:
    """The users of the token's subtree in e-mail order."""
    page = await directory.list_users(
        c.uow(), scope=op.scope, under=under, cursor=cursor, limit=limit
    )
    link_next(request, response, page.next_cursor)
    return UserPage(items=[UserRead.of(u) for u in page.items], next_cursor=page.next_cursor)


@router.post(
    "/models",
    status_code=201,
    response_model=ModelRead,
    tags=["models"],
    responses=responses(ModelExists, Forbidden),
)
async def add_model(body: ModelCreate, c: ContainerDep, op: OperatorDep) -> ModelRead:
    """Add a device model to the catalogue (operator-wide admin tokens only)."""
    model = await directory.add_model(
        c.uow(),
        scope=op.scope,
        name=body.name,
        description=body.description,
        actor=actor(op),
        now=c.now(),
    )
    return ModelRead.of(model)


@router.get("/models", response_model=list[ModelRead], tags=["models"])
async def list_models(c: ContainerDep, _: OperatorDep) -> list[ModelRead]:
    """The model catalogue (global: every token reads it)."""
    return [ModelRead.of(m) for m in await directory.list_models(c.uow())]


@router.delete(
    "/models/{name}",
    status_code=204,
    tags=["models"],
    responses=responses(ModelNotFound, ModelInUse, Forbidden),
)
async def delete_model(name: str, c: ContainerDep, op: OperatorDep) -> Response:
    """Remove a model that no device uses (operator-wide admin tokens only)."""
    await directory.delete_model(c.uow(), scope=op.scope, name=name, actor=actor(op), now=c.now())
    return Response(status_code=204)


@router.post(
    "/tokens",
    status_code=201,
    response_model=TokenCreated,
    tags=["tokens"],
    responses=responses(TokenExists, GroupNotFound, Forbidden),
)
async def create_token(body: TokenCreate, c: ContainerDep, op: OperatorDep) -> TokenCreated:
    """Create another operator token, never broader than the caller: within its subtree,
    no higher role, expiring no later. Its secret is in this answer only."""
    token, secret = await directory.create_token(
        c.uow(),
        scope=op.scope,
        spec=body.spec(),
        not_after=op.expires_at,
        actor=actor(op),
        now=c.now(),
    )
    return TokenCreated(**TokenRead.of(token).model_dump(), secret=secret)


@router.get("/tokens", response_model=TokenPage, tags=["tokens"])
async def list_tokens(
    request: Request,
    response: Response,
    c: ContainerDep,
    op: OperatorDep,
    cursor: Cursor = None,
    limit: Limit = LIMIT,
) -> TokenPage:
    """The tokens scoped within the caller's subtree (every token for an operator-wide
    one), with their scope, in name order."""
    page = await directory.list_tokens(c.uow(), scope=op.scope, cursor=cursor, limit=limit)
    link_next(request, response, page.next_cursor)
    return TokenPage(items=[TokenRead.of(t) for t in page.items], next_cursor=page.next_cursor)


@router.delete(
    "/tokens/{name}",
    status_code=204,
    tags=["tokens"],
    responses=responses(TokenNotFound, Forbidden),
)
async def revoke_token(name: str, c: ContainerDep, op: OperatorDep) -> Response:
    """Revoke a token of the caller's subtree at once (it can be the caller's own)."""
    await directory.revoke_token(c.uow(), scope=op.scope, name=name, actor=actor(op), now=c.now())
    return Response(status_code=204)
