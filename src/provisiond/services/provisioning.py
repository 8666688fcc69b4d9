"""Device self-provisioning: a device presents a profile's key and secret and gets its
credentials (ThingsBoard's provisioning contract; every transport calls :func:`provision`).

The rules, in order:

1. Rate limits. Requests with unknown or wrong profile credentials are limited per source
   address (``provision_unknown_source_rate_per_minute``); requests with a valid profile by
   the profile's own limits, for the profile as a whole and per address. A refused request
   says when to retry.
2. The key and secret must name an enabled profile (else ``NOT_FOUND``, the same answer for a
   wrong key, a wrong secret and a disabled profile).
3. The credential type asked for (or the profile's first) must be one the profile hands out.
4. ``allow-create``: a device not registered yet is created, claimed for the profile's group
   and of its model; one already registered is refused, unless rule 6 applies.
   ``pre-provisioned``: the device must have been registered beforehand (an import) and not
   provisioned yet, unless rule 6 applies.
5. The device gets one credential: generated, or the token / MQTT user name and password it
   chose (at least 16 characters, so a SHA-256 of it is safe to store).
6. **A lost answer.** A device provisioned by this profile whose credential has never been
   used may provision again within ``provision_retry_window_seconds``: a generated credential
   is replaced (the unused one is revoked, so the device still ends with exactly one), a
   credential the device chose is confirmed when it presents the same one again. Once the
   credential has been used, or the window has passed, the device is provisioned for good:
   re-issuing credentials is then an operator's act.

Each provisioning is one transaction with its events; two requests for the same new device
at once make one device (the second sees the first's and follows rule 6).
"""

from __future__ import annotations

import secrets
import string
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import orjson
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from provisiond.domain.credentials import Credential, CredentialType
from provisiond.domain.events import EventType, NewEvent
from provisiond.domain.limits import NAME_MAX
from provisiond.domain.profiles import Profile, Strategy
from provisiond.domain.serials import parse_serial
from provisiond.errors import InvalidInput
from provisiond.protocols import thingsboard as tb
from provisiond.services.certificates import (
    CertificateRefused,
    CheckedCsr,
    SignerCache,
    check_csr,
    device_certificate,
    fingerprint,
    is_csr,
    public_key_sha256,
)
from provisiond.services.devices import profile_device
from provisiond.services.hashing import hash_token, new_split_token, tokens_equal
from provisiond.services.ids import new_id
from provisiond.services.profiles import check_profile_secret
from provisiond.services.ratelimit import RateLimiter, log_refused
from provisiond.services.sealing import Sealer
from provisiond.store.certificates import IssuedCertificate, serial_hex
from provisiond.store.devices import ProvisionState
from provisiond.store.provision_writer import ProvisionTx, ProvisionWriter

DEVICE_SECRET_MIN = 16  # a token or MQTT password a device chooses
MAX_REQUEST_BYTES = 64 * 1024
_TB_TYPES = {
    tb.TbCredentialsType.ACCESS_TOKEN: CredentialType.ACCESS_TOKEN,
    tb.TbCredentialsType.MQTT_BASIC: CredentialType.MQTT_BASIC,
    tb.TbCredentialsType.X509_CERTIFICATE: CredentialType.X509,
}
_TB_NAMES = {v: k for k, v in _TB_TYPES.items()}
_BASE32 = string.ascii_uppercase + "234567"
ALREADY_PROVISIONED = "The device is already provisioned"


@dataclass(frozen=True, slots=True)
class ProvisionPolicy:
    retry_window: timedelta
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
    def succeeded(self) -> bool:
        return bool(self.body.get("status") == tb.SUCCESS)


@dataclass(slots=True)
class _Issued:
    credential: Credential
    value: str | dict[str, str | None]  # what the device is told
    lookup: str | None
    secret_hash: str | None
    client_id: str | None = None
    events: list[str] = field(default_factory=list)
    broker_secret: str | None = None  # what the broker must know (token, MQTT password)
    certificate: IssuedCertificate | None = None  # signed by a CA of ours: its register


def _refuse(status: str, message: str, serial: str | None = None) -> ProvisionAnswer:
    return ProvisionAnswer(tb.failure(status, message), serial=serial)


def _random(n: int) -> str:
    return "".join(secrets.choice(_BASE32) for _ in range(n))


async def provision_payload(writer: ProvisionWriter, limiter: RateLimiter, *, payload: bytes,
                            source: str, policy: ProvisionPolicy,
                            now: datetime) -> ProvisionAnswer:
    """Answer one provision request as a transport received it (JSON bytes)."""
    if len(payload) > MAX_REQUEST_BYTES:
        return ProvisionAnswer(tb.failure(tb.FAILURE, f"the request is larger than "
                                          f"{MAX_REQUEST_BYTES} bytes"), too_large=True)
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return _refuse(tb.FAILURE, "the request is not valid JSON")
    return await provision(writer, limiter, body=body, source=source, policy=policy, now=now)


