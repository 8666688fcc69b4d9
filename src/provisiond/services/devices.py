"""Devices one at a time: create, show, list, delete, and their onboarding timeline."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, TypeVar

from provisiond.domain.catalog import DeviceModel, parse_model_name
from provisiond.domain.credentials import Credential, CredentialType, IssuedCredential
from provisiond.domain.device import Device, DeviceSpec, DeviceState, parse_name, parse_tags
from provisiond.domain.events import Event, EventType, NewEvent
from provisiond.domain.groups import Group, parse_group_path
from provisiond.domain.limits import PAGE_SIZE_DEFAULT
from provisiond.domain.profiles import Profile
from provisiond.domain.scope import Scope
from provisiond.domain.serials import parse_serial
from provisiond.domain.users import Role, User, parse_email
from provisiond.errors import (
    DeviceExists,
    DeviceNotFound,
    GroupNotFound,
    InvalidInput,
    ModelNotFound,
    Problem,
    ProvisiondError,
    Unauthenticated,
    UserNotFound,
)
from provisiond.services.hashing import hash_token, new_split_token, split_token, tokens_equal
from provisiond.services.ids import new_id
from provisiond.services.paging import Page, decode_cursor, encode_cursor, limit_problem, page_of
from provisiond.services.scoping import group_in_scope, readable, require, require_group
from provisiond.services.sealing import Sealer
from provisiond.store.devices import DeviceFilter
from provisiond.store.uow import UnitOfWork

T = TypeVar("T")
__all__ = ["Page", "decode_cursor", "encode_cursor"]  # listings share services/paging.py


class Resolver:
    """Looks up the catalogue model, group, owner and profile named by an input, with a
    cache, within the caller's scope: a group, owner or profile outside it is reported as
    missing.

    Returns a :class:`Problem` instead of raising, so a bulk import can list every one.
    """

    def __init__(self, uow: UnitOfWork, scope: Scope) -> None:
        self._uow = uow
        self._scope = scope
        self._models: dict[str, DeviceModel] | None = None
        self._groups: dict[str, Group | Problem] = {}
        self._owners: dict[str, User | Problem] = {}
        self._profiles: dict[str, Profile | Problem] = {}

    async def model(self, name: str) -> DeviceModel | Problem:
        if self._models is None:
            self._models = await self._uow.models.all_by_lower_name()
        found = self._models.get(name.strip().lower())
        if found is None:
            return Problem(
                f"{name!r} is not in the model catalogue (add it with `provisiond models add`)",
                field="model",
            )
        return found

    async def group(self, text: str) -> Group | Problem:
        cached = self._groups.get(text)
        if cached is None:
            try:
                path = parse_group_path(text)
            except InvalidInput as err:
                cached = Problem(err.problems[0].message, field="group")
            else:
                group = (
                    await self._uow.groups.find_by_path(path) if self._scope.covers(path) else None
                )
                cached = group or Problem(
                    f"no group {path!r} (create it with `provisiond groups create`)", field="group"
                )
            self._groups[text] = cached
        return cached

    async def profile(self, name: str) -> Profile | Problem:
        cached = self._profiles.get(name)
        if cached is None:
            found = await self._uow.profiles.find_by_name(name.strip())
            if found is not None and not self._scope.covers(found.group_path):
                found = None
            cached = found or Problem(
                f"no profile {name.strip()!r} (create it with `provisiond profiles create`)",
                field="profile",
            )
            self._profiles[name] = cached
        return cached

    async def owner(self, text: str) -> User | Problem:
        cached = self._owners.get(text)
        if cached is None:
            try:
                email = parse_email(text, field="owner")
            except InvalidInput as err:
                cached = Problem(err.problems[0].message, field="owner")
            else:
                user = await self._uow.users.find_by_email(email)
                if user is not None and not self._scope.covers(user.group_path):
                    user = None
                cached = user or Problem(f"no user {email!r}", field="owner")
            self._owners[text] = cached
        return cached


def issue_access_token(
    device_id: uuid.UUID, serial: str, now: datetime
) -> tuple[IssuedCredential, str]:
    """A new access-token credential and the SHA-256 of its verifier (what is stored)."""
    credential = Credential(new_id(), device_id, CredentialType.ACCESS_TOKEN, now)
    secret, verifier_hash = new_split_token(credential.id)
    return IssuedCredential(credential, serial, secret), verifier_hash


async def create_device(
    uow: UnitOfWork,
    *,
    scope: Scope,
    spec: DeviceSpec,
    actor: str,
    now: datetime,
    sealer: Sealer | None = None,
) -> tuple[Device, IssuedCredential]:
    """Register one device with a fresh access token; with a group or owner, claim it too.
    A scoped caller (installer or admin) registers into its subtree only: ungrouped stock
    is the operator's."""
    serial = parse_serial(spec.serial)
    name = parse_name(spec.name) if spec.name and spec.name.strip() else serial
    clean_tags = parse_tags(spec.tags)
    model, group, owner = spec.model, spec.group, spec.owner
    if group and owner:
        raise InvalidInput(
            "give a group or an owner, not both",
            problems=[Problem("give a group or an owner, not both", "owner")],
        )
    require(scope, Role.INSTALLER, "registering devices")
    if not group and not owner:
        require_group(scope, None, "registering a device")
    async with uow:
        uow.conflicts_as(DeviceExists(f"device {serial} is already registered", serial=serial))
        resolve = Resolver(uow, scope)
        model_obj = (
            _require(await resolve.model(parse_model_name(model)), ModelNotFound) if model else None
        )
        group_obj = _require(await resolve.group(group), GroupNotFound) if group else None
        owner_obj = _require(await resolve.owner(owner), UserNotFound) if owner else None
        if await uow.devices.find_by_serial(serial) is not None:
            raise DeviceExists(f"device {serial} is already registered", serial=serial)
        claimed = group_obj is not None or owner_obj is not None
        group_id = owner_obj.group_id if owner_obj else (group_obj.id if group_obj else None)
        device = Device(
            id=new_id(),
            serial=serial,
            name=name,
            model=model_obj.name if model_obj else None,
            state=DeviceState.CLAIMED if claimed else DeviceState.REGISTERED,
            group_id=group_id,
            group_path=owner_obj.group_path
            if owner_obj
            else (group_obj.path if group_obj else None),
            owner_user_id=owner_obj.id if owner_obj else None,
            owner_email=owner_obj.email if owner_obj else None,
            created_at=now,
            updated_at=now,
            claimed_at=now if claimed else None,
            tags=clean_tags,
        )
        event_id = await uow.events.add(
            NewEvent(
                EventType.DEVICE_REGISTERED,
                now,
                actor,
                device_id=device.id,
                serial=serial,
                group_id=group_id,
                data={
                    "name": name,
                    "model": device.model,
                    "state": device.state.value,
                    "group": device.group_path,
                    "owner": device.owner_email,
                },
            )
        )
        await uow.devices.add(
            device, model_id=model_obj.id if model_obj else None, registered_event_id=event_id
        )
        issued, verifier_hash = issue_access_token(device.id, serial, now)
        await uow.credentials.add(
            issued.credential,
            lookup=None,
            secret_hash=verifier_hash,
            secret_sealed=sealer.seal(issued.secret) if sealer else None,
        )
        await uow.commit()
    return device, issued


