"""A provision request that passed its checks, as the writer's job writes it: a new device
(``allow-create``), the first provisioning of a device registered beforehand
(``pre-provisioned``), or a repeat (services/reprovisioning.py). Shared by self-provisioning
with a profile's secret (services/provisioning.py) and certificate-chain attestation
(services/attestation.py)."""

from __future__ import annotations

import uuid

from provisiond.domain.events import EventType
from provisiond.domain.limits import NAME_MAX
from provisiond.domain.profiles import Strategy
from provisiond.protocols import thingsboard as tb
from provisiond.services import reprovisioning
from provisiond.services.credential_kinds import make_credential
from provisiond.services.devices import profile_device
from provisiond.services.issuing import (
    Issued,
    Job,
    ProvisionAnswer,
    chose,
    job_event,
    provisioned,
    refuse,
    revoke_others,
    store_credential,
    succeed,
)
from provisiond.store.provision_writer import ProvisionState, ProvisionTx


def provision_device(tx: ProvisionTx, job: Job) -> ProvisionAnswer:
    """Decide, then write: a refusal writes nothing but its audit event."""
    state = tx.provision_state(job.serial)
    if state is None:
        if job.profile.strategy is Strategy.PRE_PROVISIONED:
            return refuse(
                tb.FAILURE, f"Device {job.serial} was not registered beforehand", job.serial
            )
        return _create(tx, job)
    if state.provisioned_at is not None:
        return reprovisioning.answer_repeat(tx, job, state)
    if job.profile.strategy is Strategy.ALLOW_CREATE:
        return reprovisioning.refuse_repeat(tx, job, state, "registered already")
    if state.profile_id not in (None, job.profile.id):
        return reprovisioning.refuse_repeat(tx, job, state, "registered for another profile")
    return _first(tx, job, state)


def _create(tx: ProvisionTx, job: Job) -> ProvisionAnswer:
    """A new device (allow-create), provisioned with its first credential."""
    name = job.request.device_name
    device, model_id, registered = profile_device(
        job.profile,
        serial=job.serial,
        name=job.serial if name is None else name.strip()[:NAME_MAX],
        actor=job.actor,
        now=job.now,
    )
    issued = make_credential(tx, job, device.id)
    if isinstance(issued, ProvisionAnswer):
        return issued
    tx.add_device(
        device, model_id=model_id, registered=registered, provisioned=provisioned(job, issued)
    )
    store_credential(tx, job, issued, device.group_id)
    _provisioned_event(tx, job, issued, device.group_id, created=True)
    return succeed(job, issued.value)


def _first(tx: ProvisionTx, job: Job, state: ProvisionState) -> ProvisionAnswer:
    """A device registered beforehand provisions for the first time: it gets its credential
    and keeps no other (what it was imported with is revoked)."""
    issued = make_credential(tx, job, state.device_id)
    if isinstance(issued, ProvisionAnswer):
        return issued
    store_credential(tx, job, issued, state.group_id)
    tx.mark_provisioned(state.device_id, provisioned(job, issued), replacing=None, now=job.now)
    revoke_others(
        tx, job, state.device_id, state.group_id, keep=issued.credential.id, reason="provisioned"
    )
    _provisioned_event(tx, job, issued, state.group_id, created=False)
    return succeed(job, issued.value)


def _provisioned_event(
    tx: ProvisionTx, job: Job, issued: Issued, group_id: uuid.UUID | None, *, created: bool
) -> None:
    job_event(
        tx,
        job,
        EventType.DEVICE_PROVISIONED,
        issued.credential.device_id,
        group_id,
        created=created,
        device_chose_credentials=chose(job.request),
    )
