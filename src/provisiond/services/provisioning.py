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
from typing import Any

import orjson
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from provisiond.domain.credentials import Credential, CredentialType
from provisiond.domain.events import EventType, NewEvent
from provisiond.domain.limits import NAME_MAX
from provisiond.domain.profiles import Profile, Strategy
from provisiond.domain.serials import parse_serial
from provisiond.errors import DeviceExists, InvalidInput
from provisiond.protocols import thingsboard as tb
from provisiond.services.certificates import (
    CertificateRefused,
    SignerCache,
    device_certificate,
    fingerprint,
    is_csr,
)
from provisiond.services.devices import add_profile_device
from provisiond.services.hashing import hash_token, new_split_token, tokens_equal
from provisiond.services.ids import new_id
from provisiond.services.profiles import authenticate_profile
from provisiond.services.ratelimit import RateLimiter
from provisiond.store.devices import ProvisionState
from provisiond.store.uow import UnitOfWork

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


def _refuse(status: str, message: str, serial: str | None = None) -> ProvisionAnswer:
    return ProvisionAnswer(tb.failure(status, message), serial=serial)


def _random(n: int) -> str:
    return "".join(secrets.choice(_BASE32) for _ in range(n))


async def provision_payload(uow: UnitOfWork, limiter: RateLimiter, *, payload: bytes,
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
    return await provision(uow, limiter, body=body, source=source, policy=policy, now=now)


async def provision(uow: UnitOfWork, limiter: RateLimiter, *, body: object, source: str,
                    policy: ProvisionPolicy, now: datetime) -> ProvisionAnswer:
    """Answer one provision request (already decoded from JSON)."""
    try:
        request = tb.parse_request(body)
    except tb.Refused as refused:
        return _refuse(refused.status, refused.message)
    profile = await authenticate_profile(uow, key=request.key, secret=request.secret)
    if profile is None:
        wait = limiter.take(("unknown", source), policy.unknown_source_rate_per_minute)
        if wait:
            return ProvisionAnswer(tb.failure(tb.FAILURE, "Too many provision requests: "
                                              f"retry in {wait:.0f} s"), retry_after=wait)
        return _refuse(tb.NOT_FOUND, "Provision data was not found!")
    wait = max(limiter.take(("profile", profile.id), profile.rate_per_minute),
               limiter.take(("source", profile.id, source), profile.source_rate_per_minute))
    if wait:
        return ProvisionAnswer(tb.failure(tb.FAILURE, "Too many provision requests: "
                                          f"retry in {wait:.0f} s"), retry_after=wait)

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
    if request.device_name is None:
        serial = f"TB-{_random(16)}"  # 80 random bits: the server names the device
    else:
        try:
            serial = parse_serial(request.device_name, field="deviceName")
        except InvalidInput as err:
            return _refuse(tb.FAILURE, str(err))

    for attempt in range(2):
        try:
            return await _provision_device(uow, profile, request, ctype, serial, policy, now,
                                           source)
        except DeviceExists:
            # A request for the same new device committed first: decide again, seeing it.
            if attempt:
                raise
    raise AssertionError("unreachable")


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


async def _provision_device(uow: UnitOfWork, profile: Profile, request: tb.ProvisionRequest,
                            ctype: CredentialType, serial: str, policy: ProvisionPolicy,
                            now: datetime, source: str) -> ProvisionAnswer:
    actor = f"provisioning:{profile.name}"
    async with uow:
        uow.conflicts_as(DeviceExists(f"device {serial} was registered at the same moment",
                                      serial=serial))
        state = await uow.devices.provision_state(serial)
        created = False
        if state is None:
            if profile.strategy is Strategy.PRE_PROVISIONED:
                return _refuse(tb.FAILURE, f"Device {serial} was not registered beforehand",
                               serial)
            device_id = (await add_profile_device(
                uow, profile, serial=serial,
                name=serial if request.device_name is None
                else request.device_name.strip()[:NAME_MAX],
                actor=actor, now=now)).id
            created = True
        elif state.provisioned_at is None and profile.strategy is Strategy.PRE_PROVISIONED:
            device_id = state.device_id
        elif state.provisioned_at is None:
            return _refuse(tb.FAILURE, f"Device {serial} is already registered", serial)
        else:
            return await _provision_again(uow, profile, request, ctype, state, policy, now,
                                          actor)

        issued = await _issue(uow, request, ctype, device_id, serial, now, profile, policy)
        if isinstance(issued, ProvisionAnswer):
            return issued
        await uow.devices.mark_provisioned(device_id, profile_id=profile.id,
                                           credential_id=issued.credential.id, now=now)
        await uow.events.add(NewEvent(
            EventType.DEVICE_PROVISIONED, now, actor, device_id=device_id, serial=serial,
            group_id=profile.group_id,
            data={"profile": profile.name, "credentials": ctype.value, "created": created,
                  "device_chose_credentials": _chose(request),
                  "source": source}))
        await uow.commit()
    return ProvisionAnswer(tb.success(_TB_NAMES[ctype], issued.value), serial=serial)


def _chose(request: tb.ProvisionRequest) -> bool:
    """Whether the device chose its credential (a CSR asks for one to be made)."""
    return request.device_chose_credentials and not is_csr(request.certificate or "")


async def _issue(uow: UnitOfWork, request: tb.ProvisionRequest, ctype: CredentialType,
                 device_id: uuid.UUID, serial: str, now: datetime, profile: Profile,
                 policy: ProvisionPolicy) -> _Issued | ProvisionAnswer:
    credential = Credential(new_id(), device_id, ctype, now)
    if ctype is CredentialType.X509:
        pem = request.certificate or ""
        try:
            if is_csr(pem):
                ca = await uow.cas.find_by_id(profile.ca_id) if profile.ca_id else None
                if ca is None:
                    return _refuse(tb.FAILURE, "this profile's certificate authority is gone",
                                   serial)
                cert = policy.signers.get(ca, policy.ca_passphrase).sign(
                    pem, serial=serial, days=profile.certificate_days, now=now)
            else:
                cert = device_certificate(pem, now=now)
        except CertificateRefused as err:
            return _refuse(tb.FAILURE, str(err), serial)
        lookup = fingerprint(cert)
        if await uow.credentials.lookup_taken(ctype, lookup):
            return _refuse(tb.FAILURE, "this certificate is in use by another device", serial)
        issued = _Issued(credential, cert.public_bytes(Encoding.PEM).decode(), lookup, None)
    elif ctype is CredentialType.ACCESS_TOKEN:
        if request.token:
            lookup = hash_token(request.token)
            if await uow.credentials.lookup_taken(ctype, lookup):
                return _refuse(tb.FAILURE, "this token is in use by another device", serial)
            issued = _Issued(credential, request.token, lookup, None)
        else:
            token, verifier_hash = new_split_token(credential.id)
            issued = _Issued(credential, token, None, verifier_hash)
    else:  # MQTT basic
        if request.username and request.password:
            username, password = request.username, request.password
            if await uow.credentials.lookup_taken(ctype, username):
                return _refuse(tb.FAILURE, "this MQTT user name is in use by another device",
                               serial)
        else:
            username, password = f"{serial[:40]}-{_random(8)}", secrets.token_urlsafe(24)
        client_id = request.client_id or serial
        issued = _Issued(credential, {"clientId": client_id, "userName": username,
                                      "password": password},
                         username, hash_token(password), client_id)
    await uow.credentials.add(issued.credential, lookup=issued.lookup,
                              secret_hash=issued.secret_hash, client_id=issued.client_id)
    await uow.events.add(NewEvent(EventType.CREDENTIALS_ISSUED, now, "provisioning",
                                  device_id=device_id, serial=serial,
                                  data={"type": ctype.value,
                                        "credential_id": str(credential.id)}))
    return issued


async def _provision_again(uow: UnitOfWork, profile: Profile, request: tb.ProvisionRequest,
                           ctype: CredentialType, state: ProvisionState,
                           policy: ProvisionPolicy, now: datetime,
                           actor: str) -> ProvisionAnswer:
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
        await uow.events.add(NewEvent(
            EventType.DEVICE_PROVISIONED, now, actor, device_id=state.device_id,
            serial=state.serial, group_id=profile.group_id,
            data={"profile": profile.name, "credentials": ctype.value, "repeated": True}))
        await uow.commit()
        return ProvisionAnswer(tb.success(_TB_NAMES[ctype], value), serial=state.serial)
    if (ctype is CredentialType.ACCESS_TOKEN and state.credential_lookup is not None
            and state.credential_secret_hash is None):
        return _refuse(tb.FAILURE, ALREADY_PROVISIONED, state.serial)  # chose a token before
    await uow.credentials.revoke(given.id, now)
    issued = await _issue(uow, request, ctype, state.device_id, state.serial, now, profile,
                          policy)
    if isinstance(issued, ProvisionAnswer):
        return issued
    await uow.devices.mark_provisioned(state.device_id, profile_id=profile.id,
                                       credential_id=issued.credential.id, now=now)
    await uow.events.add(NewEvent(
        EventType.DEVICE_PROVISIONED, now, actor, device_id=state.device_id,
        serial=state.serial, group_id=profile.group_id,
        data={"profile": profile.name, "credentials": ctype.value, "reissued": True,
              "revoked_credential_id": str(given.id)}))
    await uow.commit()
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
                signers: SignerCache | None = None) -> ProvisionPolicy:
    return ProvisionPolicy(timedelta(seconds=retry_window_seconds), unknown_source_rate,
                           ca_passphrase, signers or SignerCache())

