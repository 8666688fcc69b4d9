"""The fleet an admin runs from the console: every device of their subtree, in any order,
filtered; renaming and moving one (the bulk actions: services/fleet_bulk.py).

The console's scope (:func:`console_scope`) is the admin's subtree: every device in it, in
every state (imported stock waiting to be claimed included). Devices of no group (stock
registered without one, released devices) belong to no customer: only operator-wide scopes
see them (docs/security.md), so no console admin does.
Installers and viewers keep their own scope everywhere (their list is
:func:`provisiond.services.devices.list_devices`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from provisiond.domain.catalog import parse_model_name
from provisiond.domain.device import LIFECYCLE, Device, DeviceAction, DeviceState, parse_name
from provisiond.domain.events import EventType, NewEvent
from provisiond.domain.groups import Group, parse_group_path
from provisiond.domain.limits import PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX
from provisiond.domain.scope import Scope
from provisiond.domain.serials import parse_serial
from provisiond.domain.users import Role, User
from provisiond.errors import (
    DeviceAlreadyClaimed,
    InvalidCursor,
    InvalidInput,
    Problem,
    ProvisiondError,
)
from provisiond.services.devices import device_in_scope
from provisiond.services.paging import Page, decode_cursor, encode_cursor, limit_problem
from provisiond.services.scoping import group_in_scope, require
from provisiond.store.devices import SORT_COLUMNS, DeviceFilter
from provisiond.store.uow import UnitOfWork

SORTS = tuple(SORT_COLUMNS)  # serial, name, state, registered
NOT_YOURS = "no such device, or it is not yours to see"


def console_scope(user: User) -> Scope:
    """The scope of an admin's device pages: their subtree. Forbidden for installers and
    viewers."""
    require(user.scope, Role.ADMIN, "the console")
    return user.scope


@dataclass(frozen=True, slots=True)
class DeviceQuery:
    """A console listing as asked (unchecked): filters, search, order, page."""

    group: str = ""  # a group path: its subtree
    state: str = ""
    model: str = ""
    profile: str = ""
    tags: Sequence[str] = ()  # KEY=VALUE each
    serial_prefix: str = ""
    name: str = ""  # a part of the name, any case
    sort: str = "serial"
    descending: bool = False
    cursor: str | None = None
    limit: int = PAGE_SIZE_DEFAULT


def parse_tag_filters(values: Sequence[str], *, field: str = "tag") -> dict[str, str]:
    tags: dict[str, str] = {}
    for value in values:
        if not value.strip():
            continue
        key, sep, val = value.strip().partition("=")
        if not sep or not key.strip():
            problem = Problem(f"{value!r} is not KEY=VALUE", field=field)
            raise InvalidInput(str(problem), problems=[problem])
        tags[key.strip()] = val.strip()
    return tags


def _like(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _cursor(query: DeviceQuery, device: Device) -> str:
    value = {
        "serial": device.serial,
        "name": device.name,
        "state": device.state.value,
        "registered": device.created_at.isoformat(),
    }[query.sort]
    return encode_cursor(json.dumps([query.sort, query.descending, value, device.serial]))


def _after(query: DeviceQuery) -> tuple[Any, str] | None:
    """The key a cursor gave out for this order (another order's cursor is refused)."""
    if not query.cursor:
        return None
    refused = InvalidCursor(
        "the page cursor is not one provisiond gave out for this order",
        problems=[Problem("is not a cursor from a previous page of this list", "cursor")],
    )
    try:
        sort, descending, value, serial = json.loads(decode_cursor(query.cursor))
    except (ValueError, TypeError):
        raise refused from None
    if sort != query.sort or descending is not query.descending:
        raise refused
    if not isinstance(value, str) or not isinstance(serial, str):
        raise refused
    if sort == "registered":
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise refused from None
        if moment.tzinfo is None:
            raise refused
        return moment, serial
    return value, serial


async def _named(
    uow: UnitOfWork, scope: Scope, query: DeviceQuery, problems: list[Problem]
) -> tuple[str | None, uuid.UUID | None, uuid.UUID | None]:
    """The group path, model id and profile id a query names (None: not named, or a
    problem added)."""
    path = model_id = profile_id = None
    if query.group.strip():
        try:
            path = (await group_in_scope(uow, scope, parse_group_path(query.group))).path
        except ProvisiondError:
            problems.append(Problem(f"no group {query.group.strip()!r} in your subtree", "group"))
    if query.model.strip():
        found = await uow.models.find_by_name(parse_model_name(query.model))
        if found is None:
            problems.append(Problem(f"no model {query.model.strip()!r} in the catalogue", "model"))
        model_id = found.id if found else None
    if query.profile.strip():
        profile = await uow.profiles.find_by_name(query.profile.strip())
        if profile is None or not scope.covers(profile.group_path):
            problems.append(Problem(f"no profile {query.profile.strip()!r}", "profile"))
        else:
            profile_id = profile.id
    return path, model_id, profile_id


async def _filter(uow: UnitOfWork, scope: Scope, query: DeviceQuery) -> DeviceFilter:
    """The store's filter of a query, in the open transaction; every problem at once, by
    field (a group, model or profile outside the scope is one that does not exist)."""
    problems: list[Problem] = []
    if (too_many := limit_problem(query.limit)) is not None:
        problems.append(too_many)
    if query.sort not in SORTS:
        problems.append(Problem(f"{query.sort!r}: sort by {', '.join(SORTS)}", "sort"))
    state = None
    if query.state.strip():
        try:
            state = DeviceState(query.state.strip().lower())
        except ValueError:
            allowed = ", ".join(s.value for s in DeviceState)
            problems.append(Problem(f"{query.state!r} is not a state; use {allowed}", "state"))
    try:
        tags = parse_tag_filters(query.tags)
    except InvalidInput as err:
        problems += err.problems
        tags = {}
    path, model_id, profile_id = await _named(uow, scope, query, problems)
    if problems:
        raise InvalidInput("; ".join(str(p) for p in problems), problems=problems)
    prefix = "".join(query.serial_prefix.split()).upper() or None
    return DeviceFilter(
        group=path or scope.group_path,
        state=state,
        model_id=model_id,
        profile_id=profile_id,
        tags=tags,
        serial_prefix=prefix,
        name_like=_like(query.name.strip()) if query.name.strip() else None,
    )


async def list_fleet(uow: UnitOfWork, *, scope: Scope, query: DeviceQuery) -> Page[Device]:
    """One page of the devices in ``scope`` matching ``query``, in its order; the cursor of
    the next page is opaque and bound to the order it was given for."""
    async with uow.read():
        flt = await _filter(uow, scope, query)
        after = _after(query)
        # the serial order of a subtree: each group's (group_id, serial) range, merged
        # (store/devices.py)
        if query.sort == "serial" and not query.descending:
            items = await uow.devices.search(
                flt, after=after[1] if after else None, limit=query.limit + 1
            )
        else:
            items = await uow.devices.sorted_page(
                flt,
                sort=query.sort,
                descending=query.descending,
                after=after,
                limit=query.limit + 1,
            )
    more = len(items) > query.limit
    items = items[: query.limit]
    return Page(items, _cursor(query, items[-1]) if more and items else None)


@dataclass(frozen=True, slots=True)
class Choices:
    """What the console's filters and moves offer: the groups of the subtree (at most a
    page's maximum, in path order), the catalogue's models, the profiles in scope."""

    groups: list[Group]
    models: list[str]
    profiles: list[str]


async def choices(uow: UnitOfWork, scope: Scope) -> Choices:
    async with uow.read():
        groups = await uow.groups.list(scope.group_path, after=None, limit=PAGE_SIZE_MAX)
        models = [m.name for m in await uow.models.list()]
        profiles = [
            p.name
            for p in await uow.profiles.list(None, limit=PAGE_SIZE_MAX)
            if scope.covers(p.group_path)
        ]
    return Choices(groups, models, profiles)


async def rename_device(
    uow: UnitOfWork, *, scope: Scope, serial: str, name: str, actor: str, now: datetime
) -> Device:
    """Give a device another name (admins, within their scope)."""
    serial = parse_serial(serial)
    new_name = parse_name(name)
    if not new_name:
        raise InvalidInput("name is empty", problems=[Problem("is empty", "name")])
    require(scope, Role.ADMIN, "renaming devices")
    async with uow:
        device = await device_in_scope(uow, scope, serial)
        if device.name != new_name:
            await uow.devices.rename(device.id, new_name, now)
            await uow.events.add(
                NewEvent(
                    EventType.DEVICE_RENAMED,
                    now,
                    actor,
                    device_id=device.id,
                    serial=serial,
                    group_id=device.group_id,
                    data={"name": new_name, "was": device.name},
                )
            )
        await uow.commit()
    return device


async def move_device(
    uow: UnitOfWork, *, scope: Scope, serial: str, group: str, actor: str, now: datetime
) -> Device:
    """Place a device in a group of the admin's subtree. A claimed device moves (its owner
    stays); an unowned one (stock, released) is claimed for that group."""
    serial = parse_serial(serial)
    path = parse_group_path(group)
    require(scope, Role.ADMIN, "moving devices")
    async with uow:
        target = await group_in_scope(uow, scope, path)
        device = await device_in_scope(uow, scope, serial)
        if device.state is DeviceState.CLAIMED:
            if device.group_id != target.id:
                if not await uow.devices.move(device.id, target.id, now):
                    raise DeviceAlreadyClaimed(f"{serial} changed a moment ago", serial=serial)
                await uow.events.add(
                    NewEvent(
                        EventType.DEVICE_MOVED,
                        now,
                        actor,
                        device_id=device.id,
                        serial=serial,
                        group_id=target.id,
                        data={"group": target.path, "from": device.group_path},
                    )
                )
        else:
            LIFECYCLE.apply(device.state, DeviceAction.CLAIM)
            if not await uow.claims.take_device(
                device.id, group_id=target.id, owner_user_id=None, name=None, model_id=None, now=now
            ):
                raise DeviceAlreadyClaimed(f"{serial} was claimed a moment ago", serial=serial)
            await uow.events.add(
                NewEvent(
                    EventType.DEVICE_CLAIMED,
                    now,
                    actor,
                    device_id=device.id,
                    serial=serial,
                    group_id=target.id,
                    data={
                        "group": target.path,
                        "owner": None,
                        "owner_group": None,
                        "target": "group",
                        "name": device.name,
                        "model": None,
                        "claim": None,
                    },
                )
            )
        await uow.commit()
    return device
