"""User-node association (RainMaker's user mapping): a one-time token the host hands the
device during Wi-Fi provisioning, which the device reports back to be claimed for that user."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from provisiond.domain.claims import ClaimTarget
from provisiond.domain.device import LIFECYCLE, Device, DeviceAction
from provisiond.domain.events import EventType, NewEvent
from provisiond.errors import (
    ClaimClosed,
    DeviceAlreadyClaimed,
    DeviceNotFound,
    Forbidden,
    UserNotFound,
)
from provisiond.services.claims.ownership import take_device
from provisiond.services.hashing import hash_token
from provisiond.services.ids import new_id
from provisiond.store.uow import UnitOfWork

ASSOCIATION_TTL = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class Association:
    """What the host hands the device during Wi-Fi provisioning (RainMaker's user mapping):
    the user's id and a one-time secret. Shown once; the secret is stored hashed."""

    user_id: str
    secret_key: str
    expires_at: datetime


async def issue_association(
    uow: UnitOfWork, *, email: str, actor: str, now: datetime
) -> Association:
    """A one-time association token for a user who may claim devices."""
    async with uow:
        user = await uow.users.find_by_email(email.strip().lower())
        if user is None:
            raise UserNotFound(f"no user {email!r}", email=email)
        if not user.role.may_claim:
            raise Forbidden(f"{user.email} is a {user.role.value}: viewers may not claim devices")
        if not user.may_claim:
            raise Forbidden(f"{user.email}: {user.why_no_claims}")
        secret = secrets.token_urlsafe(24)
        expires = now + ASSOCIATION_TTL
        await uow.associations.add(new_id(), user.id, hash_token(secret), now, expires)
        await uow.events.add(
            NewEvent(
                EventType.CLAIM_ASSOCIATION_ISSUED,
                now,
                actor,
                group_id=user.group_id,
                data={"user": user.email, "expires_at": expires.isoformat()},
            )
        )
        await uow.commit()
    return Association(user.id.hex, secret, expires)


async def associate(
    uow: UnitOfWork, *, device: Device, user_id: str, secret_key: str, now: datetime
) -> str:
    """The device reports the user mapping it was given: it is claimed for that user, on
    claiming's rules (one owner; the token used once, before it expires). The serial."""
    refused = ClaimClosed("the association token is unknown, used or expired")
    try:
        owner_id = uuid.UUID(hex=user_id.strip())
    except ValueError:
        raise refused from None
    async with uow:
        user = await uow.users.find_by_id(owner_id)
        if (
            user is None
            or user.disabled
            or not await uow.associations.take(owner_id, hash_token(secret_key), device.id, now)
        ):
            raise refused
        claimable = await uow.claims.device(device.serial)
        if claimable is None:
            raise DeviceNotFound("the device was deleted")
        if not LIFECYCLE.allows(claimable.state, DeviceAction.CLAIM):
            raise DeviceAlreadyClaimed(
                f"{device.serial} is claimed already; release it first", serial=device.serial
            )
        await take_device(
            uow,
            claimable,
            user=user,
            target=ClaimTarget.ME,
            group=None,
            name=None,
            model=None,
            claim=None,
            now=now,
        )
        await uow.commit()
    return device.serial