def profile_device(
    profile: Profile,
    *,
    serial: str,
    name: str,
    actor: str,
    now: datetime,
    model: DeviceModel | None = None,
    data: dict[str, Any] | None = None,
) -> tuple[Device, uuid.UUID | None, NewEvent]:
    """A device a profile creates (self-provisioning, registration tokens): of ``model``
    (default: the profile's), claimed for the profile's group when it has one; with its model
    id and its ``device.registered`` event (``data`` adds to it)."""
    model_id, model_name = (model.id, model.name) if model else (profile.model_id, profile.model)
    claimed = profile.group_id is not None
    device = Device(
        id=new_id(),
        serial=serial,
        name=name,
        model=model_name,
        state=DeviceState.CLAIMED if claimed else DeviceState.REGISTERED,
        group_id=profile.group_id,
        group_path=profile.group_path,
        owner_user_id=None,
        owner_email=None,
        created_at=now,
        updated_at=now,
        claimed_at=now if claimed else None,
    )
    event = NewEvent(
        EventType.DEVICE_REGISTERED,
        now,
        actor,
        device_id=device.id,
        serial=serial,
        group_id=profile.group_id,
        data={
            "name": name,
            "model": device.model,
            "state": device.state.value,
            "group": device.group_path,
            "profile": profile.name,
            **(data or {}),
        },
    )
    return device, model_id, event


async def add_profile_device(
    uow: UnitOfWork,
    profile: Profile,
    *,
    serial: str,
    name: str,
    actor: str,
    now: datetime,
    model: DeviceModel | None = None,
    data: dict[str, Any] | None = None,
) -> Device:
    """Register a device a profile creates (see :func:`profile_device`) in the open
    transaction, with its event."""
    device, model_id, event = profile_device(
        profile, serial=serial, name=name, actor=actor, now=now, model=model, data=data
    )
    event_id = await uow.events.add(event)
    await uow.devices.add(device, model_id=model_id, registered_event_id=event_id)
    return device


def _require(result: T | Problem, not_found: type[ProvisiondError]) -> T:
    if isinstance(result, Problem):
        raise not_found(result.message, problems=[result])
    return result


async def device_in_scope(uow: UnitOfWork, scope: Scope, serial: str) -> Device:
    """The device with this (parsed) serial in the open transaction; DeviceNotFound, in the
    same words, when there is none or it lies outside the caller's scope. The scope is part
    of the query, so another customer's device costs what a missing serial costs."""
    device = await uow.devices.find_by_serial(serial, seen_by=scope)
    if device is None or not scope.covers(device.group_path):
        raise DeviceNotFound(f"no device {serial}", serial=serial)
    return device


