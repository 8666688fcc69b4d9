"""AWS IoT fleet provisioning by claim, as provisiond's use cases (transports/aws speaks
the wire).

Who asks is the certificate its session authenticated with (mutual TLS):

- a **claim certificate**, signed by a CA registered on a profile as its ``device_ca``: the
  session may use every enabled profile with that device CA (and a CA that signs);
- a **certificate provisiond issued** to a device (in its CA's register, not revoked): the
  session may use the profiles whose CA issued it, for that device only — RegisterThing
  gives it a new certificate in place of the current one (revoked) when the profile's
  reprovisioning policy is ``factory-reset``.

The operations:

- CreateKeysAndCertificate / CreateCertificateFromCsr: the first such profile's CA signs a
  client certificate (subject CN ``AWS IoT Certificate``, as AWS's: the device chose
  nothing in it) for the profile's ``certificate_days``; with it comes an ownership token
  (256 random bits, kept as its SHA-256) that lasts ``aws__token_seconds``, bound to the
  asking certificate. The certificate is *pending*: in no device's credentials yet.
- RegisterThing: the template names a profile (``aws__templates``, else the profile of that
  name); the token must be live, unused and made for this session's certificate, and the
  certificate made by the profile's CA. The device is created (serial, name and tags from
  the parameters as the template says), the certificate becomes its X.509 credential, in
  one transaction with its events. A token works once.
- Past its token's life a pending certificate is revoked: :func:`expire_pending` registers
  it revoked, and its CA's next CRL lists it.

With a ``pre_provisioning_hook`` on the template (AWS's pre-provisioning Lambda), each
RegisterThing that passes those checks is first POSTed to it (outside any transaction) as
AWS sends it to its Lambda — ``claimCertificateId``, ``certificateId``, ``certificatePem``,
``templateArn``, ``clientId``, ``parameters`` — and the hook answers
``{"allowProvisioning": bool, "parameterOverrides": {…}}`` within
``aws__hook_timeout_seconds``; the overrides replace those parameters before the template
fills the device. The outcomes, each leaving the token unused (it works again until it
expires):

- refused (``allowProvisioning`` false): 403 ``AccessDenied``;
- a hook error (unreachable, not 2xx, an answer that is not that object): 500
  ``InternalFailure``;
- no answer in time: 504 ``HookTimeout``.

Refusals are :class:`FleetRefused`: AWS's ``statusCode``, ``errorCode``, ``errorMessage``.
A template that does not exist and one this session may not use get the same answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from provisiond.domain.catalog import DeviceModel
from provisiond.domain.credentials import Credential, CredentialType
from provisiond.domain.device import parse_tags
from provisiond.domain.events import EventType, NewEvent
from provisiond.domain.groups import SEPARATOR, Group, parse_group_path
from provisiond.domain.limits import NAME_MAX
from provisiond.domain.profiles import Profile, ReprovisionPolicy, Strategy
from provisiond.domain.scope import within
from provisiond.domain.serials import parse_serial
from provisiond.errors import InvalidInput
from provisiond.protocols import thingsboard as tb
from provisiond.protocols.aws_fleet import RegisterThing
from provisiond.services.certificates import CheckedCsr, SignerCache, fingerprint
from provisiond.services.devices import profile_device
from provisiond.services.ids import new_id
from provisiond.services.metrics import ERROR, NO_COUNTS, THROTTLED, Counts
from provisiond.services.ratelimit import RateLimiter
from provisiond.settings import AwsSettings, AwsTemplate
from provisiond.store.aws import PendingCertificate
from provisiond.store.certificates import IssuedCertificate, RevocationReason, serial_hex
from provisiond.store.profiles import StoredCa
from provisiond.store.provision_writer import (
    Provisioned,
    ProvisionState,
    ProvisionTx,
    ProvisionWriter,
)
from provisiond.store.uow import UnitOfWork

log = logging.getLogger(__name__)
COMMON_NAME = "AWS IoT Certificate"
TRANSPORT = "aws"
SWEEP_BATCH = 500
CLAIMS_CACHED = 10_000  # certificates whose Claim is remembered
_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_:.\-]+)\}")


class FleetRefused(Exception):
    """A refused request, in AWS's words (the ``/rejected`` payload)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _access_denied() -> FleetRefused:
    return FleetRefused(403, "AccessDenied", "this certificate may not provision devices")


