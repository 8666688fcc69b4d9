"""What self-provisioning hands a device, and how it is written: the answer in
ThingsBoard's form, a certificate to issue (the other types are issued by their handlers in
services/credential_kinds.py), and its rows. Shared by services/provisioning.py (a first
provisioning) and services/reprovisioning.py (a repeat)."""

from __future__ import annotations

import secrets
import string
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding

from provisiond.domain.credentials import KINDS, Credential, CredentialType
from provisiond.domain.events import EventType, NewEvent
from provisiond.domain.profiles import Profile
from provisiond.protocols import thingsboard as tb
from provisiond.services.certificate_proofs import check_possession
from provisiond.services.certificates import (
    CertificateRefused,
    CheckedCsr,
    SignerCache,
    check_csr,
    device_certificate,
    fingerprint,
    is_csr,
)
from provisiond.services.retry_keys import hash_retry_key, seal_answer
from provisiond.services.sealing import Sealer
from provisiond.store.certificates import IssuedCertificate, RevocationReason, serial_hex
from provisiond.store.provision_writer import Provisioned, ProvisionTx

# ThingsBoard's name of each type provisioning issues (domain/credentials.py's table)
TB_NAMES = {
    t: tb.TbCredentialsType(k.thingsboard_name)
    for t, k in KINDS.items()
    if k.thingsboard_name is not None
}
TB_TYPES = {v: k for k, v in TB_NAMES.items()}
_BASE32 = string.ascii_uppercase + "234567"

Value = str | dict[str, str | None]  # what the device is told: a token, a PEM, MQTT basic


@dataclass(frozen=True, slots=True)
class ProvisionPolicy:
    unknown_source_rate_per_minute: int
    ca_passphrase: str | None = None
    signers: SignerCache = field(default_factory=SignerCache)
    broker_sealer: Sealer | None = None  # set: MQTT secrets are kept sealed for the broker


@dataclass(frozen=True, slots=True)
class ProvisionAnswer:
    """The answer to send: ThingsBoard's JSON, and for a rate-limited request the seconds
    after which to retry (HTTP turns that into 429 and Retry-After)."""

    body: dict[str, Any]
    retry_after: float | None = None
    serial: str | None = None
    too_large: bool = False  # the request was over MAX_REQUEST_BYTES

    @property
    def http_status(self) -> int:
        """Its HTTP status: 413 too large, 429 throttled (``Retry-After``), else 200 with
        ThingsBoard's JSON, whatever the outcome."""
        return 413 if self.too_large else 429 if self.retry_after else 200

    @property
    def succeeded(self) -> bool:
        return bool(self.body.get("status") == tb.SUCCESS)


@dataclass(slots=True)  # not frozen: one is made per request, and frozen costs its __init__
class Job:
    """One request as the writer's job sees it: who asks, over what, when."""

    profile: Profile
    request: tb.ProvisionRequest
    ctype: CredentialType
    serial: str
    policy: ProvisionPolicy
    transport: str
    source: str
    now: datetime
    csr: CheckedCsr | CertificateRefused | None = None
    attested_by: str | None = None  # certificate-chain attestation: the device CA's name

    @property
    def actor(self) -> str:
        return f"provisioning:{self.profile.name}"


@dataclass(slots=True)
class Issued:
    credential: Credential
    value: Value
    lookup: str | None
    secret_hash: str | None
    client_id: str | None = None
    broker_secret: str | None = None  # what the broker must know (token, MQTT password)
    certificate: IssuedCertificate | None = None  # signed by a CA of ours: its register


def refuse(status: str, message: str, serial: str | None = None) -> ProvisionAnswer:
    return ProvisionAnswer(tb.failure(status, message), serial=serial)


def too_many(wait: float) -> ProvisionAnswer:
    """A throttled request's answer: when to retry."""
    return ProvisionAnswer(
        tb.failure(tb.FAILURE, f"Too many provision requests: retry in {wait:.0f} s"),
        retry_after=wait,
    )


def succeed(job: Job, value: Value) -> ProvisionAnswer:
    return ProvisionAnswer(tb.success(TB_NAMES[job.ctype], value), serial=job.serial)


def random_text(n: int) -> str:
    return "".join(secrets.choice(_BASE32) for _ in range(n))


def chose(request: tb.ProvisionRequest) -> bool:
    """Whether the device chose its credential (a CSR asks for one to be made)."""
    return request.device_chose_credentials and not is_csr(request.certificate or "")


