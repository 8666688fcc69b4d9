"""Queries for Azure DPS enrollments (domain/enrollments.py)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from provisiond.domain.enrollments import Attestation, Enrollment
from provisiond.store.profiles import _query as profile_query
from provisiond.store.profiles import profile_from_row
from provisiond.store.provision_writer import ProvisionTx
from provisiond.store.schema import (
    certificate_authorities,
    devices,
    dps_enrollments,
    provision_profiles,
)

_e = dps_enrollments


def _query() -> Any:
    base = profile_query().subquery("profile")
    return (
        select(
            _e.c.id.label("enrollment_id"),
            _e.c.device_id.label("enrolled_device_id"),
            _e.c.attestation,
            _e.c.key_sealed,
            _e.c.assigned_hub,
            _e.c.allocation_webhook,
            _e.c.created_at.label("enrolled_at"),
            devices.c.serial.label("enrolled_serial"),
            base,
        )
        .select_from(_e)
        .join(base, base.c.id == _e.c.profile_id)
        .outerjoin(devices, devices.c.id == _e.c.device_id)
    )


def _enrollment(row: Any) -> Enrollment:
    return Enrollment(
        id=row.enrollment_id,
        profile=profile_from_row(row),
        device_id=row.enrolled_device_id,
        serial=row.enrolled_serial,
        attestation=Attestation(row.attestation),
        key_sealed=row.key_sealed,
        assigned_hub=row.assigned_hub,
        created_at=row.enrolled_at,
        allocation_webhook=row.allocation_webhook,
    )


class DpsRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(
        self,
        enrollment_id: uuid.UUID,
        *,
        profile_id: uuid.UUID,
        device_id: uuid.UUID | None,
        attestation: Attestation,
        key_sealed: str | None,
        assigned_hub: str,
        now: datetime,
        allocation_webhook: str | None = None,
    ) -> None:
        await self._conn.execute(
            insert(_e).values(
                allocation_webhook=allocation_webhook,
                id=enrollment_id,
                profile_id=profile_id,
                device_id=device_id,
                attestation=attestation.value,
                key_sealed=key_sealed,
                assigned_hub=assigned_hub,
                created_at=now,
            )
        )

    async def individual(self, serial: str) -> Enrollment | None:
        """The individual enrollment of the device with this serial."""
        row = (await self._conn.execute(_query().where(devices.c.serial == serial))).first()
        return _enrollment(row) if row else None

    async def groups(self, attestation: Attestation) -> list[Enrollment]:
        """Every enrollment group of this attestation, oldest first."""
        rows = await self._conn.execute(
            _query()
            .where(_e.c.device_id.is_(None), _e.c.attestation == attestation.value)
            .order_by(_e.c.created_at, _e.c.id)
        )
        return [_enrollment(r) for r in rows]

    async def all(self) -> list[Enrollment]:
        rows = await self._conn.execute(_query().order_by(_e.c.created_at, _e.c.id))
        return [_enrollment(r) for r in rows]

    async def group_of(self, profile_id: uuid.UUID) -> Enrollment | None:
        row = (
            await self._conn.execute(
                _query().where(_e.c.profile_id == profile_id, _e.c.device_id.is_(None))
            )
        ).first()
        return _enrollment(row) if row else None

    async def x509_cas(self) -> list[str]:
        """The PEM certificates of the device CAs of X.509 enrollment groups."""
        rows = await self._conn.execute(
            select(certificate_authorities.c.certificate_pem)
            .select_from(_e)
            .join(provision_profiles, provision_profiles.c.id == _e.c.profile_id)
            .join(
                certificate_authorities,
                certificate_authorities.c.id == provision_profiles.c.device_ca_id,
            )
            .where(_e.c.device_id.is_(None), _e.c.attestation == Attestation.X509.value)
            .distinct()
        )
        return [r[0] for r in rows]

    async def mark_provisioned(
        self, device_id: uuid.UUID, *, profile_id: uuid.UUID, now: datetime
    ) -> None:
        """The device registered through DPS (no provisiond credential: it attests with its
        own key or certificate)."""
        await self._conn.execute(
            update(devices)
            .where(devices.c.id == device_id)
            .values(profile_id=profile_id, provisioned_at=now, updated_at=now)
        )

    async def provision_state(
        self, device_id: uuid.UUID
    ) -> tuple[uuid.UUID | None, datetime | None]:
        """The profile a device provisioned with, and when (None, None: never)."""
        row = (
            await self._conn.execute(
                select(devices.c.profile_id, devices.c.provisioned_at).where(
                    devices.c.id == device_id
                )
            )
        ).first()
        return (row[0], row[1]) if row else (None, None)


# The registration path: statements run by a provisioning-writer job (store/
# provision_writer.py), inside its batch's transaction, so registrations commit in groups.

_TX_ENROLLMENT = (
    "SELECT e.id, e.device_id, e.attestation, e.key_sealed, e.assigned_hub, e.created_at,"
    " p.key, d.serial, e.allocation_webhook"
    " FROM dps_enrollments e JOIN provision_profiles p ON p.id = e.profile_id"
    " LEFT JOIN devices d ON d.id = e.device_id"
)
_TX_INDIVIDUAL = _TX_ENROLLMENT + " WHERE d.serial = ?"
_TX_GROUPS = (
    _TX_ENROLLMENT + " WHERE e.device_id IS NULL AND e.attestation = ? ORDER BY e.created_at, e.id"
)
_TX_MARK = "UPDATE devices SET profile_id = ?, provisioned_at = ?, updated_at = ? WHERE id = ?"


def _tx_enrollment(tx: ProvisionTx, row: Any) -> Enrollment | None:
    found = tx.profile_by_key(row[6])
    if found is None:
        return None
    return Enrollment(
        id=tx._uid(row[0]),
        profile=found[0],
        device_id=tx._id_out(row[1]),
        serial=row[7],
        attestation=Attestation(row[2]),
        key_sealed=row[3],
        assigned_hub=row[4],
        created_at=tx._at(row[5]),
        allocation_webhook=row[8],
    )


def tx_individual(tx: ProvisionTx, serial: str) -> Enrollment | None:
    """The individual enrollment of the device with this serial."""
    row = tx._one(_TX_INDIVIDUAL, (serial,))
    return _tx_enrollment(tx, row) if row is not None else None


def tx_groups(tx: ProvisionTx, attestation: Attestation) -> list[Enrollment]:
    """The enrollment groups of this attestation (read once per batch)."""
    memo = ("dps-groups", attestation)
    if memo not in tx.memo:
        rows = tx._cur.execute(tx._sql(_TX_GROUPS), (attestation.value,)).fetchall()
        found = [_tx_enrollment(tx, row) for row in rows]
        tx.memo[memo] = [e for e in found if e is not None]
    groups: list[Enrollment] = tx.memo[memo]
    return groups


def tx_mark_provisioned(
    tx: ProvisionTx, device_id: uuid.UUID, *, profile_id: uuid.UUID, now: datetime
) -> None:
    """The device registered through DPS: provisioned, with no credential of provisiond's."""
    tx._run(
        _TX_MARK,
        (tx._id_in(profile_id), tx._ts_in(now), tx._ts_in(now), tx._id_in(device_id)),
    )
