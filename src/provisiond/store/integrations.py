"""The outbox, broker account records and leases: the tables background work runs from."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import String, and_, delete, func, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from provisiond.domain.broker import BROKER_TYPES
from provisiond.domain.credentials import BrokerLogin, types_where
from provisiond.domain.events import Event
from provisiond.store.devices import event_from_row
from provisiond.store.schema import (
    broker_accounts,
    credentials,
    devices,
    events,
    leases,
    outbox,
    pending_work,
)


def insert_ignore(conn: AsyncConnection, table: Any, key: Sequence[str]) -> Any:
    """INSERT … ON CONFLICT (key) DO NOTHING, in the connection's dialect."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing(index_elements=list(key))


@dataclass(frozen=True, slots=True)
class BrokerCredential:
    """An active credential that has a broker account: what names it (its device's serial
    included), when it was issued, its secret sealed (None when provisiond keeps none) and
    the hash it is checked against."""

    device_id: uuid.UUID
    credential_id: uuid.UUID
    type: str
    lookup: str | None
    client_id: str | None
    secret_sealed: str | None
    serial: str
    created_at: datetime
    secret_hash: str | None = None
    first_used_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class NameKeys:
    """What finds the credentials that may want some user names (see
    :meth:`BrokerRepository.claimants`)."""

    credential_ids: Sequence[uuid.UUID] = ()  # tokens provisiond issued
    basic_names: Sequence[str] = ()  # MQTT-basic user names
    token_hashes: Sequence[str] = ()  # tokens devices chose, by their SHA-256
    serials: Sequence[str] = ()  # devices whose chosen token is named by their serial


CHUNK = 1000  # values in one IN (…) list


@dataclass(frozen=True, slots=True)
class RecordedAccount:
    digest: str
    device_id: uuid.UUID
    credential_id: uuid.UUID
    username_sealed: str


def _login_types(login: BrokerLogin) -> list[str]:
    """The stored values of the credential types that are this kind of broker login."""
    return [t.value for t in types_where(lambda k: k.broker_account is login)]


def _chunks(values: Sequence[Any]) -> Iterable[list[Any]]:
    values = list(values)
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


class OutboxRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def take(self, limit: int) -> list[tuple[int, Event | None]]:
        """The oldest queued entries with their events (None: the event is gone)."""
        rows = await self._conn.execute(
            select(outbox.c.id.label("outbox_id"), events)
            .select_from(outbox.outerjoin(events, events.c.id == outbox.c.event_id))
            .order_by(outbox.c.id)
            .limit(limit)
        )
        return [(r.outbox_id, event_from_row(r) if r.type is not None else None) for r in rows]

    async def remove(self, ids: Sequence[int]) -> int:
        """Remove these entries; how many were there."""
        if not ids:
            return 0
        result = await self._conn.execute(delete(outbox).where(outbox.c.id.in_(list(ids))))
        return int(result.rowcount)

    async def size(self) -> int:
        return int(
            (await self._conn.execute(select(func.count()).select_from(outbox))).scalar_one()
        )


