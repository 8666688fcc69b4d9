"""Ownership of a device: an unowned one taken (a claim finished, or an association), an
owned one released. The guarded updates of the store admit only the moves of the device
lifecycle (:data:`~provisiond.domain.device.LIFECYCLE`): of two takers, one wins."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from provisiond.domain.catalog import DeviceModel
from provisiond.domain.claims import Claim, ClaimTarget, ReleasePolicy
from provisiond.domain.device import LIFECYCLE, Device, DeviceAction, DeviceState
from provisiond.domain.events import EventType, NewEvent
from provisiond.domain.groups import Group
from provisiond.domain.users import Role, User
from provisiond.errors import DeviceAlreadyClaimed, DeviceNotFound, Forbidden
from provisiond.services.claims.policy import ClaimPolicy
from provisiond.services.claims.visibility import NOT_FOUND, find_visible_device, visible
from provisiond.services.ratelimit import RateLimiter
from provisiond.store.claims import ClaimableDevice
from provisiond.store.uow import UnitOfWork


def actor(user: User) -> str:
    return f"user:{user.email}"


async def take_device(  # noqa: PLR0913 - a use case's context (uow, scope, actor, now) and the claim's facts
    uow: UnitOfWork,
    device: ClaimableDevice,
    *,
    user: User,
    target: ClaimTarget,
    group: Group | None,
    name: str | None,
    model: DeviceModel | None,
    claim: Claim | None,
    now: datetime,
) -> None:
    """Claim an unowned device for the user (``target`` me) or the user's group (``target``
    group: the group the user belongs to owns it, whichever site it is placed at), with its
    event; it sits at ``group`` (the site; None: the user's group). DeviceAlreadyClaimed
    when someone took it first."""
    group_id = group.id if group else user.group_id
    group_path = group.path if group else user.group_path
    if group_id is None:  # an operator-wide admin: start_claim refuses them first
        raise Forbidden(user.why_no_claims)
    owner = user.id if target is ClaimTarget.ME else None
    owner_group = user.group_id if target is ClaimTarget.GROUP else None
    if not await uow.claims.take_device(
        device.id,
        group_id=group_id,
        owner_user_id=owner,
        owner_group_id=owner_group,
        name=name,
        model_id=model.id if model else None,
        now=now,
    ):
        raise DeviceAlreadyClaimed(
            f"{device.serial} was claimed by someone else a moment ago", serial=device.serial
        )
    await uow.events.add(
        NewEvent(
            EventType.DEVICE_CLAIMED,
            now,
            actor(user),
            device_id=device.id,
            serial=device.serial,
            group_id=group_id,
            data={
                "group": group_path,
                "owner": user.email if owner else None,
                "owner_group": user.group_path if owner_group else None,
                "target": target.value,
                "name": name or device.name,
                "model": model.name if model else None,
                "claim": str(claim.id) if claim else None,
            },
        )
    )


def _owner_or_admin(user: User, device: Device) -> bool:
    return device.owner_user_id == user.id or user.role is Role.ADMIN


def may_release(user: User, device: Device) -> bool:
    """Whether the user may release this (visible) device: its owner, or an admin."""
    return device.state is DeviceState.CLAIMED and _owner_or_admin(user, device)


async def _to_release(
    uow: UnitOfWork,
    user: User,
    serial: str,
    limiter: RateLimiter | None,
    policy: ClaimPolicy | None,
) -> Device:
    """The visible device the user asks to release: DeviceNotFound when they may not see it,
    Forbidden when it is not theirs to release."""
    device = await find_visible_device(uow, user, serial, limiter=limiter, policy=policy)
    if not _owner_or_admin(user, device):
        raise Forbidden("only the device's owner or an admin may release it")
    return device


async def _claimed(uow: UnitOfWork, user: User, serial: str) -> ClaimableDevice:
    """Inside the caller's transaction: the device as it is now, still visible and claimed
    (DeviceNotFound, DeviceAlreadyClaimed)."""
    device = await uow.claims.device(serial)
    if device is None or not visible(user, device.group_path):
        raise DeviceNotFound(NOT_FOUND)
    if not LIFECYCLE.allows(device.state, DeviceAction.RELEASE):
        raise DeviceAlreadyClaimed(f"{device.serial} is not claimed")
    return device


@dataclass(frozen=True, slots=True)
class Releasable:
    """A device the user may release, and what its release keeps (its profile's policy)."""

    device: Device
    policy: ReleasePolicy


async def releasable_device(
    uow: UnitOfWork,
    *,
    user: User,
    serial: str,
    limiter: RateLimiter | None = None,
    policy: ClaimPolicy | None = None,
) -> Releasable:
    """The device the user asks to release, before they confirm: DeviceNotFound when they
    may not see it, Forbidden when it is not theirs to release, DeviceAlreadyClaimed when it
    is not claimed. Reads only."""
    device_view = await _to_release(uow, user, serial, limiter, policy)
    async with uow.read():
        device = await _claimed(uow, user, device_view.serial)
    return Releasable(device_view, device.release_policy)


async def release_device(
    uow: UnitOfWork,
    *,
    user: User,
    serial: str,
    now: datetime,
    limiter: RateLimiter | None = None,
    policy: ClaimPolicy | None = None,
) -> ReleasePolicy:
    """End the ownership of a device (re-provisioning). The owner, or an admin whose
    subtree holds the device, may; its profile's release policy says what is kept. With a
    limiter (the pages), a serial that finds nothing counts as a device lookup."""
    device_view = await _to_release(uow, user, serial, limiter, policy)
    async with uow:
        device = await _claimed(uow, user, device_view.serial)
        event_id = await uow.events.add(
            NewEvent(
                EventType.DEVICE_RELEASED,
                now,
                actor(user),
                device_id=device.id,
                serial=device.serial,
                group_id=device.group_id,
                data={"group": device.group_path, "policy": device.release_policy.value},
            )
        )
        reset = device.release_policy is ReleasePolicy.RESET
        if not await uow.claims.release_device(
            device.id, serial=device.serial, now=now, reset_from_event=event_id if reset else None
        ):
            raise DeviceAlreadyClaimed(f"{device.serial} is not claimed")
        await uow.commit()
    return device.release_policy
