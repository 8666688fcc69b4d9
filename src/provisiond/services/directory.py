"""Groups, users, the device-model catalogue and operator API tokens."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime

from provisiond.domain.catalog import DeviceModel, parse_model_description, parse_model_name
from provisiond.domain.events import EventType, NewEvent
from provisiond.domain.groups import Group, lineage, parse_group_path
from provisiond.domain.limits import PAGE_SIZE_DEFAULT
from provisiond.domain.scope import Scope
from provisiond.domain.tokens import PREFIX, ApiToken, TokenSpec, parse_expiry, parse_token_name
from provisiond.domain.users import Role, User, UserSpec, check_password, parse_email, parse_role
from provisiond.errors import (
    Forbidden,
    GroupExists,
    GroupNotEmpty,
    InvalidInput,
    ModelExists,
    ModelInUse,
    ModelNotFound,
    Problem,
    TokenExists,
    TokenNotFound,
    Unauthenticated,
    UserExists,
    UserNotFound,
)
from provisiond.services.hashing import hash_password_off_loop, hash_token, new_token
from provisiond.services.paging import Page, page_of, start
from provisiond.services.scoping import group_in_scope, require, require_group, require_operator
from provisiond.store.uow import UnitOfWork

# ----------------------------------------------------------------------------- groups


async def create_group(
    uow: UnitOfWork, *, scope: Scope, path: str, actor: str, now: datetime, exist_ok: bool = True
) -> tuple[Group, list[Group]]:
    """Create ``path`` and any missing parents (like ``mkdir -p``), within the caller's
    subtree.

    Returns the group and the groups created (empty when it existed and ``exist_ok``).
    """
    path = parse_group_path(path)
    require(scope, Role.ADMIN, "creating groups")
    require_group(scope, path, "creating a group")
    async with uow:
        uow.conflicts_as(GroupExists(f"group {path!r} was created at the same moment; retry"))
        existing = await uow.groups.find_many_by_path(lineage(path), lock=True)
        if path in existing and not exist_ok:
            raise GroupExists(f"group {path!r} already exists", path=path)
        created: list[Group] = []
        parent: Group | None = None
        for depth, step in enumerate(lineage(path)):
            group = existing.get(step)
            if group is None:
                group = Group(
                    uuid.uuid4(),
                    step.rsplit("/", 1)[-1],
                    step,
                    parent.id if parent else None,
                    depth,
                    now,
                )
                await uow.groups.add(group)
                await uow.events.add(
                    NewEvent(
                        EventType.GROUP_CREATED, now, actor, group_id=group.id, data={"path": step}
                    )
                )
                created.append(group)
            parent = group
        await uow.commit()
    if parent is None:  # lineage() of a valid path is never empty
        raise RuntimeError(f"group path {path!r} has no segments")
    return parent, created


async def get_group(uow: UnitOfWork, *, scope: Scope, path: str) -> Group:
    path = parse_group_path(path)
    async with uow.read():
        return await group_in_scope(uow, scope, path)


async def _listed_subtree(uow: UnitOfWork, scope: Scope, under: str | None) -> str | None:
    """The subtree a listing covers: ``under`` (which must be in scope), else the caller's
    whole scope (None: everything)."""
    if under is None:
        return scope.group_path
    return (await group_in_scope(uow, scope, parse_group_path(under))).path


async def list_groups(
    uow: UnitOfWork,
    *,
    scope: Scope,
    under: str | None = None,
    cursor: str | None = None,
    limit: int = PAGE_SIZE_DEFAULT,
) -> Page[tuple[Group, int]]:
    """A page of the groups in the caller's subtree (or the subtree ``under``) in path
    order, with the number of devices directly in each."""
    after = start(cursor, limit)
    async with uow.read():
        subtree = await _listed_subtree(uow, scope, under or None)
        groups = await uow.groups.list(subtree, after=after, limit=limit + 1)
        counts = await uow.groups.device_counts([g.id for g in groups[:limit]])
    return page_of([(g, counts.get(g.id, 0)) for g in groups], limit, lambda r: r[0].path)


async def delete_group(
    uow: UnitOfWork, *, scope: Scope, path: str, actor: str, now: datetime
) -> Group:
    """Delete an empty group: no subgroups, users, devices, profiles or unrevoked tokens
    (its revoked tokens go with it)."""
    path = parse_group_path(path)
    require(scope, Role.ADMIN, "deleting groups")
    async with uow:
        group = await group_in_scope(uow, scope, path)
        usage = await uow.groups.usage(group.id)
        if any(usage.values()):
            held = ", ".join(f"{n} {what}" for what, n in usage.items() if n)
            raise GroupNotEmpty(f"group {path!r} still has {held}", path=path, usage=usage)
        await uow.groups.delete(group.id)
        await uow.events.add(
            NewEvent(
                EventType.GROUP_DELETED,
                now,
                actor,
                group_id=group.id,
                group_path=group.path,
                data={"path": path},
            )
        )
        await uow.commit()
    return group


# ----------------------------------------------------------------------------- users


async def create_user(
    uow: UnitOfWork,
    *,
    scope: Scope,
    spec: UserSpec,
    actor: str,
    now: datetime,
) -> User:
    """A user in a group of the caller's subtree, with no higher role than the caller's; or,
    with no group, an operator-wide admin (made only by an operator-wide caller)."""
    email = parse_email(spec.email)
    parsed_role = parse_role(spec.role)
    password = spec.password
    check_password(password)
    path = parse_group_path(spec.group) if spec.group is not None else None
    require(scope, Role.ADMIN, "creating users")
    if path is None and parsed_role is not Role.ADMIN:
        raise InvalidInput(
            f"an operator-wide user is an admin, not a {parsed_role}: give a group",
            problems=[Problem("an installer or a viewer needs a group", field="group")],
        )
    _require_narrower(scope, Scope(parsed_role, path), "a user")
    password_hash = await hash_password_off_loop(password)  # slow: before the transaction
    async with uow:
        uow.conflicts_as(UserExists(f"a user {email!r} already exists", email=email))
        grp = await group_in_scope(uow, scope, path) if path is not None else None
        if await uow.users.find_by_email(email) is not None:
            raise UserExists(f"a user {email!r} already exists", email=email)
        user = User(
            uuid.uuid4(),
            email,
            parsed_role,
            grp.id if grp else None,
            grp.path if grp else None,
            now,
        )
        await uow.users.add(user, password_hash)
        await uow.events.add(
            NewEvent(
                EventType.USER_CREATED,
                now,
                actor,
                group_id=user.group_id,
                data={"email": email, "role": parsed_role.value, **_operator_wide(user)},
            )
        )
        await uow.commit()
    return user


async def set_user_disabled(
    uow: UnitOfWork, *, scope: Scope, email: str, disabled: bool, actor: str, now: datetime
) -> tuple[User, int]:
    """Disable a user (sign-in refused, every session ended at once) or enable them again;
    the user and how many sessions were ended. Idempotent: disabling a disabled user changes
    nothing and records nothing."""
    email = parse_email(email)
    require(scope, Role.ADMIN, "disabling and enabling users")
    async with uow:
        user = await uow.users.find_by_email(email)
        if user is None or not scope.covers(user.group_path):
            raise UserNotFound(f"no user {email!r}", email=email)
        if user.disabled == disabled:
            return user, 0
        await uow.users.set_disabled(user.id, now if disabled else None)
        ended = await uow.sessions.delete_for_user(user.id) if disabled else 0
        await uow.events.add(
            NewEvent(
                EventType.USER_DISABLED if disabled else EventType.USER_ENABLED,
                now,
                actor,
                group_id=user.group_id,
                data={"email": email, **({"sessions_ended": ended} if disabled else {})},
            )
        )
        await uow.commit()
    return replace(user, disabled_at=now if disabled else None), ended


async def list_users(
    uow: UnitOfWork,
    *,
    scope: Scope,
    under: str | None = None,
    cursor: str | None = None,
    limit: int = PAGE_SIZE_DEFAULT,
) -> Page[User]:
    """A page of the users of the caller's subtree (or of ``under``), in e-mail order."""
    after = start(cursor, limit)
    async with uow.read():
        subtree = await _listed_subtree(uow, scope, under or None)
        users = await uow.users.list(subtree, after=after, limit=limit + 1)
    return page_of(users, limit, lambda u: u.email)


