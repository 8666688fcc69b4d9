"""The register of certificates provisiond's CAs issued (``issued_certificates``): what the
CRL lists and the OCSP responder answers from.

A certificate is revoked in the same transaction as its credential (:class:`~provisiond.
store.devices.CredentialRepository` and the provisioning writer call :func:`revoke_sql`),
and when its device is deleted; it stays in the register, revoked, until it expires.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from provisiond.store.schema import issued_certificates


class RevocationReason(StrEnum):
    """RFC 5280's CRLReason, the ones provisiond gives (cryptography's ReasonFlags names)."""

    UNSPECIFIED = "unspecified"
    SUPERSEDED = "superseded"  # rotated, or the device provisioned again
    CESSATION_OF_OPERATION = "cessation_of_operation"  # the device was deleted
    KEY_COMPROMISE = "key_compromise"


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    ca_id: uuid.UUID
    serial_number: str  # hex, lower case, no leading zeros
    credential_id: uuid.UUID
    device_id: uuid.UUID
    device_serial: str
    public_key_sha256: str
    certificate_pem: str
    not_before: datetime
    not_after: datetime
    revoked_at: datetime | None = None
    revocation_reason: RevocationReason | None = None


def serial_hex(serial_number: int) -> str:
    """How the register writes a certificate's serial number."""
    return format(serial_number, "x")


def _from_row(row: Any) -> IssuedCertificate:
    return IssuedCertificate(
        row.ca_id, row.serial_number, row.credential_id, row.device_id, row.device_serial,
        row.public_key_sha256, row.certificate_pem, row.not_before, row.not_after,
        row.revoked_at,
        RevocationReason(row.revocation_reason) if row.revocation_reason else None)


class CertificateRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, cert: IssuedCertificate) -> None:
        await self._conn.execute(insert(issued_certificates).values(
            ca_id=cert.ca_id, serial_number=cert.serial_number,
            credential_id=cert.credential_id, device_id=cert.device_id,
            device_serial=cert.device_serial, public_key_sha256=cert.public_key_sha256,
            certificate_pem=cert.certificate_pem, not_before=cert.not_before,
            not_after=cert.not_after))

    async def find(self, ca_id: uuid.UUID, serial_number: str) -> IssuedCertificate | None:
        row = (await self._conn.execute(select(issued_certificates).where(
            issued_certificates.c.ca_id == ca_id,
            issued_certificates.c.serial_number == serial_number))).first()
        return _from_row(row) if row else None

    async def for_credential(self, credential_id: uuid.UUID) -> IssuedCertificate | None:
        row = (await self._conn.execute(select(issued_certificates).where(
            issued_certificates.c.credential_id == credential_id))).first()
        return _from_row(row) if row else None

    async def revoked(self, ca_id: uuid.UUID, now: datetime) -> list[IssuedCertificate]:
        """The CA's revoked certificates that have not expired yet (what its CRL lists)."""
        rows = await self._conn.execute(select(issued_certificates).where(
            issued_certificates.c.ca_id == ca_id,
            issued_certificates.c.revoked_at.is_not(None),
            issued_certificates.c.not_after > now)
            .order_by(issued_certificates.c.revoked_at, issued_certificates.c.serial_number))
        return [_from_row(r) for r in rows]

    async def revoke_credential(self, credential_id: uuid.UUID, now: datetime,
                                reason: RevocationReason) -> None:
        await self._conn.execute(
            update(issued_certificates)
            .where(issued_certificates.c.credential_id == credential_id,
                   issued_certificates.c.revoked_at.is_(None))
            .values(revoked_at=now, revocation_reason=reason.value))

    async def revoke_device(self, device_id: uuid.UUID, now: datetime,
                            reason: RevocationReason) -> None:
        await self._conn.execute(
            update(issued_certificates)
            .where(issued_certificates.c.device_id == device_id,
                   issued_certificates.c.revoked_at.is_(None))
            .values(revoked_at=now, revocation_reason=reason.value))
