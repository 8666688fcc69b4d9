"""What provisiond registered in The Things Stack, and the LoRaWAN devices it may register."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from provisiond.domain.credentials import CredentialType
from provisiond.store.integrations import PendingWork, insert_ignore
from provisiond.store.schema import (
    credentials,
    device_tags,
    devices,
    provision_profiles,
    tts_devices,
)

JOIN_EUI_TAG = "join_eui"


@dataclass(frozen=True, slots=True)
class TtsRecord:
    device_id: uuid.UUID
    application_id: str
    end_device_id: str
    dev_eui: str
    status: str  # registered | failed | conflict
    last_error: str | None
    updated_at: datetime
    serial: str | None = None
    origin: str = "created"  # created | adopted | legacy
    # conflict: the end device in the way (someone else's), in which application
    foreign_application_id: str | None = None
    foreign_end_device_id: str | None = None


@dataclass(frozen=True, slots=True)
class LorawanDevice:
    """A device with an active LoRaWAN credential, as The Things Stack needs it."""

    device_id: uuid.UUID
    serial: str
    name: str
    state: str
    dev_eui: str
    join_eui: str | None
    app_key_sealed: str | None
    profile_network: dict[str, Any] | None
    nwk_key_sealed: str | None = None


def _record(row: Any) -> TtsRecord:
    return TtsRecord(
        row.device_id,
        row.application_id,
        row.end_device_id,
        row.dev_eui,
        row.status,
        row.last_error,
        row.updated_at,
        row.serial,
        row.origin,
        row.foreign_application_id,
        row.foreign_end_device_id,
    )


class TtsRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self.pending = PendingWork(conn, "tts")

    async def lorawan_devices(
        self, device_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, LorawanDevice]:
        rows = await self._conn.execute(
            select(
                devices.c.id,
                devices.c.serial,
                devices.c.name,
                devices.c.state,
                credentials.c.lookup,
                credentials.c.secret_sealed,
                credentials.c.nwk_key_sealed,
                device_tags.c.value.label("join_eui"),
                provision_profiles.c.lorawan,
            )
            .select_from(
                devices.join(
                    credentials,
                    and_(
                        credentials.c.device_id == devices.c.id,
                        credentials.c.type == CredentialType.LORAWAN.value,
                        credentials.c.revoked_at.is_(None),
                    ),
                )
                .outerjoin(
                    device_tags,
                    and_(
                        device_tags.c.device_id == devices.c.id, device_tags.c.key == JOIN_EUI_TAG
                    ),
                )
                .outerjoin(provision_profiles, provision_profiles.c.id == devices.c.profile_id)
            )
            .where(devices.c.id.in_(list(device_ids)))
            .order_by(credentials.c.created_at)
        )
        return {
            r.id: LorawanDevice(
                r.id,
                r.serial,
                r.name,
                r.state,
                r.lookup,
                r.join_eui,
                r.secret_sealed,
                r.lorawan,
                r.nwk_key_sealed,
            )
            for r in rows
        }

    async def records(
        self, device_ids: Sequence[uuid.UUID] | None = None
    ) -> dict[uuid.UUID, TtsRecord]:
        query = select(tts_devices)
        if device_ids is not None:
            query = query.where(tts_devices.c.device_id.in_(list(device_ids)))
        return {r.device_id: _record(r) for r in await self._conn.execute(query)}

    async def serials(self, device_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
        """The serials of these devices (the ones that still exist)."""
        if not device_ids:
            return {}
        rows = await self._conn.execute(
            select(devices.c.id, devices.c.serial).where(devices.c.id.in_(list(device_ids)))
        )
        return {r.id: r.serial for r in rows}

    async def save(self, record: TtsRecord) -> None:
        await self.forget(record.device_id)
        await self._conn.execute(
            insert_ignore(self._conn, tts_devices, ["device_id"]).values(
                device_id=record.device_id,
                application_id=record.application_id,
                end_device_id=record.end_device_id,
                dev_eui=record.dev_eui,
                status=record.status,
                last_error=record.last_error,
                updated_at=record.updated_at,
                serial=record.serial,
                origin=record.origin,
                foreign_application_id=record.foreign_application_id,
                foreign_end_device_id=record.foreign_end_device_id,
            )
        )

    async def forget(self, device_id: uuid.UUID) -> None:
        await self._conn.execute(delete(tts_devices).where(tts_devices.c.device_id == device_id))

    async def set_nwk_key(self, credential_id: uuid.UUID, nwk_key_sealed: str) -> None:
        """A LoRaWAN 1.1 device's NwkKey (sealed) beside its credential's AppKey."""
        await self._conn.execute(
            update(credentials)
            .where(credentials.c.id == credential_id)
            .values(nwk_key_sealed=nwk_key_sealed)
        )

    async def claimed_lorawan_ids(self) -> list[uuid.UUID]:
        """Every claimed device with an active LoRaWAN credential (for a full sync)."""
        rows = await self._conn.execute(
            select(devices.c.id)
            .select_from(
                devices.join(
                    credentials,
                    and_(
                        credentials.c.device_id == devices.c.id,
                        credentials.c.type == CredentialType.LORAWAN.value,
                        credentials.c.revoked_at.is_(None),
                    ),
                )
            )
            .where(devices.c.state == "claimed")
        )
        return [r.id for r in rows]