# ----------------------------------------------------------------------------- models


async def add_model(
    uow: UnitOfWork, *, scope: Scope, name: str, description: str = "", actor: str, now: datetime
) -> DeviceModel:
    """Add a model to the catalogue (global: operator-wide admins only; everyone reads it)."""
    name = parse_model_name(name, field="name")
    description = parse_model_description(description)
    require_operator(scope, "changing the model catalogue")
    async with uow:
        uow.conflicts_as(ModelExists(f"model {name!r} already exists", name=name))
        if await uow.models.find_by_name(name) is not None:
            raise ModelExists(f"model {name!r} already exists", name=name)
        model = DeviceModel(uuid.uuid4(), name, description, now)
        await uow.models.add(model)
        await uow.events.add(
            NewEvent(
                EventType.MODEL_ADDED, now, actor, data={"name": name, "description": description}
            )
        )
        await uow.commit()
    return model


async def list_models(uow: UnitOfWork) -> list[DeviceModel]:
    async with uow.read():
        return await uow.models.list()


async def delete_model(
    uow: UnitOfWork, *, scope: Scope, name: str, actor: str, now: datetime
) -> DeviceModel:
    name = parse_model_name(name, field="name")
    require_operator(scope, "changing the model catalogue")
    async with uow:
        model = await uow.models.find_by_name(name)
        if model is None:
            raise ModelNotFound(f"no model {name!r} in the catalogue", name=name)
        count = await uow.models.device_count(model.id)
        if count:
            raise ModelInUse(f"{count} devices are of model {name!r}", name=name, devices=count)
        profiles = await uow.models.profile_count(model.id)
        if profiles:
            raise ModelInUse(
                f"{profiles} provisioning profiles create devices of model {name!r}",
                name=name,
                profiles=profiles,
            )
        await uow.models.delete(model.id)
        await uow.events.add(NewEvent(EventType.MODEL_DELETED, now, actor, data={"name": name}))
        await uow.commit()
    return model


