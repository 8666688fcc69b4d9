"""Queries for claims and the devices they claim, the overview's figures and association
tokens. Guarded updates move claims and devices only along the domain's transition tables."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from provisiond.domain.claims import (
    CLAIM_LIFECYCLE,
    LIVE,
    Claim,
    ClaimAction,
    ClaimProof,
    ClaimStatus,
    ClaimTarget,
    ReleasePolicy,
)
from provisiond.domain.device import LIFECYCLE, DeviceAction, DeviceState
from provisiond.domain.scope import Scope
from provisiond.store.devices import covered_by
from provisiond.store.schema import (
    association_tokens,
    claims,
    device_models,
    device_tags,
    devices,
    groups,
    provision_profiles,
)

_LIVE = [s.value for s in LIVE]


def _values(states: tuple[DeviceState, ...] | tuple[ClaimStatus, ...]) -> list[str]:
    return [s.value for s in states]


@dataclass(frozen=True, slots=True)
class ClaimableDevice:
    """What claiming needs to know of a device: where it is, and how its profile says it is
    claimed (None: the instance default)."""

    id: uuid.UUID
    serial: str
    name: str
    state: DeviceState
    group_id: uuid.UUID | None
    group_path: str | None
    owner_user_id: uuid.UUID | None
    claim_proof: ClaimProof | None
    claim_window_seconds: int | None
    release_policy: ReleasePolicy
    claim_code_hash: str | None
    claim_secret_hash: str | None
    claim_secret_expires_at: datetime | None
    model: str | None = None  # the catalogue model it was registered with


def _claim(row: Any) -> Claim:
    return Claim(
        row.id,
        row.device_id,
        row.serial,
        row.user_id,
        ClaimTarget(row.target),
        ClaimProof(row.proof),
        ClaimStatus(row.status),
        row.started_at,
        row.expires_at,
        row.proven_at,
        row.ended_at,
        row.code_attempts,
    )


def _claim_query() -> Any:
    return (
        select(
            claims,
            devices.c.serial,
            devices.c.name.label("device_name"),
            device_models.c.name.label("device_model"),
        )
        .join(devices, devices.c.id == claims.c.device_id)
        .outerjoin(device_models, device_models.c.id == devices.c.model_id)
    )


def _claimable_query() -> Any:
    d, p = devices, provision_profiles
    return (
        select(
            d.c.id,
            d.c.serial,
            d.c.name,
            d.c.state,
            d.c.group_id,
            groups.c.path.label("group_path"),
            d.c.owner_user_id,
            p.c.claim_proof,
            p.c.claim_window_seconds,
            p.c.release_policy,
            d.c.claim_code_hash,
            d.c.claim_secret_hash,
            d.c.claim_secret_expires_at,
            device_models.c.name.label("model"),
        )
        .select_from(d)
        .outerjoin(groups, groups.c.id == d.c.group_id)
        .outerjoin(p, p.c.id == d.c.profile_id)
        .outerjoin(device_models, device_models.c.id == d.c.model_id)
    )


def _claimable(row: Any) -> ClaimableDevice | None:
    if row is None:
        return None
    return ClaimableDevice(
        row.id,
        row.serial,
        row.name,
        DeviceState(row.state),
        row.group_id,
        row.group_path,
        row.owner_user_id,
        ClaimProof(row.claim_proof) if row.claim_proof else None,
        row.claim_window_seconds,
        ReleasePolicy(row.release_policy or "keep"),
        row.claim_code_hash,
        row.claim_secret_hash,
        row.claim_secret_expires_at,
        row.model,
    )


class ClaimRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    # devices -----------------------------------------------------------------------------
    async def device(
        self, serial: str, *, claimer: Scope | None = None, lock: bool = False
    ) -> ClaimableDevice | None:
        """The device, or None; with ``claimer``, None also for a claimed device that scope
        does not cover (an unclaimed one is anyone's to claim): a device of another customer
        is then the same query and the same answer as a missing serial.

        ``lock``: the device's row is locked first, until the transaction ends (PostgreSQL;
        a SQLite writer is alone anyway), so that a claim started on what is read cannot
        follow another person's claim finished in between: read unclaimed, then claimed and
        its claim completed by someone else, a new claim would pass the one-live-claim
        guard and tell its claimer the device was theirs. The lock is its own statement:
        PostgreSQL rechecks a locked row's conditions against the joined rows it had read
        before waiting, and a device just moved to a group would be lost (a 404)."""
        if lock:
            await self._conn.execute(
                select(devices.c.id).where(devices.c.serial == serial).with_for_update()
            )
        query = _claimable_query().where(devices.c.serial == serial)
        if claimer is not None:
            claimable = devices.c.state.in_(_values(LIFECYCLE.sources(DeviceAction.CLAIM)))
            query = query.where(or_(claimable, covered_by(claimer)))
        return _claimable((await self._conn.execute(query)).first())

    async def device_by_id(self, device_id: uuid.UUID) -> ClaimableDevice | None:
        """The device with this id (one the caller has authenticated), or None."""
        query = _claimable_query().where(devices.c.id == device_id)
        return _claimable((await self._conn.execute(query)).first())

    async def take_device(
        self,
        device_id: uuid.UUID,
        *,
        group_id: uuid.UUID,
        owner_user_id: uuid.UUID | None,
        name: str | None,
        model_id: uuid.UUID | None,
        now: datetime,
        owner_group_id: uuid.UUID | None = None,
    ) -> bool:
        """Make an unowned device claimed, at ``group_id``, owned by a user, or by a group
        (``owner_group_id``; None: the group it sits in); False when it is owned already (a
        race lost)."""
        claim = DeviceAction.CLAIM
        values: dict[str, Any] = {
            "state": LIFECYCLE.target(claim).value,
            "group_id": group_id,
            "owner_user_id": owner_user_id,
            "owner_group_id": owner_group_id,
            "claimed_at": now,
            "updated_at": now,
            "claim_secret_hash": None,
            "claim_secret_expires_at": None,
        }
        if name is not None:
            values["name"] = name
        if model_id is not None:
            values["model_id"] = model_id
        result = await self._conn.execute(
            update(devices)
            .where(
                devices.c.id == device_id,
                devices.c.state.in_(_values(LIFECYCLE.sources(claim))),
            )
            .values(**values)
        )
        return bool(result.rowcount == 1)

    async def release_device(
        self, device_id: uuid.UUID, *, reset_from_event: int | None, serial: str, now: datetime
    ) -> bool:
        """Make a claimed device released (unowned); with ``reset_from_event``, clear its tags
        and name and start its timeline at that event. False when it was not claimed."""
        release = DeviceAction.RELEASE
        values: dict[str, Any] = {
            "state": LIFECYCLE.target(release).value,
            "group_id": None,
            "owner_user_id": None,
            "owner_group_id": None,
            "claimed_at": None,
            "updated_at": now,
        }
        if reset_from_event is not None:
            values.update(history_since_event_id=reset_from_event, name=serial)
        result = await self._conn.execute(
            update(devices)
            .where(
                devices.c.id == device_id,
                devices.c.state.in_(_values(LIFECYCLE.sources(release))),
            )
            .values(**values)
        )
        if result.rowcount != 1:
            return False
        if reset_from_event is not None:
            await self._conn.execute(
                delete(device_tags).where(device_tags.c.device_id == device_id)
            )
        return True

    async def open_device_window(
        self, device_id: uuid.UUID, secret_hash: str, expires_at: datetime
    ) -> None:
        await self._conn.execute(
            update(devices)
            .where(devices.c.id == device_id)
            .values(claim_secret_hash=secret_hash, claim_secret_expires_at=expires_at)
        )

    async def history_since(self, device_id: uuid.UUID) -> int | None:
        return (
            await self._conn.execute(
                select(devices.c.history_since_event_id).where(devices.c.id == device_id)
            )
        ).scalar()

    # claims ------------------------------------------------------------------------------
    async def add(self, claim: Claim, address: str) -> None:
        await self._conn.execute(
            insert(claims).values(
                id=claim.id,
                device_id=claim.device_id,
                user_id=claim.user_id,
                target=claim.target.value,
                proof=claim.proof.value,
                status=claim.status.value,
                started_at=claim.started_at,
                expires_at=claim.expires_at,
                proven_at=claim.proven_at,
                address=address[:64],
            )
        )

    async def find(self, claim_id: uuid.UUID) -> Claim | None:
        found = await self.find_named(claim_id)
        return found[0] if found else None

    async def find_named(self, claim_id: uuid.UUID) -> tuple[Claim, str, str | None] | None:
        """A claim, the current name of its device and the model it was registered with."""
        row = (await self._conn.execute(_claim_query().where(claims.c.id == claim_id))).first()
        return (_claim(row), row.device_name, row.device_model) if row else None

    async def live_for_device(self, device_id: uuid.UUID) -> Claim | None:
        """The device's open or proven claim (its window may have closed since)."""
        row = (
            await self._conn.execute(
                _claim_query().where(claims.c.device_id == device_id, claims.c.status.in_(_LIVE))
            )
        ).first()
        return _claim(row) if row else None

    async def for_device(self, device_id: uuid.UUID, limit: int = 50) -> list[Claim]:
        rows = await self._conn.execute(
            _claim_query()
            .where(claims.c.device_id == device_id)
            .order_by(claims.c.started_at.desc())
            .limit(limit)
        )
        return [_claim(r) for r in rows]

    async def move(self, claim_id: uuid.UUID, action: ClaimAction, now: datetime) -> bool:
        """Apply ``action`` to a claim whose status allows it; False when it did not."""
        status = CLAIM_LIFECYCLE.target(action)
        values: dict[str, Any] = {"status": status.value}
        if status is ClaimStatus.PROVEN:
            values["proven_at"] = now
        elif status not in LIVE:
            values["ended_at"] = now
        result = await self._conn.execute(
            update(claims)
            .where(
                claims.c.id == claim_id,
                claims.c.status.in_(_values(CLAIM_LIFECYCLE.sources(action))),
            )
            .values(**values)
        )
        return bool(result.rowcount == 1)

    async def count_wrong_proof(self, claim_id: uuid.UUID) -> int:
        await self._conn.execute(
            update(claims)
            .where(claims.c.id == claim_id)
            .values(code_attempts=claims.c.code_attempts + 1)
        )
        return int(
            (
                await self._conn.execute(
                    select(claims.c.code_attempts).where(claims.c.id == claim_id)
                )
            ).scalar_one()
        )


class AssociationRepository:
    """One-time user-node association tokens."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(
        self,
        token_id: uuid.UUID,
        user_id: uuid.UUID,
        secret_hash: str,
        now: datetime,
        expires_at: datetime,
    ) -> None:
        await self._conn.execute(
            insert(association_tokens).values(
                id=token_id,
                user_id=user_id,
                secret_hash=secret_hash,
                created_at=now,
                expires_at=expires_at,
            )
        )

    async def take(
        self, user_id: uuid.UUID, secret_hash: str, device_id: uuid.UUID, now: datetime
    ) -> bool:
        """Use the token once: whether it was there, the user's, live and unused."""
        result = await self._conn.execute(
            update(association_tokens)
            .where(
                association_tokens.c.user_id == user_id,
                association_tokens.c.secret_hash == secret_hash,
                association_tokens.c.used_at.is_(None),
                association_tokens.c.expires_at > now,
            )
            .values(used_at=now, device_id=device_id)
            .returning(association_tokens.c.id)
        )
        return result.first() is not None