async def provision(writer: ProvisionWriter, limiter: RateLimiter, *, body: object,
                    source: str, policy: ProvisionPolicy, now: datetime) -> ProvisionAnswer:
    """Answer one provision request (already decoded from JSON).

    Everything after parsing runs as one job on the provisioning writer (one transaction per
    batch of requests, see store/provision_writer.py): the answer comes after the commit."""
    try:
        request = tb.parse_request(body)
    except tb.Refused as refused:
        return _refuse(refused.status, refused.message)
    # The name and a CSR are checked here, outside the writer (a CSR's signature check is
    # costly); the job uses the outcomes only if the request gets that far.
    named: str | InvalidInput | None = None
    if request.device_name is not None:
        try:
            named = parse_serial(request.device_name, field="deviceName")
        except InvalidInput as err:
            named = err
    csr: CheckedCsr | CertificateRefused | None = None
    if isinstance(named, str) and request.certificate and is_csr(request.certificate):
        try:
            csr = check_csr(request.certificate, serial=named)
        except CertificateRefused as refused:
            csr = refused
    return await writer.run(partial(_provision, request=request, named=named, csr=csr,
                                    limiter=limiter, source=source, policy=policy, now=now),
                            serial=named if isinstance(named, str) else None)


def _provision(tx: ProvisionTx, *, request: tb.ProvisionRequest,
               named: str | InvalidInput | None, csr: CheckedCsr | CertificateRefused | None,
               limiter: RateLimiter, source: str, policy: ProvisionPolicy,
               now: datetime) -> ProvisionAnswer:
    profile = check_profile_secret(tx.profile_by_key(request.key), request.secret)
    if profile is None:
        wait = limiter.take(("unknown", source), policy.unknown_source_rate_per_minute)
        if wait:
            return _too_many(wait)
        log_refused("provisioning", "unknown provision key or wrong secret", source=source)
        return _refuse(tb.NOT_FOUND, "Provision data was not found!")
    wait = max(limiter.take(("profile", profile.id), profile.rate_per_minute),
               limiter.take(("source", profile.id, source), profile.source_rate_per_minute))
    if wait:
        return _too_many(wait)

    ctype = (_TB_TYPES[request.credentials_type] if request.credentials_type
             else profile.credential_types[0])
    if ctype not in profile.credential_types:
        allowed = ", ".join(_TB_NAMES[t].value for t in profile.credential_types)
        return _refuse(tb.FAILURE, f"{_TB_NAMES[ctype].value} credentials are not handed out "
                                   f"by this profile; ask for {allowed}")
    if ctype is CredentialType.X509 and not request.certificate:
        return _refuse(tb.FAILURE, "X509_CERTIFICATE needs a CSR or a certificate (PEM) in "
                                   "hash")
    if ctype is CredentialType.X509 and is_csr(request.certificate or "") \
            and profile.ca_id is None:
        return _refuse(tb.FAILURE, "this profile has no certificate authority to sign CSRs; "
                                   "send a certificate instead")
    problem = _device_choice_problem(request)
    if problem:
        return _refuse(tb.FAILURE, problem)
    if isinstance(named, InvalidInput):
        return _refuse(tb.FAILURE, str(named))
    serial = named or f"TB-{_random(16)}"  # no name: 80 random bits, the server names it
    return _provision_device(tx, profile, request, ctype, serial, policy, now, source, csr)


def _too_many(wait: float) -> ProvisionAnswer:
    return ProvisionAnswer(tb.failure(tb.FAILURE, f"Too many provision requests: retry in "
                                      f"{wait:.0f} s"), retry_after=wait)


def _device_choice_problem(request: tb.ProvisionRequest) -> str | None:
    if (request.credentials_type is tb.TbCredentialsType.ACCESS_TOKEN and request.token
            and len(request.token) < DEVICE_SECRET_MIN):
        return f"token must be at least {DEVICE_SECRET_MIN} characters"
    if request.credentials_type is tb.TbCredentialsType.MQTT_BASIC and (
            request.username or request.password or request.client_id):
        if not request.username or not request.password:
            return "MQTT_BASIC credentials chosen by the device need username and password"
        if len(request.password) < DEVICE_SECRET_MIN:
            return f"password must be at least {DEVICE_SECRET_MIN} characters"
    return None