async def get_device(uow: UnitOfWork, *, scope: Scope, serial: str) -> Device:
    serial = parse_serial(serial)
    async with uow.read():
        return await device_in_scope(uow, scope, serial)


async def get_device_detail(
    uow: UnitOfWork, *, scope: Scope, serial: str
) -> tuple[Device, list[Credential], list[Event]]:
    """A device with its credentials (never their secrets) and its onboarding timeline."""
    serial = parse_serial(serial)
    async with uow.read():
        device = await device_in_scope(uow, scope, serial)
        creds = await uow.credentials.for_device(device.id)
        registered = await uow.devices.registered_event_id(device.id)
        events = await uow.events.find(
            device_id=device.id, include_ids=[registered] if registered else ()
        )
    return device, creds, readable(scope, events)


async def list_devices(  # noqa: PLR0913 - the listing's filters, each optional, as the API and CLI offer them
    uow: UnitOfWork,
    *,
    scope: Scope,
    group: str | None = None,
    state: str | None = None,
    model: str | None = None,
    tags: dict[str, str] | None = None,
    serial_prefix: str | None = None,
    cursor: str | None = None,
    limit: int = PAGE_SIZE_DEFAULT,
) -> Page[Device]:
    """One page of the devices in the caller's scope (or the subtree ``group`` within it) in
    serial order, filtered; ``next_cursor`` fetches the next page."""
    problems: list[Problem] = []
    too_many = limit_problem(limit)
    if too_many is not None:
        problems.append(too_many)
    parsed_state = None
    if state:
        try:
            parsed_state = DeviceState(state.strip().lower())
        except ValueError:
            allowed = ", ".join(s.value for s in DeviceState)
            problems.append(Problem(f"{state!r} is not a state; use one of {allowed}", "state"))
    if problems:
        raise InvalidInput("; ".join(str(p) for p in problems), problems=problems)
    after = decode_cursor(cursor) if cursor else None
    path = parse_group_path(group) if group else None
    prefix = "".join(serial_prefix.split()).upper() if serial_prefix else None
    async with uow.read():
        model_id = None
        if model:
            found = await uow.models.find_by_name(parse_model_name(model))
            if found is None:
                raise ModelNotFound(f"no model {model!r} in the catalogue", name=model)
            model_id = found.id
        if path is not None:
            await group_in_scope(uow, scope, path)
        flt = DeviceFilter(
            group=path or scope.group_path,
            state=parsed_state,
            model_id=model_id,
            tags=dict(tags or {}),
            serial_prefix=prefix,
        )
        items = await uow.devices.search(flt, after=after, limit=limit + 1)
    return page_of(items, limit, lambda d: d.serial)


async def delete_device(
    uow: UnitOfWork, *, scope: Scope, serial: str, actor: str, now: datetime
) -> Device:
    """Delete a device with its tags and credentials; the audit log keeps its history."""
    serial = parse_serial(serial)
    require(scope, Role.ADMIN, "deleting devices")
    async with uow:
        device = await device_in_scope(uow, scope, serial)
        await uow.devices.delete(device.id, now)
        await uow.events.add(
            NewEvent(
                EventType.DEVICE_DELETED,
                now,
                actor,
                device_id=device.id,
                serial=serial,
                group_id=device.group_id,
                data={"name": device.name, "state": device.state.value, "group": device.group_path},
            )
        )
        await uow.commit()
    return device


async def list_tag_keys(uow: UnitOfWork) -> list[str]:
    """Every tag name in use (the columns of an export)."""
    async with uow.read():
        return await uow.devices.tag_keys()


async def authenticate_device(uow: UnitOfWork, *, token: str, now: datetime) -> Device:
    """The device whose active access token this is, or Unauthenticated.

    A token provisiond issued has a selector that finds the credential by primary key; its
    verifier's SHA-256 is compared in constant time. A token the device chose (at
    self-provisioning) is found by its SHA-256. Unknown, malformed, wrong and revoked tokens
    fail alike. The first success records the credential's first use (which ends the
    window in which a self-provisioned device may provision again).
    """
    refused = Unauthenticated("the access token is unknown or revoked")
    parts = split_token(token)
    async with uow.read():
        credential = None
        if parts is not None:
            credential_id, verifier = parts
            found = await uow.credentials.find_active_by_id(credential_id)
            if (
                found is not None
                and found[1] is not None
                and tokens_equal(found[1], hash_token(verifier))
            ):
                credential = found[0]
        if credential is None:
            chosen = await uow.credentials.find_active_by_lookup(
                CredentialType.ACCESS_TOKEN, hash_token(token)
            )
            credential = chosen[0] if chosen else None
        if credential is None:
            raise refused
        device = await uow.devices.find_by_id(credential.device_id)
    if device is None:
        raise refused
    if credential.first_used_at is None:
        async with uow:
            await uow.credentials.mark_first_use(credential.id, now)
            await uow.commit()
    return device
