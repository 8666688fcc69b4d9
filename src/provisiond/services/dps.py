"""Azure DPS registrations (the device side of Azure's Device Provisioning Service), as the
DPS transports (transports/azure/) call them.

A device presents its id scope (``dps__id_scope``), its registration id and its
attestation: a shared access signature made with its symmetric key, or the TLS client
certificate it connected with. The rules, in order:

1. A source that keeps presenting wrong keys is throttled
   (``provisioning__unknown_source_rate_per_minute``), as provisioning with wrong profile
   secrets is; an enrollment's devices by its profile's own limits.
2. Attestation. A key: the registration's individual enrollment, if there is one, else an
   enrollment group whose derived key (HMAC-SHA256 of the registration id) signed the token;
   the token must be for this registration (``sr``), unexpired (``se``), ``skn`` absent or
   ``registration``. A certificate: its subject's common name is the registration id, it is
   valid now and issued by the device CA of an X.509 enrollment group (the TLS handshake
   checked the chain). Anything else is 401, the same answer for a wrong key, an unknown
   registration and an unknown scope.
3. Assignment. A group's device not registered yet is created (its profile's group, model);
   one registered beforehand (an individual enrollment, an import for a pre-provisioned
   profile) is provisioned. The answer names the device (``deviceId``: the registration id)
   and the enrollment's ``assignedHub``.
4. The same registration again follows the profile's reprovisioning policy
   (services/reprovisioning.py): ``never`` answers ``failed`` (409); ``with-proof`` and
   ``factory-reset`` answer the same assignment again — the key or certificate is the
   device's own, the proof only it holds — and provisiond has no credential of its to
   revoke. Every outcome is audited as self-provisioning's are.

Operations: the first answer is ``assigning`` with an operation id, the outcome is what a
status poll of that id returns (DPS's flow, which the SDKs follow). Operation ids live in
this process's memory for ``dps__operation_seconds``, bound to their registration id.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID

from provisiond.domain.enrollments import Attestation, Enrollment
from provisiond.domain.events import EventType, NewEvent
from provisiond.domain.profiles import ReprovisionPolicy, Strategy
from provisiond.domain.serials import normalise_serial, serial_problem
from provisiond.protocols import dps
from provisiond.services.devices import add_profile_device
from provisiond.services.ratelimit import RateLimiter, log_refused
from provisiond.services.sealing import Sealer
from provisiond.store.uow import UnitOfWork

ASSIGNED, ASSIGNING, FAILED = "assigned", "assigning", "failed"
MAX_OPERATIONS = 100_000
# DPS's error codes (status * 1000 + n), as its service answers them
UNAUTHORIZED = 401002
THROTTLED = 429001
CONFLICT = 409000
NOT_FOUND = 404201


@dataclass(frozen=True, slots=True)
class Attempt:
    """What a device presented: its registration and its proof."""

    id_scope: str
    registration_id: str
    sas: str | None  # the shared access signature (MQTT password, HTTP Authorization)
    certificate: bytes | None  # the TLS client certificate (DER), if it sent one
    transport: str  # "dps-mqtt" or "dps-https": recorded in the events
    source: str  # the client's address


@dataclass(frozen=True, slots=True)
class Answer:
    """DPS's answer: an HTTP-like status (MQTT carries it in the answer's topic) and body."""

    status: int
    body: dict[str, Any]
    retry_after: int | None = None


@dataclass(frozen=True, slots=True)
class DpsPolicy:
    id_scope: str | None
    unknown_source_rate_per_minute: int
    operation_seconds: float = 300.0


def _utc(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def error(status: int, code: int, message: str, now: datetime) -> Answer:
    return Answer(
        status,
        {
            "errorCode": code,
            "trackingId": str(uuid.uuid4()),
            "message": message,
            "timestampUtc": _utc(now),
        },
    )


class Operations:
    """Registration outcomes by operation id, each bound to its registration id and kept
    ``ttl`` seconds; at most ``cap`` (the oldest go first)."""

    def __init__(
        self, ttl: float, cap: int = MAX_OPERATIONS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl, self._cap, self._clock = ttl, cap, clock
        self._kept: OrderedDict[str, tuple[str, float, dict[str, Any]]] = OrderedDict()

    def begin(self, registration_id: str, outcome: dict[str, Any]) -> Answer:
        """Keep an outcome; the ``assigning`` answer naming its operation."""
        now = self._clock()
        while self._kept and (
            len(self._kept) >= self._cap or next(iter(self._kept.values()))[1] <= now
        ):
            self._kept.popitem(last=False)
        operation_id = f"4.{secrets.token_hex(8)}.{secrets.token_hex(16)}"
        outcome = {"operationId": operation_id, **outcome}
        self._kept[operation_id] = (registration_id, now + self._ttl, outcome)
        return Answer(202, {"operationId": operation_id, "status": ASSIGNING}, retry_after=1)

    def status(self, registration_id: str, operation_id: str) -> dict[str, Any] | None:
        """The outcome, for the registration that began it only (None: unknown, expired or
        another registration's)."""
        kept = self._kept.get(operation_id)
        if kept is None or kept[0] != registration_id or kept[1] <= self._clock():
            return None
        return kept[2]


@dataclass(frozen=True, slots=True)
class Registrar:
    """DPS registrations as the transports call them, with what is the same for the process
    bound once."""

    uow: Callable[[], UnitOfWork]
    sealer: Sealer
    limiter: RateLimiter
    policy: DpsPolicy
    clock: Callable[[], datetime]
    operations: Operations

    async def register(self, attempt: Attempt) -> Answer:
        """Register (``PUT …/register``): ``assigning`` with an operation id, or an error."""
        now = self.clock()
        outcome = await self._register(attempt, now)
        if isinstance(outcome, Answer):
            return outcome
        return self.operations.begin(attempt.registration_id, outcome)

    async def status(self, attempt: Attempt, operation_id: str) -> Answer:
        """An operation's status (``GET …/operations/{id}``): the device attests again."""
        now = self.clock()
        found = await self._attest(attempt, now)
        if isinstance(found, Answer):
            return found
        outcome = self.operations.status(attempt.registration_id, operation_id)
        if outcome is None:
            return error(404, NOT_FOUND, "Operation not found.", now)
        return Answer(200, outcome)

    async def x509_cas(self) -> list[str]:
        """The device CAs of the X.509 enrollment groups (PEM): the listeners' TLS trusts
        them for client certificates."""
        async with self.uow().read() as uow:
            return await uow.dps.x509_cas()

    async def _attest(self, attempt: Attempt, now: datetime) -> Enrollment | Answer:
        async with self.uow().read() as uow:
            found = await _enrollment(uow, self.sealer, self.policy, attempt, now)
        if isinstance(found, str):
            wait = self.limiter.take(
                ("dps-unknown", attempt.source), self.policy.unknown_source_rate_per_minute
            )
            log_refused("dps", found, source=attempt.source)
            if wait:
                return Answer(
                    429,
                    error(429, THROTTLED, "Too many requests.", now).body,
                    retry_after=max(1, round(wait)),
                )
            return error(401, UNAUTHORIZED, "Unauthorized", now)
        profile = found.profile
        wait = max(
            self.limiter.take(("profile", profile.id), profile.rate_per_minute),
            self.limiter.take(
                ("source", profile.id, attempt.source), profile.source_rate_per_minute
            ),
        )
        if wait:
            return Answer(
                429,
                error(429, THROTTLED, "Too many requests.", now).body,
                retry_after=max(1, round(wait)),
            )
        return found

    async def _register(self, attempt: Attempt, now: datetime) -> dict[str, Any] | Answer:
        found = await self._attest(attempt, now)
        if isinstance(found, Answer):
            return found
        async with self.uow() as uow:
            outcome = await _assign(uow, found, attempt, now)
            await uow.commit()
        return outcome


async def _enrollment(
    uow: UnitOfWork, sealer: Sealer, policy: DpsPolicy, attempt: Attempt, now: datetime
) -> Enrollment | str:
    """The enrollment the attempt proves, or why it proves none."""
    if policy.id_scope is None or attempt.id_scope != policy.id_scope:
        return "unknown id scope"
    serial = normalise_serial(attempt.registration_id)
    if serial_problem(serial) is not None:
        return "the registration id is not a serial provisiond can keep"
    if attempt.sas is not None:
        try:
            sas = dps.parse_sas(attempt.sas)
        except dps.DpsRefused as refused:
            return str(refused)
        return await _by_key(uow, sealer, attempt, sas, serial, int(now.timestamp()))
    if attempt.certificate is not None:
        return await _by_certificate(uow, attempt, now)
    return "neither a shared access signature nor a client certificate"


async def _by_key(
    uow: UnitOfWork, sealer: Sealer, attempt: Attempt, sas: dps.Sas, serial: str, now: int
) -> Enrollment | str:
    resource = dps.resource_of(attempt.id_scope, attempt.registration_id)
    individual = await uow.dps.individual(serial)
    if individual is not None:  # an individual enrollment comes before any group
        problem = dps.sas_problem(sas, sealer.unseal(individual.key_sealed or ""), resource, now)
        return problem or individual
    for group in await uow.dps.groups(Attestation.SYMMETRIC_KEY):
        key = dps.derive_device_key(sealer.unseal(group.key_sealed or ""), attempt.registration_id)
        if dps.sas_problem(sas, key, resource, now) is None:
            return group
    return "no enrollment's key signed the token"


async def _by_certificate(uow: UnitOfWork, attempt: Attempt, now: datetime) -> Enrollment | str:
    try:
        cert = x509.load_der_x509_certificate(attempt.certificate or b"")
    except ValueError:
        return "the client certificate is not X.509"
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names or names[0].value != attempt.registration_id:
        return "the certificate's common name is not the registration id"
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        return "the certificate is not valid now"
    for group in await uow.dps.groups(Attestation.X509):
        ca_id = group.profile.device_ca_id
        ca = await uow.cas.find_by_id(ca_id) if ca_id is not None else None
        if ca is None:
            continue
        if _issued_by(cert, x509.load_pem_x509_certificate(ca.certificate_pem.encode())):
            return group
    return "no X.509 enrollment group's CA issued the certificate"


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


async def _assign(
    uow: UnitOfWork, enrollment: Enrollment, attempt: Attempt, now: datetime
) -> dict[str, Any]:
    """Provision the device the enrollment admits; the operation's outcome."""
    profile, serial = enrollment.profile, normalise_serial(attempt.registration_id)
    device = await uow.devices.find_by_serial(serial)
    data: dict[str, Any] = {
        "profile": profile.name,
        "enrollment": "group" if enrollment.is_group else "individual",
        "attestation": enrollment.attestation.value,
        "transport": attempt.transport,
        "source": attempt.source,
    }
    actor = f"device:{serial}"
    if device is None:
        if profile.strategy is Strategy.PRE_PROVISIONED:
            return _failed(attempt, NOT_FOUND, "The device was not registered beforehand.")
        device = await add_profile_device(
            uow, profile, serial=serial, name=serial, actor=actor, now=now
        )
        return await _provisioned(uow, enrollment, attempt, device.id, device.group_id, now, data)
    provisioned_by, provisioned_at = await uow.dps.provision_state(device.id)

    async def refuse(reason: str) -> dict[str, Any]:
        await uow.events.add(
            NewEvent(
                EventType.DEVICE_REPROVISION_REFUSED,
                now,
                actor,
                device_id=device.id,
                serial=serial,
                group_id=device.group_id,
                data={**data, "reason": reason},
            )
        )
        log_refused("dps", f"device {serial} asked again: {reason}", source=attempt.source)
        return _failed(attempt, CONFLICT, f"Registration refused: {reason}.")

    if provisioned_at is not None:
        if provisioned_by != profile.id:
            return await refuse("provisioned by another profile")
        if profile.reprovision is ReprovisionPolicy.NEVER:
            return await refuse("already provisioned")
        data["repeated"] = True
        data["proof"] = enrollment.attestation.value
        return await _provisioned(uow, enrollment, attempt, device.id, device.group_id, now, data)
    if enrollment.is_group and profile.strategy is Strategy.ALLOW_CREATE:
        return await refuse("registered already")
    if provisioned_by not in (None, profile.id):
        return await refuse("registered for another profile")
    return await _provisioned(uow, enrollment, attempt, device.id, device.group_id, now, data)


async def _provisioned(
    uow: UnitOfWork,
    enrollment: Enrollment,
    attempt: Attempt,
    device_id: uuid.UUID,
    group_id: uuid.UUID | None,
    now: datetime,
    data: dict[str, Any],
) -> dict[str, Any]:
    await uow.dps.mark_provisioned(device_id, profile_id=enrollment.profile.id, now=now)
    await uow.events.add(
        NewEvent(
            EventType.DEVICE_PROVISIONED,
            now,
            f"device:{normalise_serial(attempt.registration_id)}",
            device_id=device_id,
            serial=normalise_serial(attempt.registration_id),
            group_id=group_id,
            data={**data, "assigned_hub": enrollment.assigned_hub},
        )
    )
    state: dict[str, Any] = {
        "registrationId": attempt.registration_id,
        "createdDateTimeUtc": _utc(now),
        "assignedHub": enrollment.assigned_hub,
        "deviceId": attempt.registration_id,
        "status": ASSIGNED,
        "substatus": "initialAssignment",
        "lastUpdatedDateTimeUtc": _utc(now),
        "etag": f'"{secrets.token_hex(8)}"',
    }
    if enrollment.attestation is Attestation.X509:
        state["x509"] = {}
    else:
        state["symmetricKey"] = {}
    return {"status": ASSIGNED, "registrationState": state}


def _failed(attempt: Attempt, code: int, message: str) -> dict[str, Any]:
    return {
        "status": FAILED,
        "registrationState": {
            "registrationId": attempt.registration_id,
            "status": FAILED,
            "errorCode": code,
            "errorMessage": message,
        },
    }