def _provision_device(tx: ProvisionTx, profile: Profile, request: tb.ProvisionRequest,
                      ctype: CredentialType, serial: str, policy: ProvisionPolicy,
                      now: datetime, source: str,
                      csr: CheckedCsr | CertificateRefused | None) -> ProvisionAnswer:
    """Decide, then write: a refusal writes nothing."""
    actor = f"provisioning:{profile.name}"
    state = tx.provision_state(serial)
    if state is not None and state.provisioned_at is not None:
        return _provision_again(tx, profile, request, ctype, state, policy, now, actor, csr)
    if state is None and profile.strategy is Strategy.PRE_PROVISIONED:
        return _refuse(tb.FAILURE, f"Device {serial} was not registered beforehand", serial)
    if state is not None and profile.strategy is Strategy.ALLOW_CREATE:
        return _refuse(tb.FAILURE, f"Device {serial} is already registered", serial)

    new_device = None
    if state is None:
        new_device = profile_device(
            profile, serial=serial,
            name=serial if request.device_name is None
            else request.device_name.strip()[:NAME_MAX], actor=actor, now=now)
        device_id = new_device[0].id
    else:
        device_id = state.device_id
    issued = _make_credential(tx, request, ctype, device_id, serial, now, profile, policy, csr)
    if isinstance(issued, ProvisionAnswer):
        return issued
    if new_device is not None:
        device, model_id, registered = new_device
        tx.add_device(device, model_id=model_id, registered=registered, profile_id=profile.id,
                      credential_id=issued.credential.id, provisioned_at=now)
        _store_credential(tx, issued, serial, now, policy.broker_sealer)
    else:
        _store_credential(tx, issued, serial, now, policy.broker_sealer)
        tx.mark_provisioned(device_id, profile_id=profile.id,
                            credential_id=issued.credential.id, now=now)
    tx.add_event(NewEvent(
        EventType.DEVICE_PROVISIONED, now, actor, device_id=device_id, serial=serial,
        group_id=profile.group_id,
        data={"profile": profile.name, "credentials": ctype.value, "created": state is None,
              "device_chose_credentials": _chose(request), "source": source}))
    return ProvisionAnswer(tb.success(_TB_NAMES[ctype], issued.value), serial=serial)


def _chose(request: tb.ProvisionRequest) -> bool:
    """Whether the device chose its credential (a CSR asks for one to be made)."""
    return request.device_chose_credentials and not is_csr(request.certificate or "")


def _make_credential(tx: ProvisionTx, request: tb.ProvisionRequest, ctype: CredentialType,
                     device_id: uuid.UUID, serial: str, now: datetime, profile: Profile,
                     policy: ProvisionPolicy, csr: CheckedCsr | CertificateRefused | None
                     ) -> _Issued | ProvisionAnswer:
    """The credential to issue (nothing written yet), or the refusal."""
    credential = Credential(new_id(), device_id, ctype, now)
    if ctype is CredentialType.X509:
        pem = request.certificate or ""
        try:
            if is_csr(pem):
                ca = tx.ca(profile.ca_id) if profile.ca_id else None
                if ca is None:
                    return _refuse(tb.FAILURE, "this profile's certificate authority is gone",
                                   serial)
                if isinstance(csr, CertificateRefused):
                    raise csr
                checked = (csr if csr is not None and csr.serial == serial
                           else check_csr(pem, serial=serial))
                cert = policy.signers.get(ca, policy.ca_passphrase).issue(
                    checked, days=profile.certificate_days, now=now)
                ca_id: uuid.UUID | None = ca.id
            else:
                cert = device_certificate(pem, now=now)
                ca_id = None
        except CertificateRefused as err:
            return _refuse(tb.FAILURE, str(err), serial)
        lookup = fingerprint(cert)
        if tx.lookup_taken(ctype, lookup):
            return _refuse(tb.FAILURE, "this certificate is in use by another device", serial)
        cert_pem = cert.public_bytes(Encoding.PEM).decode()
        register = None if ca_id is None else IssuedCertificate(
            ca_id, serial_hex(cert.serial_number), credential.id, device_id, serial,
            public_key_sha256(cert.public_key()),  # type: ignore[arg-type]
            cert_pem, cert.not_valid_before_utc, cert.not_valid_after_utc)
        return _Issued(credential, cert_pem, lookup, None, certificate=register)
    if ctype is CredentialType.ACCESS_TOKEN:
        if request.token:
            lookup = hash_token(request.token)
            if tx.lookup_taken(ctype, lookup):
                return _refuse(tb.FAILURE, "this token is in use by another device", serial)
            return _Issued(credential, request.token, lookup, None,
                           broker_secret=request.token)
        token, verifier_hash = new_split_token(credential.id)
        return _Issued(credential, token, None, verifier_hash, broker_secret=token)
    # MQTT basic
    if request.username and request.password:
        username, password = request.username, request.password
        if tx.lookup_taken(ctype, username):
            return _refuse(tb.FAILURE, "this MQTT user name is in use by another device",
                           serial)
    else:
        username, password = f"{serial[:40]}-{_random(8)}", secrets.token_urlsafe(24)
    client_id = request.client_id or serial
    return _Issued(credential, {"clientId": client_id, "userName": username,
                                "password": password},
                   username, hash_token(password), client_id, broker_secret=password)


