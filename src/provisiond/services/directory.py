"""Groups, users, the device-model catalogue and operator API tokens."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime

from provisiond.domain.catalog import DeviceModel, parse_model_description, parse_model_name
from provisiond.domain.events import EventType, NewEvent
from provisiond.domain.groups import Group, lineage, parse_group_path
from provisiond.domain.tokens import PREFIX, ApiToken, parse_token_name
from provisiond.domain.users import User, check_password, parse_email, parse_role
from provisiond.errors import (
    GroupExists,
    GroupNotEmpty,
    GroupNotFound,
    ModelExists,
    ModelInUse,
    ModelNotFound,
    TokenExists,
    TokenNotFound,
    Unauthenticated,
    UserExists,
    UserNotFound,
)
from provisiond.services.hashing import hash_password_off_loop, hash_token, new_token
from provisiond.store.uow import UnitOfWork

# ----------------------------------------------------------------------------- groups


async def create_group(uow: UnitOfWork, *, path: str, actor: str, now: datetime,
                       exist_ok: bool = True) -> tuple[Group, list[Group]]:
    """Create ``path`` and any missing parents (like ``mkdir -p``).

    Returns the group and the groups created (empty when it existed and ``exist_ok``).
    """
    path = parse_group_path(path)
    async with uow:
        uow.conflicts_as(GroupExists(f"group {path!r} was created at the same moment; retry"))
        existing = await uow.groups.find_many_by_path(lineage(path))
        if path in existing and not exist_ok:
            raise GroupExists(f"group {path!r} already exists", path=path)
        created: list[Group] = []
        parent: Group | None = None
        for depth, step in enumerate(lineage(path)):
            group = existing.get(step)
            if group is None:
                group = Group(uuid.uuid4(), step.rsplit("/", 1)[-1], step,
                              parent.id if parent else None, depth, now)
                await uow.groups.add(group)
                await uow.events.add(NewEvent(EventType.GROUP_CREATED, now, actor,
                                              group_id=group.id, data={"path": step}))
                created.append(group)
            parent = group
        await uow.commit()
    if parent is None:  # lineage() of a valid path is never empty
        raise RuntimeError(f"group path {path!r} has no segments")
    return parent, created


async def get_group(uow: UnitOfWork, *, path: str) -> Group:
    path = parse_group_path(path)
    async with uow.read():
        group = await uow.groups.find_by_path(path)
    if group is None:
        raise GroupNotFound(f"no group {path!r}", path=path)
    return group


async def list_groups(uow: UnitOfWork, *, under: str | None = None
                      ) -> list[tuple[Group, int]]:
    """Groups (optionally one subtree) with the number of devices directly in each."""
    under = parse_group_path(under) if under else None
    async with uow.read():
        if under is not None and await uow.groups.find_by_path(under) is None:
            raise GroupNotFound(f"no group {under!r}", path=under)
        groups = await uow.groups.list(under)
        counts = await uow.groups.device_counts(under)
    return [(g, counts.get(g.id, 0)) for g in groups]


async def delete_group(uow: UnitOfWork, *, path: str, actor: str, now: datetime) -> Group:
    path = parse_group_path(path)
    async with uow:
        group = await uow.groups.find_by_path(path)
        if group is None:
            raise GroupNotFound(f"no group {path!r}", path=path)
        usage = await uow.groups.usage(group.id)
        if any(usage.values()):
            held = ", ".join(f"{n} {what}" for what, n in usage.items() if n)
            raise GroupNotEmpty(f"group {path!r} still has {held}", path=path, usage=usage)
        await uow.groups.delete(group.id)
        await uow.events.add(NewEvent(EventType.GROUP_DELETED, now, actor, group_id=group.id,
                                      group_path=group.path, data={"path": path}))
        await uow.commit()
    return group


# ----------------------------------------------------------------------------- users


async def create_user(uow: UnitOfWork, *, email: str, password: str, role: str, group: str,
                      actor: str, now: datetime) -> User:
    email = parse_email(email)
    parsed_role = parse_role(role)
    check_password(password)
    path = parse_group_path(group)
    password_hash = await hash_password_off_loop(password)  # slow: before the transaction
    async with uow:
        uow.conflicts_as(UserExists(f"a user {email!r} already exists", email=email))
        grp = await uow.groups.find_by_path(path)
        if grp is None:
            raise GroupNotFound(f"no group {path!r}", path=path)
        if await uow.users.find_by_email(email) is not None:
            raise UserExists(f"a user {email!r} already exists", email=email)
        user = User(uuid.uuid4(), email, parsed_role, grp.id, grp.path, now)
        await uow.users.add(user, password_hash)
        await uow.events.add(NewEvent(EventType.USER_CREATED, now, actor, group_id=grp.id,
                                      data={"email": email, "role": parsed_role.value}))
        await uow.commit()
    return user


async def set_user_disabled(uow: UnitOfWork, *, email: str, disabled: bool, actor: str,
                            now: datetime) -> tuple[User, int]:
    """Disable a user (sign-in refused, every session ended at once) or enable them again;
    the user and how many sessions were ended. Idempotent: disabling a disabled user changes
    nothing and records nothing."""
    email = parse_email(email)
    async with uow:
        user = await uow.users.find_by_email(email)
        if user is None:
            raise UserNotFound(f"no user {email!r}", email=email)
        if user.disabled == disabled:
            return user, 0
        await uow.users.set_disabled(user.id, now if disabled else None)
        ended = await uow.sessions.delete_for_user(user.id) if disabled else 0
        await uow.events.add(NewEvent(
            EventType.USER_DISABLED if disabled else EventType.USER_ENABLED, now, actor,
            group_id=user.group_id, data={"email": email, **(
                {"sessions_ended": ended} if disabled else {})}))
        await uow.commit()
    return replace(user, disabled_at=now if disabled else None), ended


async def list_users(uow: UnitOfWork, *, under: str | None = None) -> list[User]:
    under = parse_group_path(under) if under else None
    async with uow.read():
        return await uow.users.list(under)


# ----------------------------------------------------------------------------- models


async def add_model(uow: UnitOfWork, *, name: str, description: str = "", actor: str,
                    now: datetime) -> DeviceModel:
    name = parse_model_name(name, field="name")
    description = parse_model_description(description)
    async with uow:
        uow.conflicts_as(ModelExists(f"model {name!r} already exists", name=name))
        if await uow.models.find_by_name(name) is not None:
            raise ModelExists(f"model {name!r} already exists", name=name)
        model = DeviceModel(uuid.uuid4(), name, description, now)
        await uow.models.add(model)
        await uow.events.add(NewEvent(EventType.MODEL_ADDED, now, actor,
                                      data={"name": name, "description": description}))
        await uow.commit()
    return model


async def list_models(uow: UnitOfWork) -> list[DeviceModel]:
    async with uow.read():
        return await uow.models.list()


async def delete_model(uow: UnitOfWork, *, name: str, actor: str, now: datetime) -> DeviceModel:
    name = parse_model_name(name, field="name")
    async with uow:
        model = await uow.models.find_by_name(name)
        if model is None:
            raise ModelNotFound(f"no model {name!r} in the catalogue", name=name)
        count = await uow.models.device_count(model.id)
        if count:
            raise ModelInUse(f"{count} devices are of model {name!r}", name=name, devices=count)
        profiles = await uow.models.profile_count(model.id)
        if profiles:
            raise ModelInUse(f"{profiles} provisioning profiles create devices of model "
                             f"{name!r}", name=name, profiles=profiles)
        await uow.models.delete(model.id)
        await uow.events.add(NewEvent(EventType.MODEL_DELETED, now, actor, data={"name": name}))
        await uow.commit()
    return model


# ----------------------------------------------------------------------------- API tokens


async def create_token(uow: UnitOfWork, *, name: str, actor: str, now: datetime
                       ) -> tuple[ApiToken, str]:
    """A new operator token. The secret is returned here and never again."""
    name = parse_token_name(name)
    secret, secret_hash = new_token(PREFIX, 32)
    async with uow:
        uow.conflicts_as(TokenExists(f"a token {name!r} already exists", name=name))
        if await uow.tokens.find_by_name(name) is not None:
            raise TokenExists(f"a token {name!r} already exists", name=name)
        token = ApiToken(uuid.uuid4(), name, now)
        await uow.tokens.add(token, secret_hash)
        await uow.events.add(NewEvent(EventType.TOKEN_CREATED, now, actor, data={"name": name}))
        await uow.commit()
    return token, secret


async def list_tokens(uow: UnitOfWork) -> list[ApiToken]:
    async with uow.read():
        return await uow.tokens.list()


async def revoke_token(uow: UnitOfWork, *, name: str, actor: str, now: datetime) -> ApiToken:
    name = parse_token_name(name)
    async with uow:
        token = await uow.tokens.find_by_name(name)
        if token is None or token.revoked_at is not None:
            raise TokenNotFound(f"no active token {name!r}", name=name)
        await uow.tokens.revoke(token.id, now)
        await uow.events.add(NewEvent(EventType.TOKEN_REVOKED, now, actor, data={"name": name}))
        await uow.commit()
    return token


async def authenticate_token(uow: UnitOfWork, *, secret: str, now: datetime) -> ApiToken:
    """The active token whose secret this is, or Unauthenticated.

    Found by its SHA-256, so the secret itself is never compared. ``last_used_at`` is
    refreshed at most once a minute, so authenticated reads do not all become writes.
    """
    if not secret.startswith(PREFIX):
        raise Unauthenticated("the bearer token is not a provisiond API token")
    token_hash = hash_token(secret)
    async with uow.read():
        token = await uow.tokens.find_active_by_hash(token_hash)
    if token is None:
        raise Unauthenticated("the bearer token is unknown or revoked")
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        async with uow:
            await uow.tokens.touch(token.id, now)
            await uow.commit()
    return token
