"""The console's bulk actions on an admin's devices: device by device, each one transaction
through the use case a single device's page calls, each with its audit event — one device
refused (not found, not claimed …) does not undo the others, and the answer says what
happened to each. And the export of chosen devices as CSV (no secrets)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from provisiond.domain.device import LIFECYCLE, Device, DeviceAction
from provisiond.domain.groups import parse_group_path
from provisiond.domain.limits import PAGE_SIZE_MAX
from provisiond.domain.scope import Scope
from provisiond.domain.serials import parse_serial
from provisiond.domain.users import User
from provisiond.errors import (
    DeviceAlreadyClaimed,
    DeviceNotFound,
    InvalidInput,
    Problem,
    ProvisiondError,
)
from provisiond.protocols.csv_cells import csv_lines
from provisiond.services.claims import ownership
from provisiond.services.credential_kinds import Rotated
from provisiond.services.credentials import revoke_credentials, rotate_credentials
from provisiond.services.devices import device_in_scope
from provisiond.services.fleet import (
    NOT_YOURS,
    DeviceQuery,
    console_scope,
    list_fleet,
    move_device,
)
from provisiond.services.scoping import group_in_scope
from provisiond.services.sealing import Sealer
from provisiond.store.uow import UnitOfWork

BULK_MAX = PAGE_SIZE_MAX


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a bulk action did to one device: done, or refused and why."""

    serial: str
    done: bool
    message: str
    rotated: Rotated | None = field(default=None, repr=False)  # its new secret, shown once


def parse_serials(values: Sequence[str], *, field: str = "serial") -> list[str]:
    """The serials a bulk form names, in order, each once; refused when none or too many."""
    serials = list(dict.fromkeys(v.strip() for v in values if v.strip()))
    problem = None
    if not serials:
        problem = "select at least one device"
    elif len(serials) > BULK_MAX:
        problem = f"select at most {BULK_MAX} devices at a time"
    if problem:
        raise InvalidInput(problem, problems=[Problem(problem, field)])
    return serials


async def _each(
    serials: Sequence[str], act: Callable[[str], Awaitable[tuple[str, Rotated | None]]]
) -> list[Outcome]:
    out = []
    for text in serials:
        try:
            serial = parse_serial(text)
        except InvalidInput:
            out.append(Outcome(text, False, "not a serial"))
            continue
        try:
            message, rotated = await act(serial)
        except DeviceNotFound:
            out.append(Outcome(serial, False, NOT_YOURS))
        except ProvisiondError as err:
            out.append(Outcome(serial, False, err.detail))
        else:
            out.append(Outcome(serial, True, message, rotated))
    return out


@dataclass(frozen=True, slots=True)
class Fleet:
    """The context of an admin's bulk action: a new unit of work per device, the admin."""

    uow: Callable[[], UnitOfWork]
    user: User
    now: datetime
    sealer: Sealer | None = None

    @property
    def scope(self) -> Scope:
        return console_scope(self.user)

    @property
    def actor(self) -> str:
        return ownership.actor(self.user)


async def bulk_move(fleet: Fleet, serials: Sequence[str], group: str) -> list[Outcome]:
    """Move each device to ``group`` (GroupNotFound first, for every device alike, when the
    group is not in the admin's subtree)."""
    path = parse_group_path(group)
    async with fleet.uow().read() as uow:
        target = await group_in_scope(uow, fleet.scope, path)

    async def move(serial: str) -> tuple[str, None]:
        await move_device(
            fleet.uow(),
            scope=fleet.scope,
            serial=serial,
            group=path,
            actor=fleet.actor,
            now=fleet.now,
        )
        return f"now in {target.path}", None

    return await _each(serials, move)


async def bulk_release(fleet: Fleet, serials: Sequence[str]) -> list[Outcome]:
    async def release(serial: str) -> tuple[str, None]:
        async with fleet.uow().read() as uow:
            device = await device_in_scope(uow, fleet.scope, serial)
        if not LIFECYCLE.allows(device.state, DeviceAction.RELEASE):
            raise DeviceAlreadyClaimed(f"it is {device.state.value}, not claimed")
        policy = await ownership.release_device(
            fleet.uow(), user=fleet.user, serial=serial, now=fleet.now
        )
        return ("released, its history cleared" if policy.value == "reset" else "released"), None

    return await _each(serials, release)


async def bulk_rotate(fleet: Fleet, serials: Sequence[str]) -> list[Outcome]:
    async def rotate(serial: str) -> tuple[str, Rotated]:
        rotated = await rotate_credentials(
            fleet.uow(),
            scope=fleet.scope,
            serial=serial,
            kind=None,
            actor=fleet.actor,
            now=fleet.now,
            sealer=fleet.sealer,
        )
        return f"new {rotated.credential.type.value}", rotated

    return await _each(serials, rotate)


async def bulk_revoke(fleet: Fleet, serials: Sequence[str]) -> list[Outcome]:
    async def revoke(serial: str) -> tuple[str, None]:
        revoked = await revoke_credentials(
            fleet.uow(), scope=fleet.scope, serial=serial, actor=fleet.actor, now=fleet.now
        )
        n = len(revoked)
        return (f"{n} credential{'s' if n != 1 else ''} revoked" if n else "none to revoke"), None

    return await _each(serials, revoke)


async def export_devices(uow: UnitOfWork, *, scope: Scope, serials: Sequence[str]) -> str:
    """The CSV of these devices of the scope (no secrets: no credential at all), one line
    each, in the order given; a serial not in the scope is left out, as a missing one."""
    rows: list[Sequence[str]] = [EXPORT_COLUMNS]
    async with uow.read():
        for text in serials:
            try:
                device = await device_in_scope(uow, scope, parse_serial(text))
            except (DeviceNotFound, InvalidInput):
                continue
            rows.append(export_row(device))
    return csv_lines(rows)


#: The most devices an export of a filtered list holds (its first ones, in its order).
EXPORT_MAX = 100_000


async def export_fleet(uow: Callable[[], UnitOfWork], *, scope: Scope, query: DeviceQuery) -> str:
    """The CSV of the devices a console list shows — every page of it, up to
    :data:`EXPORT_MAX` — in its order (no secrets)."""
    rows: list[Sequence[str]] = [EXPORT_COLUMNS]
    query = replace(query, cursor=None, limit=PAGE_SIZE_MAX)
    while len(rows) <= EXPORT_MAX:
        page = await list_fleet(uow(), scope=scope, query=query)
        rows += [export_row(d) for d in page.items]
        if page.next_cursor is None:
            break
        query = replace(query, cursor=page.next_cursor)
    return csv_lines(rows[: EXPORT_MAX + 1])


EXPORT_COLUMNS = (
    "serial",
    "name",
    "model",
    "state",
    "group",
    "owner",
    "registered_at",
    "claimed_at",
    "tags",
)


def export_row(d: Device) -> tuple[str, ...]:
    return (
        d.serial,
        d.name,
        d.model or "",
        d.state.value,
        d.group_path or "",
        d.owner_email or d.owner_group or "",
        d.created_at.isoformat(),
        d.claimed_at.isoformat() if d.claimed_at else "",
        "; ".join(f"{k}={v}" for k, v in sorted(d.tags.items())),
    )