class PendingWork:
    """Devices one integration (``kind``) must bring in step, with their retry state."""

    def __init__(self, conn: AsyncConnection, kind: str) -> None:
        self._conn = conn
        self._kind = kind
        self._mine = pending_work.c.kind == kind

    async def mark(self, device_ids: Iterable[uuid.UUID]) -> None:
        rows = [{"kind": self._kind, "device_id": d} for d in dict.fromkeys(device_ids)]
        if not rows:
            return
        # a device already waiting (maybe backing off) is tried again at once
        await self._conn.execute(
            update(pending_work)
            .where(self._mine, pending_work.c.device_id.in_([r["device_id"] for r in rows]))
            .values(next_attempt_at=None)
        )
        await self._conn.execute(
            insert_ignore(self._conn, pending_work, ["kind", "device_id"]), rows
        )

    async def mark_imported(self, event_id: int) -> None:
        """Every device a bulk import registered (by the import's event)."""
        await self._conn.execute(
            insert_ignore(self._conn, pending_work, ["kind", "device_id"]).from_select(
                ["kind", "device_id"],
                select(literal(self._kind, String(16)), devices.c.id).where(
                    devices.c.registered_event_id == event_id
                ),
            )
        )

    async def due(self, now: datetime, limit: int) -> list[uuid.UUID]:
        rows = await self._conn.execute(
            select(pending_work.c.device_id)
            .where(
                self._mine,
                or_(
                    pending_work.c.next_attempt_at.is_(None), pending_work.c.next_attempt_at <= now
                ),
            )
            .limit(limit)
        )
        return [r.device_id for r in rows]

    async def listed(self) -> list[tuple[uuid.UUID, int, datetime | None, str | None]]:
        rows = await self._conn.execute(
            select(pending_work).where(self._mine).order_by(pending_work.c.device_id)
        )
        return [(r.device_id, r.attempts, r.next_attempt_at, r.last_error) for r in rows]

    async def done(self, device_ids: Sequence[uuid.UUID]) -> None:
        if device_ids:
            await self._conn.execute(
                delete(pending_work).where(
                    self._mine, pending_work.c.device_id.in_(list(device_ids))
                )
            )

    async def failed(self, device_id: uuid.UUID, error: str, next_attempt_at: datetime) -> None:
        await self._conn.execute(
            update(pending_work)
            .where(self._mine, pending_work.c.device_id == device_id)
            .values(
                attempts=pending_work.c.attempts + 1,
                next_attempt_at=next_attempt_at,
                last_error=error[:500],
            )
        )

    async def attempts(self, device_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
        rows = await self._conn.execute(
            select(pending_work.c.device_id, pending_work.c.attempts).where(
                self._mine, pending_work.c.device_id.in_(list(device_ids))
            )
        )
        return {r.device_id: r.attempts for r in rows}


class BrokerRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self.pending = PendingWork(conn, "broker")

    @staticmethod
    def _query(sealed_only: bool) -> Any:
        query = (
            select(
                credentials.c.device_id,
                credentials.c.id,
                credentials.c.type,
                credentials.c.lookup,
                credentials.c.client_id,
                credentials.c.secret_sealed,
                credentials.c.created_at,
                credentials.c.secret_hash,
                credentials.c.first_used_at,
                devices.c.serial,
            )
            .select_from(credentials.join(devices, devices.c.id == credentials.c.device_id))
            .where(
                credentials.c.type.in_([t.value for t in BROKER_TYPES]),
                credentials.c.revoked_at.is_(None),
            )
        )
        if sealed_only:
            query = query.where(credentials.c.secret_sealed.is_not(None))
        return query

    @staticmethod
    def _rows(rows: Iterable[Any]) -> list[BrokerCredential]:
        return [
            BrokerCredential(
                r.device_id,
                r.id,
                r.type,
                r.lookup,
                r.client_id,
                r.secret_sealed,
                r.serial,
                r.created_at,
                r.secret_hash,
                r.first_used_at,
            )
            for r in rows
        ]

    async def credentials(
        self, device_ids: Sequence[uuid.UUID], *, sealed_only: bool = True
    ) -> list[BrokerCredential]:
        """These devices' active broker credentials (``sealed_only``: those whose secret
        provisiond keeps, the only ones a broker can be given an account for)."""
        out: list[BrokerCredential] = []
        for chunk in _chunks(device_ids):
            out += self._rows(
                await self._conn.execute(
                    self._query(sealed_only).where(credentials.c.device_id.in_(chunk))
                )
            )
        return out

    async def all_credentials(
        self, after: uuid.UUID | None, limit: int, *, sealed_only: bool = True
    ) -> list[BrokerCredential]:
        """A page of every active broker credential, in credential id order."""
        query = self._query(sealed_only).order_by(credentials.c.id).limit(limit)
        if after is not None:
            query = query.where(credentials.c.id > after)
        return self._rows(await self._conn.execute(query))

    async def claimants(
        self, keys: NameKeys, *, sealed_only: bool = True
    ) -> list[BrokerCredential]:
        """The active broker credentials that may want one of some user names: a superset
        (the caller names each and keeps the equal ones), found by index."""
        token = credentials.c.type.in_(_login_types(BrokerLogin.TOKEN))
        basic = credentials.c.type.in_(_login_types(BrokerLogin.BASIC))
        lookup = credentials.c.lookup
        wheres: list[tuple[Sequence[Any], Callable[[list[Any]], Any]]] = [
            (keys.credential_ids, lambda c: and_(token, lookup.is_(None), credentials.c.id.in_(c))),
            (keys.basic_names, lambda c: and_(basic, lookup.in_(c))),
            (keys.token_hashes, lambda c: and_(token, lookup.in_(c))),
            (keys.serials, lambda c: and_(token, lookup.is_not(None), devices.c.serial.in_(c))),
        ]
        found: dict[uuid.UUID, BrokerCredential] = {}
        for values, where in wheres:
            for chunk in _chunks(values):
                for c in self._rows(
                    await self._conn.execute(self._query(sealed_only).where(where(chunk)))
                ):
                    found[c.credential_id] = c
        return list(found.values())

    async def recorded_digests(self, digests: Sequence[str]) -> list[RecordedAccount]:
        """provisiond's records of these accounts, whichever device they are for."""
        out: list[RecordedAccount] = []
        for chunk in _chunks(digests):
            rows = await self._conn.execute(
                select(broker_accounts).where(broker_accounts.c.digest.in_(chunk))
            )
            out += [
                RecordedAccount(r.digest, r.device_id, r.credential_id, r.username_sealed)
                for r in rows
            ]
        return out

    async def recorded(
        self, device_ids: Sequence[uuid.UUID] | None = None
    ) -> list[RecordedAccount]:
        query = select(broker_accounts)
        if device_ids is not None:
            query = query.where(broker_accounts.c.device_id.in_(list(device_ids)))
        rows = await self._conn.execute(query)
        return [
            RecordedAccount(r.digest, r.device_id, r.credential_id, r.username_sealed) for r in rows
        ]

    async def record(self, accounts: Sequence[RecordedAccount], now: datetime) -> None:
        """Record accounts made; an account of the same name recorded for another credential
        is now this one's (the name went to the credential that holds it)."""
        if not accounts:
            return
        dialect = postgresql if self._conn.dialect.name == "postgresql" else sqlite
        insert = dialect.insert(broker_accounts)
        await self._conn.execute(
            insert.on_conflict_do_update(
                index_elements=["digest"],
                set_={
                    "device_id": insert.excluded.device_id,
                    "credential_id": insert.excluded.credential_id,
                    "username_sealed": insert.excluded.username_sealed,
                },
            ),
            [
                {
                    "digest": a.digest,
                    "device_id": a.device_id,
                    "credential_id": a.credential_id,
                    "username_sealed": a.username_sealed,
                    "created_at": now,
                }
                for a in {a.digest: a for a in accounts}.values()
            ],
        )

    async def forget(self, digests: Sequence[str]) -> None:
        if digests:
            await self._conn.execute(
                delete(broker_accounts).where(broker_accounts.c.digest.in_(list(digests)))
            )

    async def count(self) -> int:
        return int(
            (
                await self._conn.execute(select(func.count()).select_from(broker_accounts))
            ).scalar_one()
        )


class LeaseRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def acquire(self, name: str, holder: str, now: datetime, until: datetime) -> bool:
        """Take or extend the lease ``name`` for ``holder`` unless another holder has it."""
        result = await self._conn.execute(
            update(leases)
            .where(
                leases.c.name == name, or_(leases.c.holder == holder, leases.c.expires_at <= now)
            )
            .values(holder=holder, expires_at=until)
            .returning(leases.c.name)
        )
        if result.first() is not None:
            return True
        taken = await self._conn.execute(
            insert_ignore(self._conn, leases, ["name"])
            .values(name=name, holder=holder, expires_at=until)
            .returning(leases.c.name)
        )
        return taken.first() is not None

    async def release(self, name: str, holder: str) -> None:
        await self._conn.execute(
            delete(leases).where(and_(leases.c.name == name, leases.c.holder == holder))
        )

    async def live(self, prefix: str, now: datetime) -> int:
        """How many unexpired leases have names starting with ``prefix``."""
        return int(
            (
                await self._conn.execute(
                    select(func.count())
                    .select_from(leases)
                    .where(
                        leases.c.name.startswith(prefix, autoescape=True), leases.c.expires_at > now
                    )
                )
            ).scalar_one()
        )

    async def holder(self, name: str) -> tuple[str, datetime] | None:
        row = (await self._conn.execute(select(leases).where(leases.c.name == name))).first()
        return (row.holder, row.expires_at) if row else None