def _invalid_token() -> FleetRefused:
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


def _fill(text: str, serial: str, parameters: dict[str, str]) -> str:
    values = {**parameters, "serial": serial}
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


class HookFailed(Exception):
    """The pre-provisioning hook could not be asked, or did not answer 2xx JSON."""


# How a hook is asked (transports/aws/hook.py): (url, body) -> its JSON answer; raises
# HookFailed, or TimeoutError past the deadline.
AskHook = Callable[[str, dict[str, object]], Awaitable[object]]


async def _no_hook(url: str, body: dict[str, object]) -> object:  # noqa: ARG001 - an AskHook
    raise HookFailed(f"no client for pre-provisioning hooks ({url})")


def _overrides(answer: object) -> dict[str, str]:
    """The parameter overrides of a hook's answer allowing provisioning; FleetRefused."""
    if not isinstance(answer, dict) or not isinstance(answer.get("allowProvisioning"), bool):
        raise HookFailed("the hook's answer has no boolean allowProvisioning")
    if not answer["allowProvisioning"]:
        raise FleetRefused(403, "AccessDenied", "the pre-provisioning hook refused this device")
    overrides = answer.get("parameterOverrides") or {}
    if not isinstance(overrides, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in overrides.items()
    ):
        raise HookFailed("the hook's parameterOverrides is not an object of strings")
    return overrides


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


