"""Queries for devices, their tags and credentials, and the event log."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from provisiond.domain.credentials import Credential, CredentialType
from provisiond.domain.device import Device, DeviceState
from provisiond.domain.events import Event, EventType, NewEvent
from provisiond.store.directory import subtree_clause
from provisiond.store.schema import (
    credentials,
    device_models,
    device_tags,
    devices,
    events,
    groups,
    users,
)


@dataclass(frozen=True, slots=True)
class DeviceFilter:
    group: str | None = None  # a group path: the device is in that group's subtree
    state: DeviceState | None = None
    model_id: uuid.UUID | None = None
    tags: dict[str, str] = field(default_factory=dict)
    serial_prefix: str | None = None
    owner_user_id: uuid.UUID | None = None


def _device_query() -> Any:
    return (
        select(
            devices.c.id, devices.c.serial, devices.c.name, devices.c.state,
            devices.c.group_id, devices.c.owner_user_id, devices.c.created_at,
            devices.c.updated_at, devices.c.claimed_at,
            device_models.c.name.label("model"),
            groups.c.path.label("group_path"),
            users.c.email.label("owner_email"),
        )
        .select_from(devices)
        .outerjoin(device_models, device_models.c.id == devices.c.model_id)
        .outerjoin(groups, groups.c.id == devices.c.group_id)
        .outerjoin(users, users.c.id == devices.c.owner_user_id)
    )


def _device(row: Any, tags: dict[str, str]) -> Device:
    return Device(
        id=row.id, serial=row.serial, name=row.name, model=row.model,
        state=DeviceState(row.state), group_id=row.group_id, group_path=row.group_path,
        owner_user_id=row.owner_user_id, owner_email=row.owner_email,
        created_at=row.created_at, updated_at=row.updated_at, claimed_at=row.claimed_at,
        tags=tags,
    )


class DeviceRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def _tags(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, dict[str, str]]:
        out: dict[uuid.UUID, dict[str, str]] = {i: {} for i in ids}
        if not ids:
            return out
        rows = await self._conn.execute(
            select(device_tags.c.device_id, device_tags.c.key, device_tags.c.value)
            .where(device_tags.c.device_id.in_(list(ids)))
            .order_by(device_tags.c.device_id, device_tags.c.key)
        )
        for device_id, key, value in rows:
            out[device_id][key] = value
        return out

    async def find_by_id(self, device_id: uuid.UUID) -> Device | None:
        row = (await self._conn.execute(_device_query().where(devices.c.id == device_id))).first()
        if row is None:
            return None
        return _device(row, (await self._tags([row.id]))[row.id])

    async def find_by_serial(self, serial: str) -> Device | None:
        row = (await self._conn.execute(_device_query().where(devices.c.serial == serial))).first()
        if row is None:
            return None
        return _device(row, (await self._tags([row.id]))[row.id])

    async def search(self, flt: DeviceFilter, *, after: str | None, limit: int) -> list[Device]:
        query = _device_query()
        if flt.group is not None:
            query = query.where(
                devices.c.group_id.in_(
                    select(groups.c.id).where(subtree_clause(groups.c.path, flt.group))
                )
            )
        if flt.state is not None:
            query = query.where(devices.c.state == flt.state.value)
        if flt.model_id is not None:
            query = query.where(devices.c.model_id == flt.model_id)
        if flt.owner_user_id is not None:
            query = query.where(devices.c.owner_user_id == flt.owner_user_id)
        if flt.serial_prefix:
            query = query.where(
                (devices.c.serial >= flt.serial_prefix)
                & (devices.c.serial < flt.serial_prefix + "\U0010ffff")
            )
        for key, value in flt.tags.items():
            query = query.where(
                devices.c.id.in_(
                    select(device_tags.c.device_id).where(
                        device_tags.c.key == key, device_tags.c.value == value
                    )
                )
            )
        if after is not None:
            query = query.where(devices.c.serial > after)
        rows = (await self._conn.execute(query.order_by(devices.c.serial).limit(limit))).all()
        tags = await self._tags([r.id for r in rows])
        return [_device(r, tags[r.id]) for r in rows]

    async def add(self, device: Device, *, model_id: uuid.UUID | None,
                  registered_event_id: int | None) -> None:
        await self._conn.execute(
            insert(devices).values(
                id=device.id, serial=device.serial, name=device.name, model_id=model_id,
                state=device.state.value, group_id=device.group_id,
                owner_user_id=device.owner_user_id, registered_event_id=registered_event_id,
                created_at=device.created_at, updated_at=device.updated_at,
                claimed_at=device.claimed_at,
            )
        )
        if device.tags:
            await self._conn.execute(
                insert(device_tags),
                [{"device_id": device.id, "key": k, "value": v} for k, v in device.tags.items()],
            )

    async def delete(self, device_id: uuid.UUID) -> None:
        # Tags and credentials go with the device (ON DELETE CASCADE), explicitly too, so
        # SQLite databases opened without foreign_keys=ON stay clean.
        await self._conn.execute(device_tags.delete().where(device_tags.c.device_id == device_id))
        await self._conn.execute(credentials.delete().where(credentials.c.device_id == device_id))
        await self._conn.execute(devices.delete().where(devices.c.id == device_id))

    async def tag_keys(self) -> list[str]:
        rows = await self._conn.execute(
            select(device_tags.c.key).distinct().order_by(device_tags.c.key)
        )
        return [r[0] for r in rows]

    async def registered_event_id(self, device_id: uuid.UUID) -> int | None:
        result = await self._conn.execute(
            select(devices.c.registered_event_id).where(devices.c.id == device_id)
        )
        return result.scalar_one_or_none()


def _credential(row: Any) -> Credential:
    return Credential(row.id, row.device_id, CredentialType(row.type), row.created_at,
                      row.revoked_at)


class CredentialRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, credential: Credential, *, lookup: str | None,
                  secret_hash: str | None = None) -> None:
        await self._conn.execute(
            insert(credentials).values(
                id=credential.id, device_id=credential.device_id, type=credential.type.value,
                lookup=lookup, secret_hash=secret_hash, created_at=credential.created_at,
            )
        )

    async def for_device(self, device_id: uuid.UUID) -> list[Credential]:
        rows = await self._conn.execute(
            select(credentials).where(credentials.c.device_id == device_id)
            .order_by(credentials.c.created_at)
        )
        return [_credential(r) for r in rows]

    async def find_active_by_id(self, credential_id: uuid.UUID
                                ) -> tuple[Credential, str | None] | None:
        """An unrevoked credential and its secret hash."""
        row = (await self._conn.execute(
            select(credentials).where(credentials.c.id == credential_id,
                                      credentials.c.revoked_at.is_(None))
        )).first()
        return (_credential(row), row.secret_hash) if row else None

    async def find_active(self, ctype: CredentialType, lookup: str) -> Credential | None:
        row = (await self._conn.execute(
            select(credentials).where(
                credentials.c.type == ctype.value, credentials.c.lookup == lookup,
                credentials.c.revoked_at.is_(None),
            )
        )).first()
        return _credential(row) if row else None


def _event(row: Any) -> Event:
    return Event(row.id, EventType(row.type), row.at, row.actor, row.device_id, row.serial,
                 row.group_id, dict(row.data))


class EventRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, event: NewEvent) -> int:
        result = await self._conn.execute(
            insert(events).values(
                type=event.type.value, at=event.at, actor=event.actor, device_id=event.device_id,
                serial=event.serial, group_id=event.group_id, data=event.data,
            ).returning(events.c.id)
        )
        return int(result.scalar_one())

    async def find(self, *, device_id: uuid.UUID | None = None,
                   types: Iterable[EventType] | None = None, include_ids: Sequence[int] = (),
                   after: int | None = None, limit: int = 100) -> list[Event]:
        query = select(events)
        if device_id is not None:
            cond = events.c.device_id == device_id
            if include_ids:
                cond = cond | events.c.id.in_(list(include_ids))
            query = query.where(cond)
        if types is not None:
            query = query.where(events.c.type.in_([t.value for t in types]))
        if after is not None:
            query = query.where(events.c.id > after)
        rows = await self._conn.execute(query.order_by(events.c.id).limit(limit))
        return [_event(r) for r in rows]

    async def latest(self, limit: int) -> list[Event]:
        rows = await self._conn.execute(select(events).order_by(events.c.id.desc()).limit(limit))
        return [_event(r) for r in rows]
