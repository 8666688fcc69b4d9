"""Certificates AWS IoT fleet provisioning made that wait for RegisterThing
(``aws_pending_certificates``): kept by the SHA-256 of their ownership token."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from provisiond.store.schema import aws_pending_certificates as _pending


@dataclass(frozen=True, slots=True)
class PendingCertificate:
    token_hash: str
    certificate_id: str
    ca_id: uuid.UUID
    serial_number: str
    certificate_pem: str
    not_before: datetime
    not_after: datetime
    claim: str  # the SHA-256 of the asking session's own certificate
    expires_at: datetime


def _from_row(row: Any) -> PendingCertificate:
    return PendingCertificate(
        row.token_hash,
        row.certificate_id,
        row.ca_id,
        row.serial_number,
        row.certificate_pem,
        row.not_before,
        row.not_after,
        row.claim,
        row.expires_at,
    )


class AwsRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, pending: PendingCertificate) -> None:
        await self._conn.execute(
            insert(_pending).values(
                token_hash=pending.token_hash,
                certificate_id=pending.certificate_id,
                ca_id=pending.ca_id,
                serial_number=pending.serial_number,
                certificate_pem=pending.certificate_pem,
                not_before=pending.not_before,
                not_after=pending.not_after,
                claim=pending.claim,
                expires_at=pending.expires_at,
            )
        )

    async def find(self, token_hash: str) -> PendingCertificate | None:
        row = (
            await self._conn.execute(select(_pending).where(_pending.c.token_hash == token_hash))
        ).first()
        return _from_row(row) if row else None

    async def is_pending(self, certificate_id: str) -> bool:
        row = (
            await self._conn.execute(
                select(_pending.c.token_hash).where(_pending.c.certificate_id == certificate_id)
            )
        ).first()
        return row is not None

    async def take(self, token_hash: str) -> bool:
        """Remove the row: True for the one caller that removed it (of two at once, the
        other waits for the first's transaction and removes nothing)."""
        result = await self._conn.execute(
            delete(_pending).where(_pending.c.token_hash == token_hash)
        )
        return bool(result.rowcount == 1)

    async def expired(self, now: datetime, limit: int) -> list[PendingCertificate]:
        rows = await self._conn.execute(
            select(_pending)
            .where(_pending.c.expires_at <= now)
            .order_by(_pending.c.expires_at)
            .limit(limit)
        )
        return [_from_row(r) for r in rows]