@dataclass(frozen=True, slots=True)
class Fleet:
    """Fleet provisioning as the listener calls it, bound once by the composition root.
    Writes go through the provisioning writer (store/provision_writer.py): group commit."""

    uow: Callable[[], UnitOfWork]
    writer: ProvisionWriter
    settings: AwsSettings
    signers: SignerCache
    passphrase: str | None
    limiter: RateLimiter
    clock: Callable[[], datetime]
    ask_hook: AskHook = _no_hook
    counts: Counts = NO_COUNTS  # each RegisterThing counted (transport "aws") by outcome
    # certificate fingerprint -> (until, its Claim): a fleet's devices share one claim
    # certificate, so its profiles are read once per aws__trust_refresh_seconds
    _claims: dict[str, tuple[float, Claim]] = field(default_factory=dict)

    async def trusted_cas(self) -> list[str]:
        """The PEM of every CA the listener accepts client certificates from (whether a
        certificate may do anything is decided per request)."""
        async with self.uow().read() as uow:
            return [ca.certificate_pem for ca in await uow.cas.list()]

    async def authenticate(self, peer: Peer) -> Claim:
        """What this certificate may do (as read at most aws__trust_refresh_seconds ago:
        a profile disabled, or a certificate of provisiond's revoked, counts for new
        sessions after that; RegisterThing checks its profile again when it writes)."""
        cached = self._claims.get(peer.fingerprint)
        if cached is not None and cached[0] > time.monotonic():
            return replace(cached[1], peer=peer)
        async with self.uow().read() as uow:
            profiles, own = await usable_profiles(uow, peer)
            ca_id = profiles[0].ca_id if profiles else None
            signer = await uow.cas.find_by_id(ca_id) if ca_id else None
        claim = Claim(peer, tuple(profiles), signer, own.device_serial if own else None)
        if len(self._claims) >= CLAIMS_CACHED:
            self._claims.clear()
        self._claims[peer.fingerprint] = (
            time.monotonic() + self.settings.trust_refresh_seconds,
            claim,
        )
        return claim

    # ------------------------------------------------------------- making certificates

    async def create_keys_and_certificate(self, claim: Claim) -> dict[str, str]:
        key = ec.generate_private_key(ec.SECP256R1())
        answer = await self._make(claim, key.public_key())
        answer["privateKey"] = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ).decode()
        return answer

    async def create_certificate_from_csr(self, claim: Claim, csr_pem: str) -> dict[str, str]:
        try:
            csr = x509.load_pem_x509_csr(csr_pem.encode())
        except ValueError:
            raise FleetRefused(
                400, "InvalidPayload", "the CSR is not PEM (BEGIN CERTIFICATE REQUEST)"
            ) from None
        if not csr.is_signature_valid:
            raise FleetRefused(400, "InvalidPayload", "the CSR's signature does not verify")
        public_key = csr.public_key()
        if not (
            (
                isinstance(public_key, ec.EllipticCurvePublicKey)
                and isinstance(public_key.curve, ec.SECP256R1 | ec.SECP384R1)
            )
            or (isinstance(public_key, rsa.RSAPublicKey) and public_key.key_size >= 2048)
        ):
            raise FleetRefused(
                400, "InvalidPayload", "the CSR's key must be EC P-256/P-384 or RSA 2048+"
            )
        return await self._make(claim, public_key)

    async def _make(
        self, claim: Claim, public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey
    ) -> dict[str, str]:
        if not claim.profiles:
            raise _access_denied()
        profile, ca = claim.profiles[0], claim.signer
        if ca is None:
            raise FleetRefused(500, "InternalFailure", "the profile's CA is gone")
        self._throttle(profile)
        now = self.clock()
        token = secrets.token_urlsafe(32)
        signer = self.signers.get(ca, self.passphrase)
        cert = signer.issue(
            CheckedCsr(COMMON_NAME, public_key), days=profile.certificate_days, now=now
        )
        pem = cert.public_bytes(serialization.Encoding.PEM).decode()
        certificate_id = fingerprint(cert)
        pending = PendingCertificate(
            token_hash(token),
            certificate_id,
            ca.id,
            serial_hex(cert.serial_number),
            pem,
            cert.not_valid_before_utc,
            cert.not_valid_after_utc,
            claim.peer.fingerprint,
            now + timedelta(seconds=self.settings.token_seconds),
        )
        await self.writer.run(partial(_add_pending, pending=pending))
        return {
            "certificateId": certificate_id,
            "certificatePem": pem,
            "certificateOwnershipToken": token,
        }

    def _throttle(self, profile: Profile) -> None:
        wait = self.limiter.take(("profile", profile.id), profile.rate_per_minute)
        if wait:
            raise FleetRefused(429, "Throttled", f"too many requests: retry in {wait:.0f} s")

    # ------------------------------------------------------------------ RegisterThing

    def template(self, name: str) -> AwsTemplate:
        return self.settings.templates.get(name) or AwsTemplate()

    async def register_thing(
        self,
        claim: Claim,
        template_name: str,
        request: RegisterThing,
        *,
        source: str,
        client_id: str = "",
    ) -> dict[str, object]:
        """RegisterThing's answer (``thingName``, ``deviceConfiguration``); FleetRefused.
        Counted in the provisioning metrics as transport ``aws``."""
        try:
            answer = await self._register_thing(
                claim, template_name, request, source=source, client_id=client_id
            )
        except FleetRefused as refused:
            self.counts.provisioning_answered(TRANSPORT, _outcome(refused.status))
            raise
        except Exception:
            self.counts.provisioning_answered(TRANSPORT, ERROR)
            raise
        self.counts.provisioning_answered(TRANSPORT, tb.SUCCESS)
        return answer

    async def _register_thing(
        self,
        claim: Claim,
        template_name: str,
        request: RegisterThing,
        *,
        source: str,
        client_id: str,
    ) -> dict[str, object]:
        template = self.template(template_name)
        profile = claim.profile(template.profile or template_name)
        if profile is None:
            raise FleetRefused(
                404, "ResourceNotFound", f"no provisioning template {template_name!r}"
            )
        hashed = token_hash(request.token)
        parameters = request.parameters
        if template.pre_provisioning_hook:
            async with self.uow().read() as uow:
                pending = await uow.aws.find(hashed)
            _check_pending(pending, claim, profile, self.clock())
            assert pending is not None  # noqa: S101 - _check_pending refuses None
            parameters = await self._ask(
                template.pre_provisioning_hook,
                template_name,
                claim.peer,
                pending,
                parameters,
                client_id,
            )
        self._throttle(profile)
        serial, name, tags = _device_fields(template, parameters)
        model, group = await self._placement(template, profile, parameters)
        if profile.strategy is not Strategy.ALLOW_CREATE:
            raise FleetRefused(
                400,
                "InvalidRequest",
                "RegisterThing creates devices: this template's profile is pre-provisioned",
            )
        refused = await self.writer.run(
            partial(
                _register,
                claim=claim,
                profile=profile,
                hashed=hashed,
                device=_Device(serial, name, tags, model, group),
                now=self.clock(),
                source=source,
            ),
            serial=serial,
        )
        if refused is not None:
            raise refused
        return {
            "thingName": _fill(template.thing_name, serial, parameters),
            "deviceConfiguration": {
                k: _fill(v, serial, parameters) for k, v in template.device_configuration.items()
            },
        }

    async def _placement(
        self, template: AwsTemplate, profile: Profile, parameters: dict[str, str]
    ) -> tuple[DeviceModel | None, Group | None]:
        """The model and group the parameters name, as the template says (None: the
        profile's); a group only below the profile's own."""
        model_name = parameters.get(template.model) if template.model else None
        group_below = parameters.get(template.group) if template.group else None
        if model_name is None and group_below is None:
            return None, None
        model = group = None
        async with self.uow().read() as uow:
            if model_name is not None:
                model = await uow.models.find_by_name(model_name.strip())
                if model is None:
                    raise FleetRefused(
                        400, "InvalidParameters", f"no model {model_name[:64]!r} in the catalogue"
                    )
            if group_below is not None:
                if profile.group_path is None:
                    raise FleetRefused(
                        400,
                        "InvalidParameters",
                        "this template's profile has no group to place devices below",
                    )
                try:
                    below = parse_group_path(group_below, field=template.group or "group")
                except InvalidInput as err:
                    raise FleetRefused(400, "InvalidParameters", str(err)) from None
                path = f"{profile.group_path}{SEPARATOR}{below}"
                group = await uow.groups.find_by_path(path)
                if group is None or not within(group.path, profile.group_path):
                    raise FleetRefused(
                        400, "InvalidParameters", f"no group {below[:128]!r} below the profile's"
                    )
        return model, group

    async def _ask(
        self,
        url: str,
        template_name: str,
        peer: Peer,
        pending: PendingCertificate,
        parameters: dict[str, str],
        client_id: str,
    ) -> dict[str, str]:
        """The parameters after the pre-provisioning hook's overrides; FleetRefused when it
        refuses, fails or is late."""
        body: dict[str, object] = {
            "claimCertificateId": peer.fingerprint,
            "certificateId": pending.certificate_id,
            "certificatePem": pending.certificate_pem,
            "templateArn": f"arn:provisiond:iot:::provisioningtemplate/{template_name}",
            "clientId": client_id,
            "parameters": parameters,
        }
        try:
            async with asyncio.timeout(self.settings.hook_timeout_seconds):
                answer = await self.ask_hook(url, body)
            return {**parameters, **_overrides(answer)}
        except TimeoutError:
            log.warning("AWS pre-provisioning hook %s did not answer in time", url)
            raise FleetRefused(
                504, "HookTimeout", "the pre-provisioning hook did not answer in time"
            ) from None
        except HookFailed as err:
            log.warning("AWS pre-provisioning hook %s failed: %s", url, err)
            raise FleetRefused(
                500, "InternalFailure", "the pre-provisioning hook failed; try again"
            ) from None


