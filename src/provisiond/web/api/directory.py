"""/api/v1/groups, /users, /models, /tokens."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response, status

from provisiond.errors import (
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
from provisiond.web.api.schemas import (
    GroupCreate,
    GroupCreated,
    GroupRead,
    ModelCreate,
    ModelRead,
    TokenCreate,
    TokenCreated,
    TokenRead,
    UserCreate,
    UserDisabled,
    UserRead,
)
from provisiond.web.deps import ContainerDep, OperatorDep, actor
from provisiond.web.problems import responses

router = APIRouter(prefix="/api/v1")
Under = Query(None, description="only this group's subtree")


@router.post("/groups", status_code=201, response_model=GroupCreated, tags=["groups"],
             responses=responses(GroupExists))
async def create_group(body: GroupCreate, c: ContainerDep, op: OperatorDep,
                       response: Response) -> GroupCreated:
    """Create a group and any missing parents (like `mkdir -p`); 200 when it existed."""
    group, created = await directory.create_group(c.uow(), path=body.path, actor=actor(op),
                                                  now=c.now())
    if not created:
        response.status_code = status.HTTP_200_OK
    return GroupCreated(**GroupRead.of(group).model_dump(), created=[g.path for g in created])


@router.get("/groups", response_model=list[GroupRead], tags=["groups"],
            responses=responses(GroupNotFound))
async def list_groups(c: ContainerDep, _: OperatorDep, under: str | None = Under
                      ) -> list[GroupRead]:
    """The group tree in path order, with the number of devices directly in each group."""
    rows = await directory.list_groups(c.uow(), under=under)
    return [GroupRead.of(g, n) for g, n in rows]


@router.delete("/groups/{path:path}", status_code=204, tags=["groups"],
               responses=responses(GroupNotFound, GroupNotEmpty))
async def delete_group(path: str, c: ContainerDep, op: OperatorDep) -> Response:
    """Delete an empty group (no subgroups, users or devices)."""
    await directory.delete_group(c.uow(), path=path, actor=actor(op), now=c.now())
    return Response(status_code=204)


@router.post("/users", status_code=201, response_model=UserRead, tags=["users"],
             responses=responses(GroupNotFound, UserExists))
async def create_user(body: UserCreate, c: ContainerDep, op: OperatorDep) -> UserRead:
    """Create a user (the password is hashed with argon2 and never returned)."""
    user = await directory.create_user(c.uow(), email=body.email, password=body.password,
                                       role=body.role, group=body.group, actor=actor(op),
                                       now=c.now())
    return UserRead.of(user)


@router.post("/users/{email}/disable", response_model=UserDisabled, tags=["users"],
             responses=responses(UserNotFound))
async def disable_user(email: str, c: ContainerDep, op: OperatorDep) -> UserDisabled:
    """Disable a user: sign-in is refused and every session of theirs ends at once (a person
    who left, a rogue installer). What they did stays in the audit log; their devices stay
    theirs until released."""
    user, ended = await directory.set_user_disabled(c.uow(), email=email, disabled=True,
                                                    actor=actor(op), now=c.now())
    return UserDisabled(**UserRead.of(user).model_dump(), sessions_ended=ended)


@router.post("/users/{email}/enable", response_model=UserRead, tags=["users"],
             responses=responses(UserNotFound))
async def enable_user(email: str, c: ContainerDep, op: OperatorDep) -> UserRead:
    """Let a disabled user sign in again."""
    user, _ = await directory.set_user_disabled(c.uow(), email=email, disabled=False,
                                                actor=actor(op), now=c.now())
    return UserRead.of(user)


@router.get("/users", response_model=list[UserRead], tags=["users"])
async def list_users(c: ContainerDep, _: OperatorDep, under: str | None = Under
                     ) -> list[UserRead]:
    return [UserRead.of(u) for u in await directory.list_users(c.uow(), under=under)]


@router.post("/models", status_code=201, response_model=ModelRead, tags=["models"],
             responses=responses(ModelExists))
async def add_model(body: ModelCreate, c: ContainerDep, op: OperatorDep) -> ModelRead:
    """Add a device model to the catalogue."""
    model = await directory.add_model(c.uow(), name=body.name, description=body.description,
                                      actor=actor(op), now=c.now())
    return ModelRead.of(model)


@router.get("/models", response_model=list[ModelRead], tags=["models"])
async def list_models(c: ContainerDep, _: OperatorDep) -> list[ModelRead]:
    return [ModelRead.of(m) for m in await directory.list_models(c.uow())]


@router.delete("/models/{name}", status_code=204, tags=["models"],
               responses=responses(ModelNotFound, ModelInUse))
async def delete_model(name: str, c: ContainerDep, op: OperatorDep) -> Response:
    """Remove a model that no device uses."""
    await directory.delete_model(c.uow(), name=name, actor=actor(op), now=c.now())
    return Response(status_code=204)


@router.post("/tokens", status_code=201, response_model=TokenCreated, tags=["tokens"],
             responses=responses(TokenExists))
async def create_token(body: TokenCreate, c: ContainerDep, op: OperatorDep) -> TokenCreated:
    """Create another operator token; its secret is in this answer only."""
    token, secret = await directory.create_token(c.uow(), name=body.name, actor=actor(op),
                                                 now=c.now())
    return TokenCreated(**TokenRead.of(token).model_dump(), secret=secret)


@router.get("/tokens", response_model=list[TokenRead], tags=["tokens"])
async def list_tokens(c: ContainerDep, _: OperatorDep) -> list[TokenRead]:
    return [TokenRead.of(t) for t in await directory.list_tokens(c.uow())]


@router.delete("/tokens/{name}", status_code=204, tags=["tokens"],
               responses=responses(TokenNotFound))
async def revoke_token(name: str, c: ContainerDep, op: OperatorDep) -> Response:
    """Revoke a token at once (it can be the caller's own)."""
    await directory.revoke_token(c.uow(), name=name, actor=actor(op), now=c.now())
    return Response(status_code=204)
