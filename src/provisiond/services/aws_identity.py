"""Who asks, in AWS IoT fleet provisioning (services/aws_fleet.py): the certificate a
session authenticated with, what it may do (:func:`usable_profiles`, :class:`Claim`), and
AWS's refusals (:class:`FleetRefused`)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from provisiond.domain.profiles import Profile
from provisiond.services.certificates import fingerprint
from provisiond.store.aws import PendingCertificate
from provisiond.store.certificates import IssuedCertificate, serial_hex
from provisiond.store.profiles import StoredCa
from provisiond.store.uow import UnitOfWork


class FleetRefused(Exception):
    """A refused request, in AWS's words (the ``/rejected`` payload)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def access_denied() -> FleetRefused:
    return FleetRefused(403, "AccessDenied", "this certificate may not provision devices")


def invalid_token() -> FleetRefused:
    return FleetRefused(
        400,
        "InvalidCertificateOwnershipToken",
        "the certificate ownership token is not valid (unknown, expired, used, or made "
        "for another certificate)",
    )


@dataclass(frozen=True, slots=True)
class Peer:
    """The certificate a session authenticated with."""

    certificate: x509.Certificate
    fingerprint: str

    @classmethod
    def of(cls, der: bytes) -> Peer:
        cert = x509.load_der_x509_certificate(der)
        return cls(cert, fingerprint(cert))

    @property
    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _issued_by(cert: x509.Certificate, ca: StoredCa) -> bool:
    issuer = x509.load_pem_x509_certificate(ca.certificate_pem.encode())
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, Exception):
        return False
    return True


async def usable_profiles(
    uow: UnitOfWork, peer: Peer
) -> tuple[list[Profile], IssuedCertificate | None]:
    """The enabled profiles (that sign certificates) this certificate may provision with,
    in name order, and, for a certificate provisiond issued to a device, its register entry.

    A certificate in a CA's register of provisiond is a device's: if revoked it may do
    nothing; else it may use the profiles that sign with its CA (for its own device only).
    A certificate provisiond made and nobody registered yet may do nothing. Any other is a
    claim certificate: the profiles whose device CA signed it."""
    cas = await uow.cas.list()
    issuer = next((ca for ca in cas if _issued_by(peer.certificate, ca)), None)
    if issuer is None:
        return [], None
    own = await uow.certificates.find(issuer.id, serial_hex(peer.certificate.serial_number))
    if own is not None and (
        own.revoked_at is not None or own.certificate_pem.strip() != peer.pem.strip()
    ):
        return [], None
    if own is None and await uow.aws.is_pending(peer.fingerprint):
        return [], None
    profiles = [
        p
        for p in await uow.profiles.list()
        if p.enabled
        and p.ca_id is not None
        and (p.ca_id == issuer.id if own is not None else p.device_ca_id == issuer.id)
    ]
    return profiles, own


@dataclass(frozen=True, slots=True)
class Claim:
    """A session's identity, worked out once at its CONNECT: its certificate, the profiles
    it may provision with, and the CA that signs the certificates it asks for (the first
    profile's)."""

    peer: Peer
    profiles: tuple[Profile, ...]
    signer: StoredCa | None
    device_serial: str | None = None  # a device's own certificate: the device it is for

    def profile(self, name: str) -> Profile | None:
        return next((p for p in self.profiles if p.name == name), None)


def check_pending(
    pending: PendingCertificate | None, claim: Claim, profile: Profile, now: datetime
) -> None:
    """Refuse a token that names no live pending certificate made for this session's
    certificate by the profile's CA."""
    if (
        pending is None
        or pending.expires_at <= now
        or not secrets.compare_digest(pending.claim, claim.peer.fingerprint)
    ):
        raise invalid_token()
    if pending.ca_id != profile.ca_id:
        raise FleetRefused(
            400,
            "InvalidRequest",
            "the certificate was made by another CA than this template's profile's",
        )