def _outcome(status: int) -> str:
    """A refusal's outcome in the provisioning metrics."""
    if status == 404:
        return tb.NOT_FOUND
    if status == 429:
        return THROTTLED
    return ERROR if status >= 500 else tb.FAILURE


def _check_pending(
    pending: PendingCertificate | None, claim: Claim, profile: Profile, now: datetime
) -> None:
    """Refuse a token that names no live pending certificate made for this session's
    certificate by the profile's CA."""
    if (
        pending is None
        or pending.expires_at <= now
        or not secrets.compare_digest(pending.claim, claim.peer.fingerprint)
    ):
        raise _invalid_token()
    if pending.ca_id != profile.ca_id:
        raise FleetRefused(
            400,
            "InvalidRequest",
            "the certificate was made by another CA than this template's profile's",
        )


def _add_pending(tx: ProvisionTx, *, pending: PendingCertificate) -> None:
    tx.add_aws_pending(pending)


@dataclass(frozen=True, slots=True)
class _Device:
    serial: str
    name: str
    tags: dict[str, str]
    model: DeviceModel | None = None  # None: the profile's
    group: Group | None = None  # None: the profile's


def _device_fields(
    template: AwsTemplate, parameters: dict[str, str]
) -> tuple[str, str, dict[str, str]]:
    """The device's serial, name and tags from the parameters, as the template says."""
    raw = parameters.get(template.serial)
    if raw is None:
        raise FleetRefused(
            400, "InvalidParameters", f"the parameter {template.serial!r} (the serial) is missing"
        )
    try:
        serial = parse_serial(raw, field=template.serial)
        tags = parse_tags(
            {k: parameters[p] for k, p in template.tags.items() if p in parameters}, field="tags"
        )
    except InvalidInput as err:
        raise FleetRefused(400, "InvalidParameters", str(err)) from None
    name = parameters.get(template.name, serial) if template.name else serial
    return serial, name.strip()[:NAME_MAX] or serial, tags