# ----------------------------------------------------------------------------- API tokens


def _operator_wide(user: User) -> dict[str, bool]:
    """What an event about ``user`` adds when they are operator-wide (nothing otherwise)."""
    return {"operator_wide": True} if user.operator_wide else {}


def _require_narrower(scope: Scope, wanted: Scope, what: str) -> None:
    """A caller never makes a token or user broader than itself (a wider subtree or a higher
    role); a group outside its subtree is refused as missing by the lookup that follows."""
    if wanted.group_path is None and not scope.operator_wide:
        raise Forbidden(
            f"this caller's scope is the subtree {scope.group_path!r}: it cannot "
            f"make {what} that is operator-wide; name a group within it"
        )
    if not scope.may(wanted.role):
        raise Forbidden(
            f"a {scope.role} cannot make {what} with the {wanted.role} role", role=scope.role.value
        )


async def create_token(
    uow: UnitOfWork,
    *,
    scope: Scope,
    spec: TokenSpec,
    not_after: datetime | None = None,
    actor: str,
    now: datetime,
) -> tuple[ApiToken, str]:
    """A new operator token with a role over a group's subtree (None: operator-wide) and an
    optional expiry. The secret is returned here and never again.

    It is never broader than the caller: within its subtree, no higher role, and expiring
    no later than ``not_after`` (the calling token's own expiry, which it inherits when
    ``expires`` is absent).
    """
    name = parse_token_name(spec.name)
    parsed_role = parse_role(spec.role)
    path = parse_group_path(spec.group) if spec.group else None
    expires_at = parse_expiry(spec.expires, now=now) if spec.expires else not_after
    require(scope, Role.ADMIN, "creating tokens")
    _require_narrower(scope, Scope(parsed_role, path), "a token")
    if not_after is not None and (expires_at is None or expires_at > not_after):
        raise Forbidden(
            "this token expires at " + not_after.isoformat() + ": it cannot make "
            "a token that outlives it"
        )
    secret, secret_hash = new_token(PREFIX, 32)
    async with uow:
        uow.conflicts_as(TokenExists(f"a token {name!r} already exists", name=name))
        grp = await group_in_scope(uow, scope, path) if path else None
        if await uow.tokens.find_by_name(name) is not None:
            raise TokenExists(f"a token {name!r} already exists", name=name)
        token = ApiToken(
            uuid.uuid4(),
            name,
            now,
            role=parsed_role,
            group_path=grp.path if grp else None,
            expires_at=expires_at,
        )
        await uow.tokens.add(token, secret_hash, grp.id if grp else None)
        await uow.events.add(
            NewEvent(
                EventType.TOKEN_CREATED,
                now,
                actor,
                group_id=grp.id if grp else None,
                data={
                    "name": name,
                    "role": parsed_role.value,
                    "group": token.group_path,
                    "expires_at": expires_at.isoformat() if expires_at else None,
                },
            )
        )
        await uow.commit()
    return token, secret


async def list_tokens(
    uow: UnitOfWork, *, scope: Scope, cursor: str | None = None, limit: int = PAGE_SIZE_DEFAULT
) -> Page[ApiToken]:
    """A page of the tokens scoped within the caller's subtree (all for an operator-wide
    caller), in name order; revoked and expired ones included."""
    after = start(cursor, limit)
    async with uow.read():
        tokens = await uow.tokens.list(scope.group_path, after=after, limit=limit + 1)
    return page_of(tokens, limit, lambda t: t.name)


async def revoke_token(
    uow: UnitOfWork, *, scope: Scope, name: str, actor: str, now: datetime
) -> ApiToken:
    name = parse_token_name(name)
    require(scope, Role.ADMIN, "revoking tokens")
    async with uow:
        token = await uow.tokens.find_by_name(name)
        if token is None or token.revoked_at is not None or not scope.covers(token.group_path):
            raise TokenNotFound(f"no active token {name!r}", name=name)
        await uow.tokens.revoke(token.id, now)
        await uow.events.add(
            NewEvent(
                EventType.TOKEN_REVOKED,
                now,
                actor,
                group_path=token.group_path,
                data={"name": name},
            )
        )
        await uow.commit()
    return token


async def authenticate_token(uow: UnitOfWork, *, secret: str, now: datetime) -> ApiToken:
    """The active token whose secret this is, or Unauthenticated.

    Found by its SHA-256, so the secret itself is never compared. An expired token is
    refused as an unknown one. ``last_used_at`` is refreshed at most once a minute, so
    authenticated reads do not all become writes.
    """
    if not secret.startswith(PREFIX):
        raise Unauthenticated("the bearer token is not a provisiond API token")
    token_hash = hash_token(secret)
    async with uow.read():
        token = await uow.tokens.find_active_by_hash(token_hash)
    if token is None or (token.expires_at is not None and token.expires_at <= now):
        raise Unauthenticated("the bearer token is unknown, revoked or expired")
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        async with uow:
            await uow.tokens.touch(token.id, now)
            await uow.commit()
    return token
