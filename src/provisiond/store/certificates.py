"""The register of certificates provisiond's CAs issued (``issued_certificates``): what the
CRL lists and the OCSP responder answers from; and each CA's current CRL (columns of
``certificate_authorities``), shared by every instance.

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

from provisiond.store.schema import certificate_authorities, issued_certificates

_cas = certificate_authorities


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
    certificate_pem: str
    not_before: datetime
    not_after: datetime
    revoked_at: datetime | None = None
    revocation_reason: RevocationReason | None = None


@dataclass(frozen=True, slots=True)
class CrlState:
    """Where a CA's CRL stands, without the CRL itself (read every second)."""

    ca_id: uuid.UUID
    name: str
    signs: bool  # it has its private key (a manufacturer's CA has none, and no CRL)
    number: int  # of the current CRL (0: none yet)
    requested: int  # counted up when the CA's revocations change
    covers: int  # the count the current CRL was made after
    this_update: datetime | None
    next_update: datetime | None


@dataclass(frozen=True, slots=True)
class StoredCrl:
    """A CA's current CRL, in both forms (PEM), or None before the first is made."""

    ca_name: str
    signs: bool
    number: int
    pem: str | None  # the complete CRL (no Issuing Distribution Point)
    dp_pem: str | None  # the same, for its distribution point (with the extension)
    this_update: datetime | None
    next_update: datetime | None


@dataclass(frozen=True, slots=True)
class NewCrl:
    number: int
    pem: str
    dp_pem: str
    this_update: datetime
    next_update: datetime
    covers: int


def serial_hex(serial_number: int) -> str:
    """How the register writes a certificate's serial number."""
    return format(serial_number, "x")


def _from_row(row: Any) -> IssuedCertificate:
    return IssuedCertificate(
        row.ca_id,
        row.serial_number,
        row.credential_id,
        row.device_id,
        row.device_serial,
        row.certificate_pem,
        row.not_before,
        row.not_after,
        row.revoked_at,
        RevocationReason(row.revocation_reason) if row.revocation_reason else None,
    )


class CertificateRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, cert: IssuedCertificate) -> None:
        await self._conn.execute(
            insert(issued_certificates).values(
                ca_id=cert.ca_id,
                serial_number=cert.serial_number,
                credential_id=cert.credential_id,
                device_id=cert.device_id,
                device_serial=cert.device_serial,
                certificate_pem=cert.certificate_pem,
                not_before=cert.not_before,
                not_after=cert.not_after,
            )
        )

    async def find(self, ca_id: uuid.UUID, serial_number: str) -> IssuedCertificate | None:
        row = (
            await self._conn.execute(
                select(issued_certificates).where(
                    issued_certificates.c.ca_id == ca_id,
                    issued_certificates.c.serial_number == serial_number,
                )
            )
        ).first()
        return _from_row(row) if row else None

    async def for_credential(self, credential_id: uuid.UUID) -> IssuedCertificate | None:
        row = (
            await self._conn.execute(
                select(issued_certificates).where(
                    issued_certificates.c.credential_id == credential_id
                )
            )
        ).first()
        return _from_row(row) if row else None

    async def revoked(self, ca_id: uuid.UUID, now: datetime) -> list[IssuedCertificate]:
        """The CA's revoked certificates that have not expired yet (what its CRL lists)."""
        rows = await self._conn.execute(
            select(issued_certificates)
            .where(
                issued_certificates.c.ca_id == ca_id,
                issued_certificates.c.revoked_at.is_not(None),
                issued_certificates.c.not_after > now,
            )
            .order_by(issued_certificates.c.revoked_at, issued_certificates.c.serial_number)
        )
        return [_from_row(r) for r in rows]

    async def revoke_credential(
        self, credential_id: uuid.UUID, now: datetime, reason: RevocationReason
    ) -> None:
        await self._revoke(issued_certificates.c.credential_id == credential_id, now, reason)

    async def revoke_device(
        self, device_id: uuid.UUID, now: datetime, reason: RevocationReason
    ) -> None:
        await self._revoke(issued_certificates.c.device_id == device_id, now, reason)

    async def _revoke(self, which: Any, now: datetime, reason: RevocationReason) -> None:
        """Revoke the certificates ``which`` selects that are not revoked yet."""
        await self._conn.execute(
            update(issued_certificates)
            .where(which, issued_certificates.c.revoked_at.is_(None))
            .values(revoked_at=now, revocation_reason=reason.value)
        )

    async def cas_revoking_since(self, since: datetime) -> list[uuid.UUID]:
        """The CAs that revoked a certificate at ``since`` or later: one seek per CA in the
        index of revocations, however many certificates there are."""
        revoked = select(issued_certificates.c.ca_id).where(
            issued_certificates.c.ca_id == _cas.c.id, issued_certificates.c.revoked_at >= since
        )
        rows = await self._conn.execute(select(_cas.c.id).where(revoked.exists()))
        return [r[0] for r in rows]

    # ------------------------------------------------------------------------- the CRLs

    async def request_crls(self, ca_ids: list[uuid.UUID]) -> None:
        """Ask for a new CRL of each of these CAs (their revocations changed)."""
        await self._conn.execute(
            update(_cas).where(_cas.c.id.in_(ca_ids)).values(crl_requested=_cas.c.crl_requested + 1)
        )

    async def crl_states(self) -> list[CrlState]:
        rows = await self._conn.execute(
            select(
                _cas.c.id,
                _cas.c.name,
                _cas.c.private_key_pem.is_not(None),
                _cas.c.crl_number,
                _cas.c.crl_requested,
                _cas.c.crl_covers,
                _cas.c.crl_this_update,
                _cas.c.crl_next_update,
            ).order_by(_cas.c.name)
        )
        return [CrlState(*r) for r in rows]

    async def crl(self, ca_name: str) -> StoredCrl | None:
        """The CA's current CRL (None: no such CA)."""
        row = (
            await self._conn.execute(
                select(
                    _cas.c.name,
                    _cas.c.private_key_pem.is_not(None),
                    _cas.c.crl_number,
                    _cas.c.crl_pem,
                    _cas.c.crl_dp_pem,
                    _cas.c.crl_this_update,
                    _cas.c.crl_next_update,
                ).where(_cas.c.name == ca_name)
            )
        ).first()
        return StoredCrl(*row) if row else None

    async def save_crl(self, ca_id: uuid.UUID, crl: NewCrl) -> bool:
        """Make ``crl`` the CA's current one, unless another was saved since the one it
        follows (``crl.number - 1``): then False, and nothing changes."""
        done = await self._conn.execute(
            update(_cas)
            .where(_cas.c.id == ca_id, _cas.c.crl_number == crl.number - 1)
            .values(
                crl_number=crl.number,
                crl_pem=crl.pem,
                crl_dp_pem=crl.dp_pem,
                crl_this_update=crl.this_update,
                crl_next_update=crl.next_update,
                crl_covers=crl.covers,
            )
        )
        return bool(done.rowcount)