def _store_credential(tx: ProvisionTx, issued: _Issued, serial: str, now: datetime,
                      sealer: Sealer | None) -> None:
    credential = issued.credential
    sealed = (sealer.seal(issued.broker_secret)
              if sealer is not None and issued.broker_secret is not None else None)
    tx.add_credential(credential, lookup=issued.lookup, secret_hash=issued.secret_hash,
                      client_id=issued.client_id, secret_sealed=sealed)
    if issued.certificate is not None:
        tx.add_certificate(issued.certificate)
    tx.add_event(NewEvent(EventType.CREDENTIALS_ISSUED, now, "provisioning",
                          device_id=credential.device_id, serial=serial,
                          data={"type": credential.type.value,
                                "credential_id": str(credential.id)}))


def _provision_again(tx: ProvisionTx, profile: Profile, request: tb.ProvisionRequest,
                     ctype: CredentialType, state: ProvisionState, policy: ProvisionPolicy,
                     now: datetime, actor: str, csr: CheckedCsr | CertificateRefused | None
                     ) -> ProvisionAnswer:
    """Rule 6: the answer to an earlier provisioning may have been lost."""
    given = state.credential
    pending = (state.profile_id == profile.id and given is not None
               and given.revoked_at is None and given.first_used_at is None
               and state.provisioned_at is not None
               and now - state.provisioned_at <= policy.retry_window)
    if not pending or given is None or given.type is not ctype:
        return _refuse(tb.FAILURE, ALREADY_PROVISIONED, state.serial)
    if _chose(request):
        if not _same_choice(request, ctype, state):
            return _refuse(tb.FAILURE, ALREADY_PROVISIONED, state.serial)
        value: str | dict[str, str | None] = (
            request.token or "" if ctype is CredentialType.ACCESS_TOKEN
            else request.certificate or "" if ctype is CredentialType.X509
            else {"clientId": state.credential_client_id, "userName": request.username,
                  "password": request.password})
        tx.add_event(NewEvent(
            EventType.DEVICE_PROVISIONED, now, actor, device_id=state.device_id,
            serial=state.serial, group_id=profile.group_id,
            data={"profile": profile.name, "credentials": ctype.value, "repeated": True}))
        return ProvisionAnswer(tb.success(_TB_NAMES[ctype], value), serial=state.serial)
    if (ctype is CredentialType.ACCESS_TOKEN and state.credential_lookup is not None
            and state.credential_secret_hash is None):
        return _refuse(tb.FAILURE, ALREADY_PROVISIONED, state.serial)  # chose a token before
    issued = _make_credential(tx, request, ctype, state.device_id, state.serial, now, profile,
                              policy, csr)
    if isinstance(issued, ProvisionAnswer):
        return issued
    tx.revoke_credential(given.id, now)
    _store_credential(tx, issued, state.serial, now, policy.broker_sealer)
    tx.mark_provisioned(state.device_id, profile_id=profile.id,
                        credential_id=issued.credential.id, now=now)
    tx.add_event(NewEvent(
        EventType.DEVICE_PROVISIONED, now, actor, device_id=state.device_id,
        serial=state.serial, group_id=profile.group_id,
        data={"profile": profile.name, "credentials": ctype.value, "reissued": True,
              "revoked_credential_id": str(given.id)}))
    return ProvisionAnswer(tb.success(_TB_NAMES[ctype], issued.value), serial=state.serial)


def _same_choice(request: tb.ProvisionRequest, ctype: CredentialType,
                 state: ProvisionState) -> bool:
    if ctype is CredentialType.X509:
        try:
            cert = x509.load_pem_x509_certificate((request.certificate or "").encode())
        except ValueError:
            return False
        return fingerprint(cert) == state.credential_lookup
    if ctype is CredentialType.ACCESS_TOKEN:
        return (request.token is not None and state.credential_lookup is not None
                and tokens_equal(hash_token(request.token), state.credential_lookup))
    return (request.username is not None and request.password is not None
            and request.username == state.credential_lookup
            and state.credential_secret_hash is not None
            and tokens_equal(hash_token(request.password), state.credential_secret_hash)
            and (request.client_id or state.serial) == state.credential_client_id)


def policy_from(retry_window_seconds: int, unknown_source_rate: int,
                ca_passphrase: str | None = None,
                signers: SignerCache | None = None,
                broker_sealer: Sealer | None = None) -> ProvisionPolicy:
    return ProvisionPolicy(timedelta(seconds=retry_window_seconds), unknown_source_rate,
                           ca_passphrase, signers or SignerCache(), broker_sealer)

