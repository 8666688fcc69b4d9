"""Changing the organisation: renaming and moving groups, changing a user's role or group,
disabling and enabling users (services/directory.py creates and lists them).

A group is stored with its path (``Kanarra/West/Anaheim``) and its parent's id; devices,
users, profiles, tokens and webhooks name their group by id. Renaming or moving a group
rewrites the paths of its whole subtree in one statement, in the same transaction as its
audit event: what sits in those groups moves with them. Events keep the path they were
written with (domain/events.py): who could read a fact then still can.

Scope: an admin changes only what lies strictly inside their subtree — their own group is its
root and stays where it is (an operator-wide admin may move it) — and never puts a group or
a user outside it. An admin does not change their own role or group, nor disable
themselves: another admin does, so an organisation is not left without one by mistake.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from provisiond.domain.events import EventType, NewEvent
from provisiond.domain.groups import SEPARATOR, Group, lineage, parent_path, parse_group_path
from provisiond.domain.limits import GROUP_DEPTH_MAX
from provisiond.domain.scope import Scope, within
from provisiond.domain.users import Role, User, parse_email, parse_role
from provisiond.errors import (
    Forbidden,
    GroupExists,
    GroupNotFound,
    InvalidInput,
    Problem,
    UserNotFound,
)
from provisiond.services import directory
from provisiond.services.scoping import group_in_scope, require
from provisiond.store.uow import UnitOfWork

TREE_MAX = 5000  # groups a tree page shows at most


def _problem(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field} {message}", problems=[Problem(message, field=field)])


def parse_group_name(text: str, *, field: str = "name") -> str:
    """One segment of a group path: a group's own name."""
    name = text.strip()
    if SEPARATOR in name:
        raise _problem(field, f"may not contain {SEPARATOR!r}")
    return parse_group_path(name, field=field)


# ----------------------------------------------------------------------------- groups


async def group_tree(uow: UnitOfWork, *, scope: Scope) -> list[tuple[Group, int, int]]:
    """The groups of the caller's subtree in path order (a tree, depth first), each with the
    devices and users directly in it."""
    require(scope, Role.ADMIN, "managing groups")
    async with uow.read():
        groups = await uow.groups.list(scope.group_path, limit=TREE_MAX)
        ids = [g.id for g in groups]
        devices = await uow.groups.device_counts(ids)
        users = await uow.users.counts_by_group(ids)
    return [(g, devices.get(g.id, 0), users.get(g.id, 0)) for g in groups]


async def rename_group(
    uow: UnitOfWork, *, scope: Scope, path: str, name: str, actor: str, now: datetime
) -> Group:
    """Give a group another name in the same parent (its subtree's paths follow)."""
    path = parse_group_path(path)
    name = parse_group_name(name)
    return await _relocate(
        uow, scope=scope, path=path, parent=parent_path(path), name=name, actor=actor, now=now
    )


async def move_group(
    uow: UnitOfWork, *, scope: Scope, path: str, parent: str | None, actor: str, now: datetime
) -> Group:
    """Move a group, with its subtree and all in it, under another group of the caller's
    subtree (``parent`` None: to the top, operator-wide admins only)."""
    path = parse_group_path(path)
    new_parent = parse_group_path(parent, field="parent") if parent else None
    return await _relocate(
        uow,
        scope=scope,
        path=path,
        parent=new_parent,
        name=path.rsplit(SEPARATOR, 1)[-1],
        actor=actor,
        now=now,
    )


def _check_movable(scope: Scope, path: str, parent: str | None) -> None:
    require(scope, Role.ADMIN, "renaming and moving groups")
    root = scope.group_path
    if root is not None and path == root:
        raise Forbidden(
            f"{root!r} is the root of this caller's subtree: it stays where it is "
            "(an operator-wide admin may rename or move it)"
        )
    if parent is None and root is not None:
        raise Forbidden(
            f"only an operator-wide admin moves a group to the top; this caller's scope is "
            f"the subtree {root!r}",
        )


async def _relocate(
    uow: UnitOfWork,
    *,
    scope: Scope,
    path: str,
    parent: str | None,
    name: str,
    actor: str,
    now: datetime,
) -> Group:
    _check_movable(scope, path, parent)
    async with uow:
        group = await group_in_scope(uow, scope, path)
        target = await _parent_in_scope(uow, scope, parent)
        # Lock the group and the new parent's whole lineage, then read them again: two
        # changes of the tree that could make a cycle (A under B's subtree, B under A's)
        # lock a row in common, so the second sees the first's result (PostgreSQL; SQLite
        # has one writer). directory.create_group locks its lineage too.
        ids = [group.id]
        if target is not None:
            above = await uow.groups.find_many_by_path(lineage(target.path))
            ids += [g.id for g in above.values() if g.id != group.id]
        locked = await uow.groups.lock(ids)
        group = locked.get(group.id) or _gone(path)
        if not scope.covers(group.path) or group.path == scope.group_path:
            _gone(path)  # moved meanwhile, out of this caller's reach
        if target is not None:
            target = locked.get(target.id) or _gone(parent or "")
            if not scope.covers(target.path):
                _gone(target.path)
        new_path = f"{target.path}{SEPARATOR}{name}" if target else name
        if new_path == group.path:
            return group
        if target is not None and within(target.path, group.path):
            raise _problem("parent", "is the group itself or lies inside it")
        if await uow.groups.find_by_path(new_path) is not None:
            field = "name" if parent_path(group.path) == parent else "parent"
            raise GroupExists(
                f"group {new_path!r} already exists",
                problems=[Problem(f"{new_path!r} already exists", field=field)],
                path=new_path,
            )
        deepest = await uow.groups.deepest_below(group.path)
        depth = deepest + new_path.count(SEPARATOR) - group.path.count(SEPARATOR)
        if depth + 1 > GROUP_DEPTH_MAX:
            raise _problem(
                "parent", f"would make the tree {depth + 1} levels deep; at most {GROUP_DEPTH_MAX}"
            )
        moved = await uow.groups.move_subtree(
            group.id,
            old_path=group.path,
            new_path=new_path,
            parent_id=target.id if target else None,
        )
        renamed = parent_path(group.path) == (target.path if target else None)
        await uow.events.add(
            NewEvent(
                EventType.GROUP_RENAMED if renamed else EventType.GROUP_MOVED,
                now,
                actor,
                group_id=group.id,
                data={"from": group.path, "to": new_path, "groups": moved},
            )
        )
        await uow.commit()
    return replace(
        group,
        name=name,
        path=new_path,
        parent_id=target.id if target else None,
        depth=new_path.count(SEPARATOR),
    )


