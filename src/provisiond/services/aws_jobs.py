"""The writes of AWS IoT fleet provisioning, as jobs of the provisioning writer (group
commit, store/provision_writer.py): a pending certificate, RegisterThing (a new device, or a
device's own renewal), and the sweep that revokes what was never registered."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, replace
from datetime import datetime

from provisiond.domain.catalog import DeviceModel
from provisiond.domain.credentials import Credential, CredentialType
from provisiond.domain.events import EventType, NewEvent
from provisiond.domain.groups import Group
from provisiond.domain.profiles import Profile, ReprovisionPolicy, Strategy
from provisiond.services.aws_identity import (
    Claim,
    FleetRefused,
    check_pending,
    invalid_token,
)
from provisiond.services.devices import profile_device
from provisiond.services.ids import new_id
from provisiond.store.aws import PendingCertificate
from provisiond.store.certificates import IssuedCertificate, RevocationReason
from provisiond.store.provision_writer import Provisioned, ProvisionState, ProvisionTx
from provisiond.store.uow import UnitOfWork

log = logging.getLogger(__name__)
TRANSPORT = "aws"
SWEEP_BATCH = 500


def add_pending(tx: ProvisionTx, *, pending: PendingCertificate) -> None:
    tx.add_aws_pending(pending)


@dataclass(frozen=True, slots=True)
class DeviceFields:
    serial: str
    name: str
    tags: dict[str, str]
    model: DeviceModel | None = None  # None: the profile's
    group: Group | None = None  # None: the profile's


def register(
    tx: ProvisionTx,
    *,
    claim: Claim,
    profile: Profile,
    hashed: str,
    device: DeviceFields,
    now: datetime,
    source: str,
) -> FleetRefused | None:
    """The writer's job: check again in the transaction (the profile still enabled with its
    CA, the token live and unused, the serial free or the device's to take), then create the
    device with the pending certificate as its credential, or give it to the device that
    exists. A refusal is returned (it writes nothing), not raised."""
    checked = _check(tx, claim, profile, hashed, device, now)
    if isinstance(checked, FleetRefused):
        return checked
    pending, state = checked
    if not tx.take_aws_pending(hashed):
        return invalid_token()  # another instance took it meanwhile
    if state is not None:
        _replace(tx, profile, pending, state, now, source)
    else:
        _create(tx, profile, pending, device, now, source)
    return None


def _check(
    tx: ProvisionTx,
    claim: Claim,
    profile: Profile,
    hashed: str,
    device: DeviceFields,
    now: datetime,
) -> FleetRefused | tuple[PendingCertificate, ProvisionState | None]:
    """The pending certificate and the device's state (None: a new device), or why not."""
    current = tx.profile_by_key(profile.key)
    if current is None or not current[0].enabled or current[0].id != profile.id:
        return FleetRefused(404, "ResourceNotFound", "no such provisioning template")
    pending = tx.aws_pending(hashed)
    try:
        check_pending(pending, claim, current[0], now)
    except FleetRefused as refused:
        return refused
    assert pending is not None  # noqa: S101 - check_pending refuses None
    if claim.device_serial is not None and claim.device_serial != device.serial:
        return FleetRefused(
            403, "AccessDenied", "a device's own certificate may register that device only"
        )
    state = tx.provision_state(device.serial)
    if state is None:
        if current[0].strategy is Strategy.PRE_PROVISIONED:
            return FleetRefused(
                404, "ResourceNotFound", f"no thing {device.serial} was registered beforehand"
            )
        return pending, None
    why_not = _refuse_existing(state, claim, current[0])
    return why_not if why_not is not None else (pending, state)


def _create(
    tx: ProvisionTx,
    profile: Profile,
    pending: PendingCertificate,
    device: DeviceFields,
    now: datetime,
    source: str,
) -> None:
    """A new device, with the pending certificate as its X.509 credential."""
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


def _refuse_existing(state: ProvisionState, claim: Claim, profile: Profile) -> FleetRefused | None:
    """Why a device that exists may not get this certificate, or None: it was registered
    beforehand for a pre-provisioned profile (not for another) and never provisioned, or it
    renews its own certificate (:func:`_may_replace`)."""
    first = (
        profile.strategy is Strategy.PRE_PROVISIONED
        and state.provisioned_at is None
        and claim.device_serial is None
    )
    if first and state.profile_id in (None, profile.id):
        return None
    if first:
        return FleetRefused(
            403, "AccessDenied", f"thing {state.serial} is registered for another template"
        )
    if _may_replace(state, claim, profile):
        return None
    return FleetRefused(
        409, "ResourceAlreadyExists", f"a thing {state.serial} is already registered"
    )


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
    """The device's new certificate in place of its current one (a renewal), or of what it
    was registered with (a pre-provisioned device's first provisioning): those are revoked."""
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
                "reprovisioned": state.provisioned_at is not None,
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
