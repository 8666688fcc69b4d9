"""Device self-provisioning: a device presents a profile's key and secret and gets its
credentials (ThingsBoard's provisioning contract; every transport calls
:meth:`Provisioner.answer`).

The rules, in order:

1. Rate limits. Requests with unknown or wrong profile credentials are limited per source
   address (``provisioning__unknown_source_rate_per_minute``); requests with a valid profile by
   the profile's own limits, for the profile as a whole and per address. A refused request
   says when to retry.
2. The key and secret must name an enabled profile (else ``NOT_FOUND``, the same answer for a
   wrong key, a wrong secret and a disabled profile).
3. The credential type asked for (or the profile's first) must be one the profile hands out;
   a token or MQTT password the device chooses must have the profile's
   ``device_secret_min_length``; a certificate it brings needs its proof
   (services/certificate_proofs.py).
4. ``allow-create``: a device not registered yet is created, claimed for the profile's group
   and of its model. ``pre-provisioned``: the device must have been registered beforehand
   (an import), not for another profile; it ends with exactly one credential (what it was
   imported with is revoked).
5. **One name, one identity.** A device that exists already (``allow-create``), or was
   provisioned already, is answered ``FAILURE`` "Failed to provision device!", exactly as
   ThingsBoard answers — unless the profile's reprovisioning policy accepts the proof the
   repeat carries (services/reprovisioning.py). Every refused repeat is audited
   (``device.reprovision-refused``).

A device that connected with a TLS client certificate and sends no secret is answered by
certificate-chain attestation instead (services/attestation.py): its certificate, signed by
a profile's device CA, is its proof.

Each provisioning is one transaction with its events; two requests for the same new device
at once, on one instance or two, make one device and one ``SUCCESS``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial

import orjson

from provisiond.domain.credentials import CredentialType
from provisiond.domain.profiles import Profile
from provisiond.domain.serials import parse_serial
from provisiond.errors import InvalidInput
from provisiond.protocols import thingsboard as tb
from provisiond.services.attestation import attest
from provisiond.services.certificates import (
    CertificateRefused,
    CheckedCsr,
    SignerCache,
    check_csr,
    is_csr,
)
from provisiond.services.credential_kinds import HANDLERS
from provisiond.services.device_provisioning import provision_device
from provisiond.services.issuing import (
    TB_NAMES,
    TB_TYPES,
    Job,
    ProvisionAnswer,
    ProvisionPolicy,
    random_text,
    refuse,
    too_many,
)
from provisiond.services.metrics import ERROR, NO_COUNTS, Counts, answer_outcome
from provisiond.services.profiles import check_profile_secret
from provisiond.services.ratelimit import (
    RateLimiter,
    log_refused,
    profile_wait,
    unknown_source_wait,
)
from provisiond.services.sealing import Sealer
from provisiond.store.provision_writer import ProvisionTx, ProvisionWriter

__all__ = [
    "MAX_REQUEST_BYTES",
    "ProvisionAnswer",
    "ProvisionPolicy",
    "Provisioner",
    "Source",
    "policy_from",
    "provision",
    "provision_payload",
]

MAX_REQUEST_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Source:
    """Where a provision request came from: what differs from one transport to another."""

    transport: str  # "http", "mqtt", "coap": recorded in the device.provisioned event
    address: str  # the client's address, as rate limits count it ("unknown" if none)
    certificate: bytes | None = None  # the TLS client certificate (DER) the handshake verified


@dataclass(frozen=True, slots=True)
class Provisioner:
    """Provisioning as the transports call it, with what is the same for the whole process
    (the writer, the rate limiter, the policy, the clock) bound once by the container."""

    writer: ProvisionWriter
    limiter: RateLimiter
    policy: ProvisionPolicy
    clock: Callable[[], datetime]
    counts: Counts = NO_COUNTS  # each answer counted by transport and outcome

    async def answer(self, payload: bytes | object, source: Source) -> ProvisionAnswer:
        """Answer one provision request: JSON bytes as a transport received them, or the
        request already decoded from JSON."""
        try:
            answer = await self._answer(payload, source)
        except Exception:
            self.counts.provisioning_answered(source.transport, ERROR)
            raise
        self.counts.provisioning_answered(source.transport, answer_outcome(answer))
        return answer

    async def _answer(self, payload: bytes | object, source: Source) -> ProvisionAnswer:
        if source.certificate is not None:  # a device that may have attested itself
            body = _decoded(bytes(payload)) if isinstance(payload, bytes | bytearray) else payload
            if isinstance(body, ProvisionAnswer):
                return body
            if not tb.carries_secret(body):
                return await attest(
                    self.writer,
                    self.limiter,
                    body=body,
                    certificate=source.certificate,
                    source=source.address,
                    policy=self.policy,
                    now=self.clock(),
                    transport=source.transport,
                )
            payload = body
        if isinstance(payload, bytes | bytearray):
            return await provision_payload(
                self.writer,
                self.limiter,
                payload=bytes(payload),
                source=source.address,
                policy=self.policy,
                now=self.clock(),
                transport=source.transport,
            )
        return await provision(
            self.writer,
            self.limiter,
            body=payload,
            source=source.address,
            policy=self.policy,
            now=self.clock(),
            transport=source.transport,
        )


async def provision_payload(
    writer: ProvisionWriter,
    limiter: RateLimiter,
    *,
    payload: bytes,
    source: str,
    policy: ProvisionPolicy,
    now: datetime,
    transport: str = "http",
) -> ProvisionAnswer:
    """Answer one provision request as a transport received it (JSON bytes)."""
    body = _decoded(payload)
    if isinstance(body, ProvisionAnswer):
        return body
    return await provision(
        writer, limiter, body=body, source=source, policy=policy, now=now, transport=transport
    )


def _decoded(payload: bytes) -> object:
    """A request's JSON, or the answer refusing it (too large, not JSON)."""
    if len(payload) > MAX_REQUEST_BYTES:
        return ProvisionAnswer(
            tb.failure(tb.FAILURE, f"the request is larger than {MAX_REQUEST_BYTES} bytes"),
            too_large=True,
        )
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        return refuse(tb.FAILURE, "the request is not valid JSON")