def _register(
    tx: ProvisionTx,
    *,
    claim: Claim,
    profile: Profile,
    hashed: str,
    device: _Device,
    now: datetime,
    source: str,
) -> FleetRefused | None:
    """The writer's job: check again in the transaction (the profile still enabled with its
    CA, the token live and unused, the serial free), then create the device with the pending
    certificate as its credential. A refusal is returned (it writes nothing), not raised."""
    current = tx.profile_by_key(profile.key)
    if current is None or not current[0].enabled or current[0].id != profile.id:
        return FleetRefused(404, "ResourceNotFound", "no such provisioning template")
    pending = tx.aws_pending(hashed)
    try:
        _check_pending(pending, claim, current[0], now)
    except FleetRefused as refused:
        return refused
    assert pending is not None  # noqa: S101 - _check_pending refuses None
    if claim.device_serial is not None and claim.device_serial != device.serial:
        return FleetRefused(
            403, "AccessDenied", "a device's own certificate may register that device only"
        )
    state = tx.provision_state(device.serial)
    if state is not None:
        if not _may_replace(state, claim, current[0]):
            return FleetRefused(
                409, "ResourceAlreadyExists", f"a thing {device.serial} is already registered"
            )
        if not tx.take_aws_pending(hashed):
            return _invalid_token()
        _replace(tx, profile, pending, state, now, source)
        return None
    if not tx.take_aws_pending(hashed):
        return _invalid_token()  # another instance took it meanwhile
    actor = f"provisioning:{profile.name}"
    if device.group is not None:  # below the profile's group (checked): placed there
        profile = replace(profile, group_id=device.group.id, group_path=device.group.path)
    made, model_id, registered = profile_device(
        profile,
        serial=device.serial,
        name=device.name,
        actor=actor,
        now=now,
        model=device.model,
        data={"transport": TRANSPORT},
    )
    made = replace(made, tags=device.tags)
    credential = Credential(new_id(), made.id, CredentialType.X509, now)
    tx.add_device(
        made,
        model_id=model_id,
        registered=registered,
        provisioned=Provisioned(profile.id, credential.id),
    )
    tx.add_tags(made)
    tx.add_credential(credential, lookup=pending.certificate_id, secret_hash=None)
    tx.add_certificate(
        IssuedCertificate(
            pending.ca_id,
            pending.serial_number,
            credential.id,
            made.id,
            device.serial,
            pending.certificate_pem,
            pending.not_before,
            pending.not_after,
        )
    )
    for kind, data in (
        (EventType.CREDENTIALS_ISSUED, {"type": "x509", "credential_id": str(credential.id)}),
        (
            EventType.DEVICE_PROVISIONED,
            {
                "profile": profile.name,
                "credentials": CredentialType.X509.value,
                "created": True,
                "certificate_id": pending.certificate_id,
                "transport": TRANSPORT,
                "source": source,
            },
        ),
    ):
        tx.add_event(
            NewEvent(
                kind,
                now,
                actor,
                device_id=made.id,
                serial=device.serial,
                group_id=made.group_id,
                data=data,
            )
        )
    return None


