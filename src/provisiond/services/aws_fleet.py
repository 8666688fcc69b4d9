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
  certificate made by the profile's CA. Under an allow-create profile the device is
  created (serial, name, tags, model and group from the parameters as the template says);
  under a pre-provisioned one it must have been registered beforehand. The certificate
  becomes its X.509 credential, in one transaction with its events, on the provisioning
  writer (services/aws_jobs.py). A token works once.
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
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from provisiond.domain.catalog import DeviceModel
from provisiond.domain.device import parse_tags
from provisiond.domain.groups import SEPARATOR, Group, parse_group_path
from provisiond.domain.limits import NAME_MAX
from provisiond.domain.profiles import Profile
from provisiond.domain.scope import within
from provisiond.domain.serials import parse_serial
from provisiond.errors import InvalidInput
from provisiond.protocols import thingsboard as tb
from provisiond.protocols.aws_fleet import RegisterThing
from provisiond.services.aws_identity import (
    Claim,
    FleetRefused,
    Peer,
    access_denied,
    check_pending,
    token_hash,
    usable_profiles,
)
from provisiond.services.aws_jobs import (
    TRANSPORT,
    DeviceFields,
    add_pending,
    expire_pending,
    register,
)
from provisiond.services.certificates import CheckedCsr, SignerCache, fingerprint
from provisiond.services.metrics import ERROR, NO_COUNTS, THROTTLED, Counts
from provisiond.services.ratelimit import RateLimiter
from provisiond.settings import AwsSettings, AwsTemplate
from provisiond.store.aws import PendingCertificate
from provisiond.store.certificates import serial_hex
from provisiond.store.provision_writer import (
    ProvisionWriter,
)
from provisiond.store.uow import UnitOfWork

__all__ = ["Claim", "Fleet", "FleetRefused", "HookFailed", "Peer", "expire_pending"]

log = logging.getLogger(__name__)
COMMON_NAME = "AWS IoT Certificate"
CLAIMS_CACHED = 10_000  # certificates whose Claim is remembered
_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_:.\-]+)\}")


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
            raise access_denied()
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
        await self.writer.run(partial(add_pending, pending=pending))
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
            check_pending(pending, claim, profile, self.clock())
            assert pending is not None  # noqa: S101 - check_pending refuses None
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
        refused = await self.writer.run(
            partial(
                register,
                claim=claim,
                profile=profile,
                hashed=hashed,
                device=DeviceFields(serial, name, tags, model, group),
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