def _gone(path: str) -> Group:
    """Moved or deleted by someone else while this change waited for its lock."""
    raise GroupNotFound(f"no group {path!r}", path=path)


async def _parent_in_scope(uow: UnitOfWork, scope: Scope, parent: str | None) -> Group | None:
    if parent is None:
        return None
    try:
        return await group_in_scope(uow, scope, parent)
    except GroupNotFound as err:
        raise GroupNotFound(
            err.detail, problems=[Problem("no such group", field="parent")], path=parent
        ) from None


# ----------------------------------------------------------------------------- users


async def _user_in_scope(uow: UnitOfWork, scope: Scope, email: str) -> User:
    user = await uow.users.find_by_email(email)
    if user is None or not scope.covers(user.group_path):
        raise UserNotFound(f"no user {email!r}", email=email)
    return user


def _not_yourself(me: str | None, email: str, doing: str) -> None:
    if me is not None and me == email:
        raise Forbidden(f"you cannot {doing} yourself; ask another admin")


async def change_role(
    uow: UnitOfWork,
    *,
    scope: Scope,
    email: str,
    role: str,
    me: str | None,
    actor: str,
    now: datetime,
) -> User:
    """Give a user of the caller's subtree another role (no higher than the caller's).
    ``me``: the e-mail of the signed-in caller (None: the command line or a token)."""
    email = parse_email(email)
    new_role = parse_role(role)
    require(scope, Role.ADMIN, "changing roles")
    if not scope.may(new_role):
        raise Forbidden(f"a {scope.role} cannot give the {new_role} role")
    _not_yourself(me, email, "change the role of")
    async with uow:
        user = await _user_in_scope(uow, scope, email)
        if user.role is new_role:
            return user
        if user.operator_wide:
            raise InvalidInput(
                f"{email} is operator-wide, which only an admin can be: move them to a group "
                f"before giving them the {new_role} role",
                problems=[Problem("an operator-wide user stays an admin", field="role")],
            )
        await uow.users.set_role(user.id, new_role)
        await uow.events.add(
            NewEvent(
                EventType.USER_ROLE_CHANGED,
                now,
                actor,
                group_id=user.group_id,
                data={"email": email, "from": user.role.value, "to": new_role.value},
            )
        )
        await uow.commit()
    return replace(user, role=new_role)


async def change_user_group(
    uow: UnitOfWork,
    *,
    scope: Scope,
    email: str,
    group: str,
    me: str | None,
    actor: str,
    now: datetime,
) -> User:
    """Put a user of the caller's subtree in another group of it."""
    email = parse_email(email)
    path = parse_group_path(group)
    require(scope, Role.ADMIN, "moving users")
    _not_yourself(me, email, "move")
    async with uow:
        user = await _user_in_scope(uow, scope, email)
        try:
            target = await group_in_scope(uow, scope, path)
        except GroupNotFound as err:
            raise GroupNotFound(
                err.detail, problems=[Problem("no such group", field="group")], path=path
            ) from None
        if target.id == user.group_id:
            return user
        await uow.users.set_group(user.id, target.id)
        await uow.events.add(
            NewEvent(
                EventType.USER_MOVED,
                now,
                actor,
                group_id=target.id,
                data={"email": email, "from": user.group_path, "to": target.path},
            )
        )
        await uow.commit()
    return replace(user, group_id=target.id, group_path=target.path)


async def set_user_disabled(
    uow: UnitOfWork,
    *,
    scope: Scope,
    email: str,
    disabled: bool,
    me: str | None,
    actor: str,
    now: datetime,
) -> tuple[User, int]:
    """directory.set_user_disabled, refusing to disable oneself."""
    email = parse_email(email)
    if disabled:
        _not_yourself(me, email, "disable")
    return await directory.set_user_disabled(
        uow, scope=scope, email=email, disabled=disabled, actor=actor, now=now
    )


async def get_user(uow: UnitOfWork, *, scope: Scope, email: str) -> User:
    email = parse_email(email)
    require(scope, Role.ADMIN, "managing users")
    async with uow.read():
        return await _user_in_scope(uow, scope, email)