async def provision(
    writer: ProvisionWriter,
    limiter: RateLimiter,
    *,
    body: object,
    source: str,
    policy: ProvisionPolicy,
    now: datetime,
    transport: str = "http",
) -> ProvisionAnswer:
    """Answer one provision request (already decoded from JSON).

    Everything after parsing runs as one job on the provisioning writer (one transaction per
    batch of requests, see store/provision_writer.py): the answer comes after the commit."""
    try:
        request = tb.parse_request(body)
    except tb.Refused as refused:
        return refuse(refused.status, refused.message)
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
    return await writer.run(
        partial(
            _provision,
            request=request,
            named=named,
            csr=csr,
            limiter=limiter,
            source=source,
            policy=policy,
            now=now,
            transport=transport,
        ),
        serial=named if isinstance(named, str) else None,
    )


def _provision(  # noqa: PLR0913 - the request and everything the writer thread needs, bound once per request
    tx: ProvisionTx,
    *,
    request: tb.ProvisionRequest,
    named: str | InvalidInput | None,
    csr: CheckedCsr | CertificateRefused | None,
    limiter: RateLimiter,
    source: str,
    policy: ProvisionPolicy,
    now: datetime,
    transport: str,
) -> ProvisionAnswer:
    profile = _profile(tx, request)
    if profile is None:
        wait = unknown_source_wait(limiter, source, policy.unknown_source_rate_per_minute)
        if wait:
            return too_many(wait)
        log_refused("provisioning", "unknown provision key or wrong secret", source=source)
        return refuse(tb.NOT_FOUND, "Provision data was not found!")
    wait = profile_wait(limiter, profile, source)
    if wait:
        return too_many(wait)

    ctype = (
        TB_TYPES[request.credentials_type]
        if request.credentials_type
        else profile.credential_types[0]
    )
    problem = _request_problem(profile, request, ctype)
    if problem:
        return refuse(tb.FAILURE, problem)
    if isinstance(named, InvalidInput):
        return refuse(tb.FAILURE, str(named))
    serial = named or f"TB-{random_text(16)}"  # no name: 80 random bits, the server names it
    job = Job(profile, request, ctype, serial, policy, transport, source, now, csr)
    return provision_device(tx, job)


def _profile(tx: ProvisionTx, request: tb.ProvisionRequest) -> Profile | None:
    """The enabled profile the request's key and secret name (checked once per batch: a
    storm of one firmware's devices presents the same pair)."""
    memo = ("profile", request.key, request.secret)
    if memo not in tx.memo:
        tx.memo[memo] = check_profile_secret(tx.profile_by_key(request.key), request.secret)
    found: Profile | None = tx.memo[memo]
    return found


def _request_problem(
    profile: Profile, request: tb.ProvisionRequest, ctype: CredentialType
) -> str | None:
    if ctype not in profile.credential_types:
        allowed = ", ".join(TB_NAMES[t].value for t in profile.credential_types)
        return (
            f"{TB_NAMES[ctype].value} credentials are not handed out by this profile; "
            f"ask for {allowed}"
        )
    return HANDLERS[ctype].request_problem(profile, request)


def policy_from(
    unknown_source_rate: int,
    ca_passphrase: str | None = None,
    signers: SignerCache | None = None,
    broker_sealer: Sealer | None = None,
) -> ProvisionPolicy:
    return ProvisionPolicy(
        unknown_source_rate, ca_passphrase, signers or SignerCache(), broker_sealer
    )
