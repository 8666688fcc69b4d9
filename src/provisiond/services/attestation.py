"""Certificate-chain attestation: a device proves itself by its TLS client certificate,
signed by its manufacturer's CA, and is provisioned on first contact with no profile secret
in its firmware (AWS's just-in-time provisioning, Azure's X.509 enrollment groups). The MQTT
provisioning listener and the mutual-TLS device API (transports/) pass the certificate the
handshake verified to :meth:`~provisiond.services.provisioning.Provisioner.answer` with a
request that carries no ``provisionDeviceSecret``; the handshake is the proof that the
device holds the certificate's key.

The rules, in order; each refusal is a ``FAILURE`` (``NOT_FOUND`` for an unknown issuer)
saying why, and writes nothing but a refused repeat's audit event:

1. The profile. The CA that signed the certificate must be the device CA of an enabled
   profile (``profiles … --device-ca``), valid now. The handshake only checked that the
   certificate chains to a CA trusted when the listener last reloaded them: the database
   decides, so a CA removed from its profile, or a disabled profile, admits nobody at
   once. The device CA must be the certificate's issuer: a manufacturer's intermediate is
   registered itself. A CA that is the device CA of several enabled profiles admits a
   device only when its request names one of them by ``provisionDeviceKey`` (not a
   secret); else it is refused as ambiguous. Refusals here count against the address's
   ``provisioning__unknown_source_rate_per_minute``; once a profile is known, its own
   limits apply.
2. The certificate: valid now, an acceptable key, its subject CN a serial provisiond can
   keep: the device's serial. ``deviceName``, when sent, must be that serial.
3. The credential is the certificate itself: an X.509 credential (its SHA-256
   fingerprint), so the profile must hand out ``x509`` and ``credentialsType``, when sent,
   must be ``X509_CERTIFICATE``. No other device may have registered the certificate.
4. The device is created (``allow-create``) or provisioned for the first time
   (``pre-provisioned``) as with a secret (services/device_provisioning.py).
5. A repeat, for a device this profile provisioned: the same certificate again is the same
   identity — ``SUCCESS`` with it, nothing issued or revoked, whatever the reprovisioning
   policy (the handshake proves the device holds the credential it was given). Another
   certificate for the serial (a new key its manufacturer signed) replaces the device's
   credentials under ``factory-reset`` (the old ones revoked); ``never`` and
   ``with-proof`` refuse it. A device whose credential an operator revoked
   (``devices revoke``) is refused whatever it presents.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from provisiond.domain.credentials import CredentialType
from provisiond.domain.profiles import Profile, ReprovisionPolicy
from provisiond.domain.serials import parse_serial
from provisiond.errors import InvalidInput
from provisiond.protocols import thingsboard as tb
from provisiond.services.certificate_proofs import common_name, issued_by
from provisiond.services.certificates import CertificateRefused, device_certificate, fingerprint
from provisiond.services.device_provisioning import provision_device
from provisiond.services.issuing import Job, ProvisionAnswer, ProvisionPolicy, refuse, too_many
from provisiond.services.ratelimit import (
    RateLimiter,
    log_refused,
    profile_wait,
    unknown_source_wait,
)
from provisiond.services.reprovisioning import confirm_repeat, refuse_repeat, replace_credentials
from provisiond.store.device_cas import tx_device_cas
from provisiond.store.profiles import StoredCa
from provisiond.store.provision_writer import ProvisionState, ProvisionTx, ProvisionWriter
from provisiond.store.uow import UnitOfWork

PROOF = "tls-certificate"  # the proof recorded in a repeat's event
UNKNOWN_ISSUER = "the client certificate was not issued by the device CA of an enabled profile"


async def device_cas(uow: UnitOfWork) -> list[str]:
    """The device CAs of the enabled profiles (PEM): what the listeners' TLS trusts for
    client certificates (the job checks the database again: rule 1)."""
    async with uow.read() as reading:
        return await reading.cas.device_ca_pems()


async def attest(
    writer: ProvisionWriter,
    limiter: RateLimiter,
    *,
    body: object,
    certificate: bytes,
    source: str,
    policy: ProvisionPolicy,
    now: datetime,
    transport: str,
) -> ProvisionAnswer:
    """Answer a request without a secret from a device that presented ``certificate`` (DER,
    verified by the TLS handshake). The certificate is read here, outside the writer."""
    try:
        request = tb.parse_attested_request(body)
        cert = x509.load_der_x509_certificate(certificate)
    except tb.Refused as refused:
        return refuse(refused.status, refused.message)
    except ValueError:
        return refuse(tb.FAILURE, "the client certificate cannot be read")
    serial: str | InvalidInput
    try:
        serial = parse_serial(common_name(cert), field="the certificate's subject CN")
    except InvalidInput as err:
        serial = err
    job = partial(
        _attest,
        request=request,
        cert=cert,
        serial=serial,
        limiter=limiter,
        source=source,
        policy=policy,
        now=now,
        transport=transport,
    )
    return await writer.run(job, serial=serial if isinstance(serial, str) else None)


def _attest(  # noqa: PLR0913 - the request and what the writer thread needs, bound once
    tx: ProvisionTx,
    *,
    request: tb.AttestedRequest,
    cert: x509.Certificate,
    serial: str | InvalidInput,
    limiter: RateLimiter,
    source: str,
    policy: ProvisionPolicy,
    now: datetime,
    transport: str,
) -> ProvisionAnswer:
    found = _profile(tx, cert, request, now)
    if isinstance(found, str):
        wait = unknown_source_wait(limiter, source, policy.unknown_source_rate_per_minute)
        if wait:
            return too_many(wait)
        log_refused("provisioning", found, source=source)
        return refuse(tb.NOT_FOUND if found == UNKNOWN_ISSUER else tb.FAILURE, found)
    profile, ca = found
    wait = profile_wait(limiter, profile, source)
    if wait:
        return too_many(wait)
    problem = _problem(profile, cert, serial, request, now)  # says why a bad CN is refused
    if problem is not None or not isinstance(serial, str):
        problem = problem or "the certificate's subject CN is not a serial"
        log_refused("provisioning", problem, source=source, profile=profile.name)
        return refuse(tb.FAILURE, problem)
    pem = cert.public_bytes(Encoding.PEM).decode()
    as_request = tb.ProvisionRequest(
        key=profile.key,
        secret="",
        device_name=request.device_name or serial,
        credentials_type=tb.TbCredentialsType.X509_CERTIFICATE,
        certificate=pem,
    )
    job = Job(profile, as_request, CredentialType.X509, serial, policy, transport, source, now)
    job.attested_by = ca.name
    state = tx.provision_state(serial)
    if state is not None and state.provisioned_at is not None:
        return _repeat(tx, job, state, fingerprint(cert))
    return provision_device(tx, job)


def _profile(
    tx: ProvisionTx, cert: x509.Certificate, request: tb.AttestedRequest, now: datetime
) -> tuple[Profile, StoredCa] | str:
    """The enabled profile whose device CA signed the certificate, or why there is none."""
    vouching = [
        (profile, device_ca.ca)
        for device_ca in tx_device_cas(tx)
        if issued_by(cert, device_ca.ca.certificate_pem, now)
        for profile in device_ca.profiles
    ]
    if not vouching:
        return UNKNOWN_ISSUER
    if request.key is not None:
        named = [(p, ca) for p, ca in vouching if p.key == request.key]
        if not named:
            cas = ", ".join(sorted({ca.name for _, ca in vouching}))
            return f"provisionDeviceKey names no profile whose device CA ({cas}) signed it"
        return named[0]
    if len(vouching) > 1:
        names = ", ".join(p.name for p, _ in vouching)
        return (
            f"the certificate's CA {vouching[0][1].name} is the device CA of several profiles "
            f"({names}): name one with provisionDeviceKey"
        )
    return vouching[0]


def _problem(
    profile: Profile,
    cert: x509.Certificate,
    serial: str | InvalidInput,
    request: tb.AttestedRequest,
    now: datetime,
) -> str | None:
    """Why this certificate cannot be this device's credential on this profile (None: it
    can)."""
    try:
        device_certificate(cert.public_bytes(Encoding.PEM).decode(), now=now)
    except CertificateRefused as refused:
        return f"the client certificate is refused: {refused}"
    if isinstance(serial, InvalidInput):
        return str(serial)
    if request.device_name is not None:
        try:
            named = parse_serial(request.device_name, field="deviceName")
        except InvalidInput as err:
            return str(err)
        if named != serial:
            return f"deviceName {named} is not the certificate's subject CN {serial}"
    if CredentialType.X509 not in profile.credential_types:
        return (
            f"profile {profile.name} does not hand out x509 credentials: certificate-chain "
            "attestation makes the device's certificate its credential"
        )
    if request.credentials_type not in (None, tb.TbCredentialsType.X509_CERTIFICATE):
        return (
            f"credentialsType {request.credentials_type}: a device attested by its "
            "certificate gets that certificate as its credential (X509_CERTIFICATE)"
        )
    return None


def _repeat(tx: ProvisionTx, job: Job, state: ProvisionState, presented: str) -> ProvisionAnswer:
    """A device provisioned already presents a certificate (rule 5)."""
    current = state.credential
    if state.profile_id != job.profile.id:
        return _refuse_repeat(tx, job, state, "provisioned by another profile")
    if current is not None and current.revoked_at is not None:
        return _refuse_repeat(tx, job, state, "its credential was revoked")
    if (
        current is not None
        and current.type is CredentialType.X509
        and state.credential_lookup == presented
    ):
        return confirm_repeat(tx, job, state, job.request.certificate or "", PROOF)
    if job.profile.reprovision is ReprovisionPolicy.FACTORY_RESET:
        return replace_credentials(tx, job, state, PROOF)
    return _refuse_repeat(
        tx,
        job,
        state,
        f"provisioned already with another credential (reprovisioning policy "
        f"{job.profile.reprovision.value})",
    )


def _refuse_repeat(
    tx: ProvisionTx, job: Job, state: ProvisionState, reason: str
) -> ProvisionAnswer:
    """The audited refusal of a repeat, saying why: the device proved who it is."""
    refuse_repeat(tx, job, state, reason)
    return refuse(tb.FAILURE, f"{tb.FAILED.rstrip('!')}: {reason}", job.serial)
