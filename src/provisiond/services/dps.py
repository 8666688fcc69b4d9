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
   An enrollment with a custom allocation webhook asks it first (DPS's custom allocation:
   :meth:`Registrar._allocate`); its answer may name another host and a payload.
4. The same registration again follows the profile's reprovisioning policy
   (services/reprovisioning.py): ``never`` answers ``failed`` (409); ``with-proof`` and
   ``factory-reset`` answer the same assignment again — the key or certificate is the
   device's own, the proof only it holds — and provisiond has no credential of its to
   revoke. Every outcome is audited as self-provisioning's are.

Operations: the first answer is ``assigning`` with an operation id, the outcome is what a
status poll of that id returns (DPS's flow, which the SDKs follow). Operation ids live in
this process's memory for ``dps__operation_seconds``, bound to their owner: the MQTT
session that registered (it polls on the same connection), or over HTTPS the registration,
which attests again with every poll.

Each registration is one job of the provisioning writer: attestation, assignment and
events in the batch's transaction, committed with the batch's other jobs (group commit).
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import httpx
import orjson
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID

from provisiond.domain.destinations import url_destination
from provisiond.domain.enrollments import Attestation, Enrollment
from provisiond.domain.events import EventType, NewEvent
from provisiond.domain.profiles import ReprovisionPolicy, Strategy
from provisiond.domain.serials import normalise_serial, serial_problem
from provisiond.errors import InvalidInput
from provisiond.protocols import dps
from provisiond.services.destinations import DestinationGuard, DestinationRefused
from provisiond.services.devices import profile_device
from provisiond.services.enrollments import parse_hub
from provisiond.services.ratelimit import RateLimiter, log_refused, profile_wait
from provisiond.services.sealing import Sealer
from provisiond.store.dps import tx_groups, tx_individual, tx_mark_provisioned
from provisiond.store.provision_writer import ProvisionTx, ProvisionWriter
from provisiond.store.uow import UnitOfWork

ASSIGNED, ASSIGNING, FAILED = "assigned", "assigning", "failed"
MAX_OPERATIONS = 100_000
# DPS's error codes (status * 1000 + n), as its service answers them
UNAUTHORIZED = 401002
THROTTLED = 429001
CONFLICT = 409000
NOT_FOUND = 404201
ALLOCATION_FAILED = 400209


@dataclass(frozen=True, slots=True)
class Attempt:
    """What a device presented: its registration and its proof."""

    id_scope: str
    registration_id: str
    sas: str | None  # the shared access signature (MQTT password, HTTP Authorization)
    certificate: bytes | None  # the TLS client certificate (DER), if it sent one
    transport: str  # "dps-mqtt" or "dps-https": recorded in the events
    source: str  # the client's address
    payload: Any = None  # the register request's custom payload (for the allocation webhook)


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
    allocation_seconds: float = 5.0  # the custom allocation webhook's deadline
    https_requests: int = 16  # requests one HTTPS connection may make


@dataclass(frozen=True, slots=True)
class Allocation:
    """What a custom allocation webhook answered: the host, and a payload for the device."""

    hub: str
    payload: Any = None


@dataclass(frozen=True, slots=True)
class _Allocate:
    """A job's outcome: the enrollment asks its webhook before the device is assigned."""

    enrollment: Enrollment


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
    """Registration outcomes by operation id, each bound to its owner (the MQTT session
    that registered, or the registration over HTTPS) and kept ``ttl`` seconds; at most
    ``cap`` (the oldest go first)."""

    def __init__(
        self, ttl: float, cap: int = MAX_OPERATIONS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl, self._cap, self._clock = ttl, cap, clock
        self._kept: OrderedDict[str, tuple[str, float, dict[str, Any]]] = OrderedDict()

    def begin(self, owner: str, outcome: dict[str, Any]) -> Answer:
        """Keep an outcome; the ``assigning`` answer naming its operation."""
        now = self._clock()
        while self._kept and (
            len(self._kept) >= self._cap or next(iter(self._kept.values()))[1] <= now
        ):
            self._kept.popitem(last=False)
        operation_id = f"4.{secrets.token_hex(8)}.{secrets.token_hex(16)}"
        outcome = {"operationId": operation_id, **outcome}
        self._kept[operation_id] = (owner, now + self._ttl, outcome)
        return Answer(202, {"operationId": operation_id, "status": ASSIGNING}, retry_after=1)

    def status(self, owner: str, operation_id: str) -> dict[str, Any] | None:
        """The outcome, for the owner that began it only (None: unknown, expired or
        another's)."""
        kept = self._kept.get(operation_id)
        if kept is None or kept[0] != owner or kept[1] <= self._clock():
            return None
        return kept[2]


@dataclass(frozen=True, slots=True)
class Registrar:
    """DPS registrations as the transports call them, with what is the same for the process
    bound once. Each registration is one job of the provisioning writer (group commit:
    store/provision_writer.py), attestation included."""

    writer: ProvisionWriter
    uow: Callable[[], UnitOfWork]
    sealer: Sealer
    limiter: RateLimiter
    policy: DpsPolicy
    clock: Callable[[], datetime]
    operations: Operations
    guard: DestinationGuard | None = None  # where allocation webhooks may be reached

    async def x509_cas(self) -> list[str]:
        """The device CAs of the X.509 enrollment groups (PEM): the listeners' TLS trusts
        them for client certificates."""
        async with self.uow().read() as uow:
            return await uow.dps.x509_cas()

    async def register(self, attempt: Attempt, owner: str) -> Answer:
        """Register (``PUT …/register``): ``assigning`` with an operation id that ``owner``
        (the MQTT session, or the registration over HTTPS) may poll, or an error."""
        now = self.clock()
        serial = normalise_serial(attempt.registration_id)
        job = partial(_register, attempt=attempt, registrar=self, now=now, assign=True)
        outcome = await self.writer.run(job, serial=serial)
        if isinstance(outcome, _Allocate):  # custom allocation: ask, then assign
            allocated = await self._allocate(outcome.enrollment, attempt)
            if isinstance(allocated, Allocation):
                outcome = await self.writer.run(partial(job, allocation=allocated), serial=serial)
            else:
                outcome = allocated
        if isinstance(outcome, Answer):
            return outcome
        if outcome is None or isinstance(outcome, _Allocate):  # neither after an assignment
            return error(500, 500000, "Internal error", now)
        return self.operations.begin(owner, outcome)

    async def _allocate(
        self, enrollment: Enrollment, attempt: Attempt
    ) -> Allocation | dict[str, Any]:
        """DPS's custom allocation: the enrollment's webhook gets the request and answers
        the host (``iotHubHostName``) and a ``payload`` for the device, within
        ``dps__allocation_timeout_seconds``. A refusal (not 200), an answer not understood,
        an error and a timeout each answer the device ``failed``, and nothing is written."""
        url = enrollment.allocation_webhook or ""
        try:
            if self.guard is not None:
                await self.guard.addresses(*url_destination(url))
        except (DestinationRefused, OSError, TimeoutError):
            return _failed(attempt, ALLOCATION_FAILED, "The allocation webhook may not be reached.")
        body = {
            ("enrollmentGroup" if enrollment.is_group else "individualEnrollment"): {
                "enrollmentGroupId" if enrollment.is_group else "registrationId": (
                    enrollment.profile.name if enrollment.is_group else attempt.registration_id
                ),
                "attestation": {"type": enrollment.attestation.value},
            },
            "deviceRuntimeContext": {
                "registrationId": attempt.registration_id,
                "currentIotHubHostName": enrollment.assigned_hub,
                "payload": attempt.payload,
            },
            "linkedHubs": [enrollment.assigned_hub],
        }
        try:
            async with httpx.AsyncClient(
                timeout=self.policy.allocation_seconds, follow_redirects=False, trust_env=False
            ) as client:
                answer = await client.post(url, json=body)
        except httpx.TimeoutException:
            return _failed(attempt, ALLOCATION_FAILED, "The allocation webhook timed out.")
        except httpx.HTTPError:
            return _failed(attempt, ALLOCATION_FAILED, "The allocation webhook failed.")
        if answer.status_code != 200:
            return _failed(attempt, ALLOCATION_FAILED, "The allocation webhook refused.")
        return _allocation(answer.content, enrollment, attempt)

    async def status(
        self, attempt: Attempt, operation_id: str, owner: str, *, attest: bool
    ) -> Answer:
        """An operation's status (``GET …/operations/{id}``): for its owner only; with
        ``attest`` the device proves itself again (HTTPS: every request stands alone)."""
        now = self.clock()
        if attest:
            refused = await self.writer.run(
                partial(_register, attempt=attempt, registrar=self, now=now, assign=False)
            )
            if isinstance(refused, Answer):
                return refused
        outcome = self.operations.status(owner, operation_id)
        if outcome is None:
            return error(404, NOT_FOUND, "Operation not found.", now)
        return Answer(200, outcome)


def _throttled(wait: float, now: datetime) -> Answer:
    return Answer(
        429, error(429, THROTTLED, "Too many requests.", now).body, retry_after=max(1, round(wait))
    )


def _register(
    tx: ProvisionTx,
    *,
    attempt: Attempt,
    registrar: Registrar,
    now: datetime,
    assign: bool,
    allocation: Allocation | None = None,
) -> dict[str, Any] | Answer | _Allocate | None:
    """The writer's job: attest, then (``assign``) provision. An Answer is a refusal; None:
    attested, nothing assigned."""
    limiter = registrar.limiter
    found = _enrollment(tx, registrar.sealer, registrar.policy, attempt, now)
    if not isinstance(found, str) and not found.profile.enabled:
        found = "the enrollment's profile is disabled"  # a disabled profile admits nobody
    if isinstance(found, str):
        wait = limiter.take(
            ("dps-unknown", attempt.source), registrar.policy.unknown_source_rate_per_minute
        )
        if wait:
            return _throttled(wait, now)
        log_refused("dps", found, source=attempt.source)
        return error(401, UNAUTHORIZED, "Unauthorized", now)
    profile = found.profile
    wait = profile_wait(limiter, profile, attempt.source)
    if wait:
        return _throttled(wait, now)
    if not assign:
        return None
    if found.allocation_webhook and allocation is None:
        return _Allocate(found)
    return _assign(tx, found, attempt, now, allocation)


def _allocation(
    content: bytes, enrollment: Enrollment, attempt: Attempt
) -> Allocation | dict[str, Any]:
    try:
        answer = orjson.loads(content)
        hub = answer.get("iotHubHostName") or enrollment.assigned_hub
        return Allocation(parse_hub(hub), answer.get("payload"))
    except (orjson.JSONDecodeError, AttributeError, TypeError, InvalidInput):
        return _failed(attempt, ALLOCATION_FAILED, "The allocation webhook's answer is not one.")


def _enrollment(
    tx: ProvisionTx, sealer: Sealer, policy: DpsPolicy, attempt: Attempt, now: datetime
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
        return _by_key(tx, sealer, attempt, sas, serial, int(now.timestamp()))
    if attempt.certificate is not None:
        return _by_certificate(tx, attempt, now)
    return "neither a shared access signature nor a client certificate"


def _key(tx: ProvisionTx, sealer: Sealer, enrollment: Enrollment) -> str:
    memo = ("dps-key", enrollment.id)
    if memo not in tx.memo:
        tx.memo[memo] = sealer.unseal(enrollment.key_sealed or "")
    key: str = tx.memo[memo]
    return key


def _by_key(
    tx: ProvisionTx, sealer: Sealer, attempt: Attempt, sas: dps.Sas, serial: str, now: int
) -> Enrollment | str:
    resource = dps.resource_of(attempt.id_scope, attempt.registration_id)
    individual = tx_individual(tx, serial)
    if individual is not None:  # an individual enrollment comes before any group
        problem = dps.sas_problem(sas, _key(tx, sealer, individual), resource, now)
        return problem or individual
    for group in tx_groups(tx, Attestation.SYMMETRIC_KEY):
        key = dps.derive_device_key(_key(tx, sealer, group), attempt.registration_id)
        if dps.sas_problem(sas, key, resource, now) is None:
            return group
    return "no enrollment's key signed the token"


def _by_certificate(tx: ProvisionTx, attempt: Attempt, now: datetime) -> Enrollment | str:
    try:
        cert = x509.load_der_x509_certificate(attempt.certificate or b"")
    except ValueError:
        return "the client certificate is not X.509"
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names or names[0].value != attempt.registration_id:
        return "the certificate's common name is not the registration id"
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        return "the certificate is not valid now"
    for group in tx_groups(tx, Attestation.X509):
        ca_id = group.profile.device_ca_id
        ca = tx.ca(ca_id) if ca_id is not None else None
        if ca is not None and _issued_by(cert, _ca_certificate(tx, ca.certificate_pem)):
            return group
    return "no X.509 enrollment group's CA issued the certificate"


def _ca_certificate(tx: ProvisionTx, pem: str) -> x509.Certificate:
    memo = ("dps-ca", pem)
    if memo not in tx.memo:
        tx.memo[memo] = x509.load_pem_x509_certificate(pem.encode())
    cert: x509.Certificate = tx.memo[memo]
    return cert


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _assign(
    tx: ProvisionTx,
    enrollment: Enrollment,
    attempt: Attempt,
    now: datetime,
    allocation: Allocation | None = None,
) -> dict[str, Any]:
    """Provision the device the enrollment admits; the operation's outcome."""
    profile, serial = enrollment.profile, normalise_serial(attempt.registration_id)
    data: dict[str, Any] = {
        "profile": profile.name,
        "enrollment": "group" if enrollment.is_group else "individual",
        "attestation": enrollment.attestation.value,
        "transport": attempt.transport,
        "source": attempt.source,
    }
    actor = f"device:{serial}"
    state = tx.provision_state(serial)
    if state is None:
        if profile.strategy is Strategy.PRE_PROVISIONED:
            return _failed(attempt, NOT_FOUND, "The device was not registered beforehand.")
        device, model_id, registered = profile_device(
            profile, serial=serial, name=serial, actor=actor, now=now
        )
        tx.add_device(device, model_id=model_id, registered=registered)
        return _provisioned(
            tx, enrollment, attempt, device.id, device.group_id, now, data, allocation
        )

    def refuse(reason: str) -> dict[str, Any]:
        tx.add_event(
            NewEvent(
                EventType.DEVICE_REPROVISION_REFUSED,
                now,
                actor,
                device_id=state.device_id,
                serial=serial,
                group_id=state.group_id,
                data={**data, "reason": reason},
            )
        )
        log_refused("dps", f"device {serial} asked again: {reason}", source=attempt.source)
        return _failed(attempt, CONFLICT, f"Registration refused: {reason}.")

    if state.provisioned_at is not None:
        if state.profile_id != profile.id:
            return refuse("provisioned by another profile")
        if profile.reprovision is ReprovisionPolicy.NEVER:
            return refuse("already provisioned")
        data["repeated"] = True
        data["proof"] = enrollment.attestation.value
        return _provisioned(
            tx, enrollment, attempt, state.device_id, state.group_id, now, data, allocation
        )
    if enrollment.is_group and profile.strategy is Strategy.ALLOW_CREATE:
        return refuse("registered already")
    if state.profile_id not in (None, profile.id):
        return refuse("registered for another profile")
    return _provisioned(
        tx, enrollment, attempt, state.device_id, state.group_id, now, data, allocation
    )


def _provisioned(
    tx: ProvisionTx,
    enrollment: Enrollment,
    attempt: Attempt,
    device_id: uuid.UUID,
    group_id: uuid.UUID | None,
    now: datetime,
    data: dict[str, Any],
    allocation: Allocation | None = None,
) -> dict[str, Any]:
    serial = normalise_serial(attempt.registration_id)
    hub = allocation.hub if allocation is not None else enrollment.assigned_hub
    tx_mark_provisioned(tx, device_id, profile_id=enrollment.profile.id, now=now)
    tx.add_event(
        NewEvent(
            EventType.DEVICE_PROVISIONED,
            now,
            f"device:{serial}",
            device_id=device_id,
            serial=serial,
            group_id=group_id,
            data={**data, "assigned_hub": hub, "allocated": allocation is not None},
        )
    )
    state: dict[str, Any] = {
        "registrationId": attempt.registration_id,
        "createdDateTimeUtc": _utc(now),
        "assignedHub": hub,
        "deviceId": attempt.registration_id,
        "status": ASSIGNED,
        "substatus": "initialAssignment",
        "lastUpdatedDateTimeUtc": _utc(now),
        "etag": f'"{secrets.token_hex(8)}"',
    }
    if allocation is not None and allocation.payload is not None:
        state["payload"] = allocation.payload
    state["x509" if enrollment.attestation is Attestation.X509 else "symmetricKey"] = {}
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
