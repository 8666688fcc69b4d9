"""Queries for devices, their tags and credentials (the event log: store/events.py)."""

from __future__ import annotations

import functools
import heapq
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import (
    String,
    TextualSelect,
    Uuid,
    bindparam,
    case,
    exists,
    func,
    insert,
    null,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from provisiond.domain.credentials import Credential, CredentialType, types_where
from provisiond.domain.device import Device, DeviceState
from provisiond.domain.scope import Scope
from provisiond.store.certificates import CertificateRepository, RevocationReason
from provisiond.store.directory import subtree_clause
from provisiond.store.events import EventRepository as EventRepository
from provisiond.store.events import event_from_row as event_from_row
from provisiond.store.schema import (
    credentials,
    device_models,
    device_tags,
    devices,
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
    profile_id: uuid.UUID | None = None
    name_like: str | None = None  # a LIKE pattern over lower(name), '\\' its escape


_owner_groups = groups.alias("owner_groups")


@functools.cache
def _device_query() -> Any:
    """A device's row with its model, group, owner and owning group (built once: a statement
    is immutable, and building this one took a tenth of a device read's CPU)."""
    return (
        select(
            devices.c.id,
            devices.c.serial,
            devices.c.name,
            devices.c.state,
            devices.c.group_id,
            devices.c.owner_user_id,
            devices.c.created_at,
            devices.c.updated_at,
            devices.c.claimed_at,
            device_models.c.name.label("model"),
            groups.c.path.label("group_path"),
            users.c.email.label("owner_email"),
            _owner_groups.c.path.label("owning_group_path"),
        )
        .select_from(devices)
        .outerjoin(device_models, device_models.c.id == devices.c.model_id)
        .outerjoin(groups, groups.c.id == devices.c.group_id)
        .outerjoin(users, users.c.id == devices.c.owner_user_id)
        .outerjoin(_owner_groups, _owner_groups.c.id == devices.c.owner_group_id)
    )


#: The orders of a console listing: its name -> the column (ties: serial order).
SORT_COLUMNS: dict[str, Any] = {
    "serial": devices.c.serial,
    "name": devices.c.name,
    "state": devices.c.state,
    "registered": devices.c.created_at,
}

# SQLite allows 500 terms in a compound SELECT; fewer keep each statement quick to plan.
_GROUPS_PER_QUERY = 200


# {x}: the criteria an index of their own could serve are written so that SQLite does not
# use it ("+column", SQLite's way to say so): without statistics it preferred the
# (state, serial) index to the group's, and for a group with no such device read every
# device of that state — half a second a group at a million devices, for every empty group
# of the subtree. PostgreSQL chooses by its statistics (and has no unary + for uuid).
_GROUP_CONDITIONS = {
    "state": "{x}state = :state",
    "model_id": "{x}model_id = :model_id",
    "owner_user_id": "{x}owner_user_id = :owner_user_id",
    "profile_id": "{x}profile_id = :profile_id",
    "name_like": "lower(name) LIKE :name_like ESCAPE '\\'",
    "prefix_low": "serial >= :prefix_low AND serial < :prefix_high",
    "after": "serial > :after",
}
_UUID_PARAMS = ("model_id", "owner_user_id", "profile_id")


@functools.lru_cache(maxsize=512)
def _per_group_union(groups_n: int, params: tuple[str, ...], dialect: str) -> TextualSelect:
    """Up to ``limit`` devices from each of ``groups_n`` groups (parameters g0, g1 ...), each
    read in serial order from the (group_id, serial) index, merged into the first ``limit``.

    Written as SQL text (from fixed fragments: no user text) and cached by shape: built with
    SQLAlchemy constructs, a 50-group statement took longer to build than to run.
    """
    x = "+" if dialect == "sqlite" else ""
    where = "".join(
        f" AND {_GROUP_CONDITIONS[p].format(x=x)}" for p in params if p in _GROUP_CONDITIONS
    )
    sources = [f"group_id = :g{i}" for i in range(groups_n)]
    parts = " UNION ALL ".join(
        f"SELECT * FROM (SELECT serial, id FROM devices WHERE {source}{where}"  # noqa: S608
        f" ORDER BY serial LIMIT :limit) AS p{i}"
        for i, source in enumerate(sources)
    )
    uuid_params = [f"g{i}" for i in range(groups_n)]
    uuid_params += [p for p in _UUID_PARAMS if p in params]
    return (
        text(f"{parts} ORDER BY serial LIMIT :limit")
        .bindparams(*(bindparam(p, type_=Uuid) for p in uuid_params))
        .columns(serial=String, id=Uuid)
    )


def _group_params(flt: DeviceFilter, after: str | None, limit: int) -> dict[str, Any]:
    """The parameters of :func:`_per_group_union` for ``flt`` (which of them are given
    decides its conditions)."""
    params: dict[str, Any] = {"limit": limit}
    if flt.state is not None:
        params["state"] = flt.state.value
    if flt.model_id is not None:
        params["model_id"] = flt.model_id
    if flt.owner_user_id is not None:
        params["owner_user_id"] = flt.owner_user_id
    if flt.profile_id is not None:
        params["profile_id"] = flt.profile_id
    if flt.name_like is not None:
        params["name_like"] = flt.name_like
    if flt.serial_prefix:
        params["prefix_low"] = flt.serial_prefix
        params["prefix_high"] = flt.serial_prefix + "\U0010ffff"
    if after is not None:
        params["after"] = after
    return params


def _serial_range(column: Any, prefix: str | None, after: str | None) -> list[Any]:
    conditions = []
    if prefix:
        conditions += [column >= prefix, column < prefix + "\U0010ffff"]
    if after is not None:
        conditions.append(column > after)
    return conditions


def covered_by(scope: Scope) -> Any:
    """SQL for "``scope`` covers the device's group" (the query joins ``groups``; a device
    without a group is covered by an operator-wide scope only, as :meth:`Scope.covers`)."""
    if scope.group_path is None:
        return true()
    return subtree_clause(groups.c.path, scope.group_path)


def _device(row: Any, tags: dict[str, str]) -> Device:
    return Device(
        id=row.id,
        serial=row.serial,
        name=row.name,
        model=row.model,
        state=DeviceState(row.state),
        group_id=row.group_id,
        group_path=row.group_path,
        owner_user_id=row.owner_user_id,
        owner_email=row.owner_email,
        owning_group_path=row.owning_group_path,
        created_at=row.created_at,
        updated_at=row.updated_at,
        claimed_at=row.claimed_at,
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

    async def find_by_serial(self, serial: str, *, seen_by: Scope | None = None) -> Device | None:
        """The device, or None; with ``seen_by``, None also when that scope does not cover
        it. The subtree is part of the query, so a device outside it costs what a missing
        serial costs: no row comes back, and its tags are not read."""
        query = _device_query().where(devices.c.serial == serial)
        if seen_by is not None:
            query = query.where(covered_by(seen_by))
        row = (await self._conn.execute(query)).first()
        if row is None:
            return None
        return _device(row, (await self._tags([row.id]))[row.id])

    async def search(self, flt: DeviceFilter, *, after: str | None, limit: int) -> list[Device]:
        """One page of devices matching ``flt``, in serial order, after the serial ``after``.

        The page's ids are found first by a query that reads an index already in serial order
        and stops after ``limit`` matches (see :meth:`_page`), then the page is loaded whole.
        """
        page = await self._page(flt, after, limit)
        if not page:
            return []
        rows = (
            await self._conn.execute(
                _device_query().where(devices.c.id.in_(page)).order_by(devices.c.serial)
            )
        ).all()
        tags = await self._tags([r.id for r in rows])
        return [_device(r, tags[r.id]) for r in rows]

    async def sorted_page(
        self,
        flt: DeviceFilter,
        *,
        sort: str,
        descending: bool,
        after: tuple[Any, str] | None,
        limit: int,
    ) -> list[Device]:
        """One page of devices matching ``flt`` in ``sort`` order (a key of
        :data:`SORT_COLUMNS`; ties in serial order), after the key ``(value, serial)``.

        One statement, ordered and paged by the database (the keyset compared in SQL, with
        the order's own collation); the (name, serial) and (created_at, serial) indexes
        (migration 0021) give a large subtree its page without sorting it. The serial order
        of a console listing is :meth:`search`'s.
        """
        column = SORT_COLUMNS[sort]
        serial = devices.c.serial
        query = select(devices.c.id).where(*self._conditions(flt))
        if flt.group is not None:
            in_subtree = devices.c.group_id.in_(
                select(groups.c.id).where(subtree_clause(groups.c.path, flt.group))
            )
            query = query.where(in_subtree)
        if after is not None:
            value, last = after
            if column is serial:
                query = query.where(serial < last if descending else serial > last)
            elif descending:
                query = query.where(column <= value, or_(column < value, serial < last))
            else:
                query = query.where(column >= value, or_(column > value, serial > last))
        order = (column.desc(), serial.desc()) if descending else (column.asc(), serial.asc())
        ids = [r[0] for r in await self._conn.execute(query.order_by(*order).limit(limit))]
        if not ids:
            return []
        rows = (await self._conn.execute(_device_query().where(devices.c.id.in_(ids)))).all()
        tags = await self._tags([r.id for r in rows])
        place = {device_id: i for i, device_id in enumerate(ids)}
        return sorted((_device(r, tags[r.id]) for r in rows), key=lambda d: place[d.id])

    @staticmethod
    def _conditions(flt: DeviceFilter) -> list[Any]:
        """The WHERE clauses of ``flt`` but its group (a listing's filters)."""
        equal = {
            devices.c.state: flt.state.value if flt.state is not None else None,
            devices.c.model_id: flt.model_id,
            devices.c.owner_user_id: flt.owner_user_id,
            devices.c.profile_id: flt.profile_id,
        }
        conditions: list[Any] = [c == v for c, v in equal.items() if v is not None]
        if flt.name_like is not None:
            conditions.append(func.lower(devices.c.name).like(flt.name_like, escape="\\"))
        for key, value in flt.tags.items():
            tag = device_tags.alias()
            conditions.append(
                exists().where(
                    tag.c.device_id == devices.c.id, tag.c.key == key, tag.c.value == value
                )
            )
        if flt.serial_prefix:
            conditions += _serial_range(devices.c.serial, flt.serial_prefix, None)
        return conditions

    async def _page(self, flt: DeviceFilter, after: str | None, limit: int) -> list[uuid.UUID]:
        """The ids of one page, choosing the index that yields matches in serial order.

        - a tag filter reads the tag's (key, value, serial) range;
        - a group filter reads each subtree group's (group_id, serial) range, at most
          ``limit`` rows from each, merged: a page of an organisation holding 200,000 devices
          costs (groups in its subtree) x (page size) index reads, not 200,000;
        - otherwise the serial index, or the (state|model, serial) index.
        Every other criterion filters the rows the chosen index yields.
        """
        serial = devices.c.serial
        tags = list(flt.tags.items())
        # every criterion but the group, the serial range and the first tag (which choose
        # the index read) filters what that index yields
        conditions = self._conditions(replace(flt, tags=dict(tags[1:]), serial_prefix=None))
        if tags:
            key, value = tags[0]
            tag = device_tags
            query = (
                select(tag.c.device_id)
                .select_from(tag.join(devices, devices.c.id == tag.c.device_id))
                .where(
                    tag.c.key == key,
                    tag.c.value == value,
                    *conditions,
                    *_serial_range(tag.c.serial, flt.serial_prefix, after),
                )
            )
            if flt.group is not None:
                in_subtree = devices.c.group_id.in_(
                    select(groups.c.id).where(subtree_clause(groups.c.path, flt.group))
                )
                query = query.where(in_subtree)
            rows = await self._conn.execute(query.order_by(tag.c.serial).limit(limit))
            return [r[0] for r in rows]
        conditions.extend(_serial_range(serial, flt.serial_prefix, after))
        if flt.group is None:
            rows = await self._conn.execute(
                select(devices.c.id).where(*conditions).order_by(serial).limit(limit)
            )
            return [r[0] for r in rows]
        if flt.state is not None and flt.state is not DeviceState.CLAIMED:
            return []  # a device in a group is claimed (ck_devices_claimed_has_group)
        # the groups that hold a device (one index probe each): a subtree of hundreds of
        # groups, most of them empty, does not make a statement of hundreds of parts
        holds = select(devices.c.id).where(devices.c.group_id == groups.c.id).exists()
        group_ids = [
            r[0]
            for r in await self._conn.execute(
                select(groups.c.id).where(subtree_clause(groups.c.path, flt.group), holds)
            )
        ]
        params = _group_params(flt, after, limit)
        found: list[tuple[str, uuid.UUID]] = []
        for start in range(0, max(len(group_ids), 1), _GROUPS_PER_QUERY):
            chunk = group_ids[start : start + _GROUPS_PER_QUERY]
            if not chunk:
                break
            statement = _per_group_union(len(chunk), tuple(sorted(params)), self._conn.dialect.name)
            rows = await self._conn.execute(
                statement, {**params, **{f"g{i}": g for i, g in enumerate(chunk)}}
            )
            found = list(heapq.merge(found, [(r[0], r[1]) for r in rows]))[:limit]
        return [device_id for _, device_id in found]

    async def add(
        self,
        device: Device,
        *,
        model_id: uuid.UUID | None,
        registered_event_id: int | None,
        profile_id: uuid.UUID | None = None,
    ) -> None:
        await self._conn.execute(
            insert(devices).values(
                id=device.id,
                serial=device.serial,
                name=device.name,
                model_id=model_id,
                profile_id=profile_id,
                state=device.state.value,
                group_id=device.group_id,
                owner_user_id=device.owner_user_id,
                registered_event_id=registered_event_id,
                created_at=device.created_at,
                updated_at=device.updated_at,
                claimed_at=device.claimed_at,
            )
        )
        if device.tags:
            await self._conn.execute(
                insert(device_tags),
                [
                    {"device_id": device.id, "serial": device.serial, "key": k, "value": v}
                    for k, v in device.tags.items()
                ],
            )

    async def set_tag(self, device: Device, key: str, value: str) -> None:
        await self._conn.execute(
            device_tags.delete().where(
                device_tags.c.device_id == device.id, device_tags.c.key == key
            )
        )
        await self._conn.execute(
            insert(device_tags).values(
                device_id=device.id, serial=device.serial, key=key, value=value
            )
        )

    async def rename(self, device_id: uuid.UUID, name: str, now: datetime) -> None:
        await self._conn.execute(
            update(devices).where(devices.c.id == device_id).values(name=name, updated_at=now)
        )

    async def move(self, device_id: uuid.UUID, group_id: uuid.UUID, now: datetime) -> bool:
        """Place a claimed device in another group; False when it is no longer claimed."""
        result = await self._conn.execute(
            update(devices)
            .where(devices.c.id == device_id, devices.c.state == DeviceState.CLAIMED.value)
            .values(group_id=group_id, updated_at=now)
        )
        return bool(result.rowcount == 1)

    async def delete(self, device_id: uuid.UUID, now: datetime) -> None:
        # Tags and credentials go with the device (ON DELETE CASCADE), explicitly too, so
        # SQLite databases opened without foreign_keys=ON stay clean. Its certificates stay
        # in their CA's register, revoked (the CRL lists them until they expire).
        await CertificateRepository(self._conn).revoke_device(
            device_id, now, RevocationReason.CESSATION_OF_OPERATION
        )
        await self._conn.execute(device_tags.delete().where(device_tags.c.device_id == device_id))
        await self._conn.execute(credentials.delete().where(credentials.c.device_id == device_id))
        await self._conn.execute(devices.delete().where(devices.c.id == device_id))

    async def tag_keys(self) -> list[str]:
        rows = await self._conn.execute(
            select(device_tags.c.key).distinct().order_by(device_tags.c.key)
        )
        return [r[0] for r in rows]

    async def mark_provisioned(
        self,
        device_id: uuid.UUID,
        *,
        profile_id: uuid.UUID,
        credential_id: uuid.UUID,
        now: datetime,
    ) -> None:
        await self._conn.execute(
            update(devices)
            .where(devices.c.id == device_id)
            .values(
                profile_id=profile_id,
                provisioned_at=now,
                provision_credential_id=credential_id,
                updated_at=now,
            )
        )

    async def registered_event_id(self, device_id: uuid.UUID) -> int | None:
        result = await self._conn.execute(
            select(devices.c.registered_event_id).where(devices.c.id == device_id)
        )
        return result.scalar_one_or_none()


def _credential(row: Any) -> Credential:
    return Credential(
        row.id,
        row.device_id,
        CredentialType(row.type),
        row.created_at,
        row.revoked_at,
        row.first_used_at,
    )


class CredentialRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(
        self,
        credential: Credential,
        *,
        lookup: str | None,
        secret_hash: str | None = None,
        client_id: str | None = None,
        secret_sealed: str | None = None,
    ) -> None:
        await self._conn.execute(
            insert(credentials).values(
                id=credential.id,
                device_id=credential.device_id,
                type=credential.type.value,
                lookup=lookup,
                secret_hash=secret_hash,
                client_id=client_id,
                secret_sealed=secret_sealed,
                created_at=credential.created_at,
            )
        )

    async def revoke(
        self,
        credential_id: uuid.UUID,
        now: datetime,
        reason: RevocationReason = RevocationReason.UNSPECIFIED,
    ) -> None:
        """Revoke; a revoked MQTT secret is no longer kept (broker_accounts says what to
        remove from the broker); a certificate a CA of ours issued is revoked in its register
        (the CRL lists it)."""
        mqtt = credentials.c.type.in_([t.value for t in types_where(lambda k: k.sealed_for_broker)])
        await self._conn.execute(
            update(credentials)
            .where(credentials.c.id == credential_id, credentials.c.revoked_at.is_(None))
            .values(
                revoked_at=now,
                secret_sealed=case((mqtt, null()), else_=credentials.c.secret_sealed),
            )
        )
        await CertificateRepository(self._conn).revoke_credential(credential_id, now, reason)

    async def mark_first_use(self, credential_id: uuid.UUID, now: datetime) -> None:
        await self._conn.execute(
            update(credentials)
            .where(credentials.c.id == credential_id, credentials.c.first_used_at.is_(None))
            .values(first_used_at=now)
        )

    async def lookup_taken(self, ctype: CredentialType, lookup: str) -> bool:
        """Whether any credential of this type, revoked or not, has this lookup value."""
        row = (
            await self._conn.execute(
                select(credentials.c.id).where(
                    credentials.c.type == ctype.value, credentials.c.lookup == lookup
                )
            )
        ).first()
        return row is not None

    async def find_active_by_lookup(
        self, ctype: CredentialType, lookup: str
    ) -> tuple[Credential, str | None] | None:
        """An unrevoked credential found by its lookup value, and its secret hash."""
        row = (
            await self._conn.execute(
                select(credentials).where(
                    credentials.c.type == ctype.value,
                    credentials.c.lookup == lookup,
                    credentials.c.revoked_at.is_(None),
                )
            )
        ).first()
        return (_credential(row), row.secret_hash) if row else None

    async def sealed_secret(self, ctype: CredentialType, lookup: str) -> str | None:
        """The sealed secret of the active credential of this type and lookup."""
        return (
            await self._conn.execute(
                select(credentials.c.secret_sealed).where(
                    credentials.c.type == ctype.value,
                    credentials.c.lookup == lookup,
                    credentials.c.revoked_at.is_(None),
                )
            )
        ).scalar()

    async def client_id(self, credential_id: uuid.UUID) -> str | None:
        return (
            await self._conn.execute(
                select(credentials.c.client_id).where(credentials.c.id == credential_id)
            )
        ).scalar()

    async def for_device(self, device_id: uuid.UUID) -> list[Credential]:
        rows = await self._conn.execute(
            select(credentials)
            .where(credentials.c.device_id == device_id)
            .order_by(credentials.c.created_at)
        )
        return [_credential(r) for r in rows]

    async def find_active_by_id(
        self, credential_id: uuid.UUID
    ) -> tuple[Credential, str | None] | None:
        """An unrevoked credential and its secret hash."""
        row = (
            await self._conn.execute(
                select(credentials).where(
                    credentials.c.id == credential_id, credentials.c.revoked_at.is_(None)
                )
            )
        ).first()
        return (_credential(row), row.secret_hash) if row else None

    async def find_active(self, ctype: CredentialType, lookup: str) -> Credential | None:
        row = (
            await self._conn.execute(
                select(credentials).where(
                    credentials.c.type == ctype.value,
                    credentials.c.lookup == lookup,
                    credentials.c.revoked_at.is_(None),
                )
            )
        ).first()
        return _credential(row) if row else None