def issue_certificate(
    tx: ProvisionTx, job: Job, credential: Credential
) -> Issued | ProvisionAnswer:
    """A certificate for the device: signed from its CSR by the profile's CA, or the one it
    brought, with its proof of possession."""
    profile, serial, now = job.profile, job.serial, job.now
    pem = job.request.certificate or ""
    ca_id: uuid.UUID | None = None
    try:
        if is_csr(pem):
            ca = tx.ca(profile.ca_id) if profile.ca_id else None
            if ca is None:
                return refuse(tb.FAILURE, "this profile's certificate authority is gone", serial)
            if isinstance(job.csr, CertificateRefused):
                raise job.csr
            checked = (
                job.csr
                if job.csr is not None and job.csr.serial == serial
                else check_csr(pem, serial=serial)
            )
            cert = job.policy.signers.get(ca, job.policy.ca_passphrase).issue(
                checked, days=profile.certificate_days, now=now
            )
            ca_id = ca.id
        else:
            cert = device_certificate(pem, now=now)
            device_ca = tx.ca(profile.device_ca_id) if profile.device_ca_id else None
            check_possession(cert, job.request, serial=serial, device_ca=device_ca, now=now)
    except CertificateRefused as err:
        return refuse(tb.FAILURE, str(err), serial)
    lookup = fingerprint(cert)
    if tx.lookup_taken(job.ctype, lookup):
        return refuse(tb.FAILURE, "this certificate is in use by another device", serial)
    cert_pem = cert.public_bytes(Encoding.PEM).decode()
    register = (
        None
        if ca_id is None
        else IssuedCertificate(
            ca_id,
            serial_hex(cert.serial_number),
            credential.id,
            credential.device_id,
            serial,
            cert_pem,
            cert.not_valid_before_utc,
            cert.not_valid_after_utc,
        )
    )
    return Issued(credential, cert_pem, lookup, None, certificate=register)


def store_credential(tx: ProvisionTx, job: Job, issued: Issued, group_id: uuid.UUID | None) -> None:
    credential, sealer = issued.credential, job.policy.broker_sealer
    sealed = (
        sealer.seal(issued.broker_secret)
        if sealer is not None and issued.broker_secret is not None
        else None
    )
    tx.add_credential(
        credential,
        lookup=issued.lookup,
        secret_hash=issued.secret_hash,
        client_id=issued.client_id,
        secret_sealed=sealed,
    )
    if issued.certificate is not None:
        tx.add_certificate(issued.certificate)
    tx.add_event(
        NewEvent(
            EventType.CREDENTIALS_ISSUED,
            job.now,
            "provisioning",
            device_id=credential.device_id,
            serial=job.serial,
            group_id=group_id,
            data={"type": credential.type.value, "credential_id": str(credential.id)},
        )
    )


def job_event(
    tx: ProvisionTx,
    job: Job,
    kind: EventType,
    device_id: uuid.UUID,
    group_id: uuid.UUID | None,
    **data: Any,
) -> None:
    """The audit event of a provisioning job: the profile, the credential type, the
    transport and the source, and what ``data`` adds."""
    tx.add_event(
        NewEvent(
            kind,
            job.now,
            job.actor,
            device_id=device_id,
            serial=job.serial,
            group_id=group_id,
            data={
                "profile": job.profile.name,
                "credentials": job.ctype.value,
                **data,
                **({"attested_by": job.attested_by} if job.attested_by else {}),
                "transport": job.transport,
                "source": job.source,
            },
        )
    )


def provisioned(job: Job, issued: Issued) -> Provisioned:
    """The device's provisioning record: the credential, and when the request carried a
    retry key, the key's hash and the answer sealed with it."""
    key = job.request.retry_key
    if key is None:
        return Provisioned(job.profile.id, issued.credential.id)
    return Provisioned(
        job.profile.id,
        issued.credential.id,
        hash_retry_key(key),
        seal_answer(key, issued.credential.device_id, issued.value),
    )


def revoke_others(
    tx: ProvisionTx,
    job: Job,
    device_id: uuid.UUID,
    group_id: uuid.UUID | None,
    keep: uuid.UUID,
    reason: str,
) -> list[uuid.UUID]:
    """Revoke every credential the device connects with but ``keep`` (LoRaWAN root keys
    stay: they are the radio's identity), with the ``credentials.revoked`` event."""
    revoked = [c for c, _ in tx.active_credentials(device_id) if c != keep]
    for credential_id in revoked:
        tx.revoke_credential(credential_id, job.now, RevocationReason.SUPERSEDED)
    if revoked:
        tx.add_event(
            NewEvent(
                EventType.CREDENTIALS_REVOKED,
                job.now,
                job.actor,
                device_id=device_id,
                serial=job.serial,
                group_id=group_id,
                data={"credential_ids": [str(c) for c in revoked], "reason": reason},
            )
        )
    return revoked