def _may_replace(state: ProvisionState, claim: Claim, profile: Profile) -> bool:
    """A registered device gets a new certificate only when its profile's reprovisioning
    policy is ``factory-reset`` and the session authenticated with the device's current
    certificate (proof of its key: the TLS handshake)."""
    return (
        profile.reprovision is ReprovisionPolicy.FACTORY_RESET
        and claim.device_serial == state.serial
        and state.profile_id == profile.id
        and state.credential is not None
        and state.credential.revoked_at is None
        and state.credential_lookup == claim.peer.fingerprint
    )


def _replace(
    tx: ProvisionTx,
    profile: Profile,
    pending: PendingCertificate,
    state: ProvisionState,
    now: datetime,
    source: str,
) -> None:
    """The device's new certificate in place of its current one, which is revoked."""
    actor = f"provisioning:{profile.name}"
    old = state.credential.id if state.credential else None
    credential = Credential(new_id(), state.device_id, CredentialType.X509, now)
    tx.add_credential(credential, lookup=pending.certificate_id, secret_hash=None)
    tx.add_certificate(
        IssuedCertificate(
            pending.ca_id,
            pending.serial_number,
            credential.id,
            state.device_id,
            state.serial,
            pending.certificate_pem,
            pending.not_before,
            pending.not_after,
        )
    )
    tx.mark_provisioned(
        state.device_id, Provisioned(profile.id, credential.id), replacing=old, now=now
    )
    revoked = [c for c, _ in tx.active_credentials(state.device_id) if c != credential.id]
    for credential_id in revoked:
        tx.revoke_credential(credential_id, now, RevocationReason.SUPERSEDED)
    for kind, data in (
        (EventType.CREDENTIALS_ISSUED, {"type": "x509", "credential_id": str(credential.id)}),
        (
            EventType.CREDENTIALS_REVOKED,
            {"credential_ids": [str(c) for c in revoked], "reason": "reprovisioned"},
        ),
        (
            EventType.DEVICE_PROVISIONED,
            {
                "profile": profile.name,
                "credentials": CredentialType.X509.value,
                "created": False,
                "reprovisioned": True,
                "certificate_id": pending.certificate_id,
                "transport": TRANSPORT,
                "source": source,
            },
        ),
    ):
        tx.add_event(
            NewEvent(
                kind,
                now,
                actor,
                device_id=state.device_id,
                serial=state.serial,
                group_id=state.group_id,
                data=data,
            )
        )


async def expire_pending(uow: UnitOfWork, *, now: datetime) -> int:
    """Revoke the certificates whose ownership token expired unused: each is registered,
    revoked, in its CA's register, and those CAs make a new CRL. How many were revoked."""
    async with uow:
        revoked = 0
        cas: set[uuid.UUID] = set()
        for pending in await uow.aws.expired(now, SWEEP_BATCH):
            if not await uow.aws.take(pending.token_hash):
                continue  # another instance's sweeper took it
            credential_id = new_id()
            await uow.certificates.add(
                IssuedCertificate(
                    pending.ca_id,
                    pending.serial_number,
                    credential_id,
                    new_id(),  # no device: it was never registered
                    f"aws-{pending.certificate_id[:16]}",
                    pending.certificate_pem,
                    pending.not_before,
                    pending.not_after,
                )
            )
            await uow.certificates.revoke_credential(
                credential_id, now, RevocationReason.CESSATION_OF_OPERATION
            )
            cas.add(pending.ca_id)
            revoked += 1
        if cas:
            await uow.certificates.request_crls(sorted(cas))
        await uow.commit()
    if revoked:
        log.info("revoked %d AWS certificates never registered by RegisterThing", revoked)
    return revoked
