"""Azure DPS enrollments (domain/enrollments.py): made by an operator, read by the DPS
listeners (services/dps.py).

A symmetric key is 64 random bytes in base64, as Azure generates them, or the key of the
Azure enrollment being migrated (its devices keep working: a group's device keys are derived
from it). It is shown once and kept sealed (services/sealing.py).
"""

from __future__ import annotations

import base64
import binascii
import secrets
from datetime import datetime

from provisiond.domain.enrollments import Attestation, Enrollment
from provisiond.domain.scope import Scope
from provisiond.domain.serials import parse_serial
from provisiond.domain.users import Role
from provisiond.domain.webhooks import parse_url
from provisiond.errors import (
    DeviceNotFound,
    EnrollmentExists,
    InvalidInput,
    Problem,
    ProfileNotFound,
)
from provisiond.services.ids import new_id
from provisiond.services.scoping import require
from provisiond.services.sealing import Sealer
from provisiond.store.uow import UnitOfWork

HUB_MAX = 255


def _fail(field: str, problem: str) -> InvalidInput:
    return InvalidInput(f"{field} {problem}", problems=[Problem(problem, field=field)])


def new_key() -> str:
    return base64.b64encode(secrets.token_bytes(64)).decode()


def parse_key(text: str | None) -> str:
    """A symmetric key an operator brings (base64 of 16 to 64 bytes), or a new one."""
    if text is None:
        return new_key()
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except binascii.Error:
        raise _fail("key", "is not base64") from None
    if not 16 <= len(raw) <= 64:
        raise _fail("key", "must be 16 to 64 bytes (base64)")
    return text.strip()


def parse_hub(text: str) -> str:
    hub = text.strip()
    if not hub or len(hub) > HUB_MAX or any(c.isspace() or c in "/?#@" for c in hub):
        raise _fail("hub", f"must be a host name (and port), at most {HUB_MAX} characters")
    return hub


async def enroll_group(  # noqa: PLR0913 - a use case's context and an enrollment's fields
    uow: UnitOfWork,
    *,
    scope: Scope,
    sealer: Sealer,
    profile_name: str,
    attestation: Attestation,
    hub: str,
    key: str | None = None,
    webhook: str | None = None,
    now: datetime,
) -> tuple[Enrollment, str | None]:
    """The profile's enrollment group, and its symmetric key (None for X.509: the profile's
    device CA attests, and must be set)."""
    require(scope, Role.ADMIN, "making DPS enrollments")
    hub = parse_hub(hub)
    webhook = parse_url(webhook) if webhook is not None else None
    secret = parse_key(key) if attestation is Attestation.SYMMETRIC_KEY else None
    if attestation is Attestation.X509 and key is not None:
        raise _fail("key", "is for symmetric-key enrollments only")
    async with uow:
        profile = await uow.profiles.find_by_name(profile_name)
        if profile is None or not scope.covers(profile.group_path):
            raise ProfileNotFound(f"no profile {profile_name!r}", name=profile_name)
        if attestation is Attestation.X509 and profile.device_ca_id is None:
            raise _fail("attestation", "x509 needs a profile with a device CA (device_ca)")
        if await uow.dps.group_of(profile.id) is not None:
            raise EnrollmentExists(f"profile {profile.name!r} has an enrollment group already")
        await uow.dps.add(
            new_id(),
            profile_id=profile.id,
            device_id=None,
            attestation=attestation,
            key_sealed=sealer.seal(secret) if secret else None,
            assigned_hub=hub,
            now=now,
            allocation_webhook=webhook,
        )
        made = await uow.dps.group_of(profile.id)
        await uow.commit()
    if made is None:
        raise RuntimeError("the enrollment group just made is gone")
    return made, secret


async def enroll_device(  # noqa: PLR0913 - a use case's context and an enrollment's fields
    uow: UnitOfWork,
    *,
    scope: Scope,
    sealer: Sealer,
    serial: str,
    profile_name: str,
    hub: str,
    key: str | None = None,
    webhook: str | None = None,
    now: datetime,
) -> tuple[Enrollment, str]:
    """An individual enrollment of a registered device (its registration id is its serial,
    in lower case), and its symmetric key."""
    require(scope, Role.ADMIN, "making DPS enrollments")
    hub = parse_hub(hub)
    webhook = parse_url(webhook) if webhook is not None else None
    serial = parse_serial(serial)
    secret = parse_key(key)
    async with uow:
        profile = await uow.profiles.find_by_name(profile_name)
        if profile is None or not scope.covers(profile.group_path):
            raise ProfileNotFound(f"no profile {profile_name!r}", name=profile_name)
        device = await uow.devices.find_by_serial(serial, seen_by=scope)
        if device is None or not scope.covers(device.group_path):
            raise DeviceNotFound(f"no device {serial}", serial=serial)
        if await uow.dps.individual(serial) is not None:
            raise EnrollmentExists(f"device {serial} has an individual enrollment already")
        await uow.dps.add(
            new_id(),
            profile_id=profile.id,
            device_id=device.id,
            attestation=Attestation.SYMMETRIC_KEY,
            key_sealed=sealer.seal(secret),
            assigned_hub=hub,
            now=now,
            allocation_webhook=webhook,
        )
        made = await uow.dps.individual(serial)
        await uow.commit()
    if made is None:
        raise RuntimeError("the enrollment just made is gone")
    return made, secret


async def list_enrollments(uow: UnitOfWork, *, scope: Scope) -> list[Enrollment]:
    async with uow.read():
        found = await uow.dps.all()
    return [e for e in found if scope.covers(e.profile.group_path)]
