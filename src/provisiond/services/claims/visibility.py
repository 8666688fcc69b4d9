"""What a user may see of a device: its page, its timeline, where a label's URL leads.

A device of another customer and a missing serial take the same path (the user's subtree is
part of the query) and get the same answer, :class:`~provisiond.errors.DeviceNotFound`.
"""

from __future__ import annotations

from provisiond.domain.claims import Claim
from provisiond.domain.device import LIFECYCLE, Device, DeviceAction
from provisiond.domain.events import Event
from provisiond.domain.scope import Scope
from provisiond.domain.serials import parse_serial
from provisiond.domain.users import User
from provisiond.errors import DeviceNotFound, InvalidInput
from provisiond.services.claims.policy import ClaimPolicy, take_token
from provisiond.services.ratelimit import RateLimiter, log_refused
from provisiond.services.scoping import readable
from provisiond.store.uow import UnitOfWork

NOT_FOUND = "no such device, or it is not yours to see"


def visible(user: User, group_path: str | None) -> bool:
    """The user may see what sits in this group (their group's subtree)."""
    return user.scope.covers(group_path)


def serial_or_not_found(text: str) -> str:
    """A malformed serial names no device: the same answer as a missing one."""
    try:
        return parse_serial(text)
    except InvalidInput:
        raise DeviceNotFound(NOT_FOUND) from None


async def find_visible_device(
    uow: UnitOfWork,
    user: User,
    serial_text: str,
    *,
    limiter: RateLimiter | None = None,
    policy: ClaimPolicy | None = None,
    scope: Scope | None = None,
) -> Device:
    """The device if the user may see it (within ``scope``, default the user's own: the
    console's may hold ungrouped devices, services/fleet.py); else DeviceNotFound, whether
    or not it exists.

    A device of another customer and a missing serial take the same path: the user's
    subtree is part of the query, so the database returns no row for either, nothing more
    is read, and the same branch raises. With a limiter, each lookup that finds nothing
    costs one of the user's ``lookup_rate_per_minute``: guessing serials is throttled.
    """
    serial = serial_or_not_found(serial_text)
    scope = scope or user.scope
    async with uow.read():
        device = await uow.devices.find_by_serial(serial, seen_by=scope)
    if device is None or not scope.covers(device.group_path):
        if limiter is not None and policy is not None:
            take_token(
                limiter,
                [("lookup-user", user.id)],
                policy.lookup_rate_per_minute,
                "device lookups that found nothing",
            )
        raise DeviceNotFound(NOT_FOUND)
    return device


async def label_target(
    uow: UnitOfWork,
    limiter: RateLimiter,
    policy: ClaimPolicy,
    *,
    user: User,
    serial_text: str,
    address: str,
) -> str:
    """Where a label's URL leads this user: ``device`` (they may see it), ``claim`` (they
    may claim it), else DeviceNotFound. Any answer but ``device`` tells whether a serial
    exists unclaimed, so it costs a claim attempt: enumerating serials here is throttled
    like starting claims."""
    serial = serial_or_not_found(serial_text)
    async with uow.read():
        device = await uow.claims.device(serial, claimer=user.scope)
    if device is not None and visible(user, device.group_path):
        return "device"
    take_token(
        limiter,
        [("claim-user", user.id), ("claim-address", address)],
        policy.claim_rate_per_minute,
        "claim attempts",
    )
    if device is not None and LIFECYCLE.allows(device.state, DeviceAction.CLAIM) and user.may_claim:
        return "claim"
    log_refused("claim", "no such device to claim", user=user.email, address=address, serial=serial)
    raise DeviceNotFound(NOT_FOUND)


async def device_timeline(
    uow: UnitOfWork,
    limiter: RateLimiter,
    policy: ClaimPolicy,
    user: User,
    serial_text: str,
    *,
    scope: Scope | None = None,
) -> tuple[Device, list[Event], list[Claim]]:
    """A visible device (within ``scope``, default the user's), its onboarding timeline
    (from its last reset release on) and its claims. A device the user may not see is not
    read further than a missing one."""
    scope = scope or user.scope
    device = await find_visible_device(
        uow, user, serial_text, limiter=limiter, policy=policy, scope=scope
    )
    async with uow.read():
        since = await uow.claims.history_since(device.id)
        registered = await uow.devices.registered_event_id(device.id)
        include = [registered] if registered and not since else []
        events = await uow.events.find(
            device_id=device.id, include_ids=include, after=since - 1 if since else None, limit=500
        )
        claims = await uow.claims.for_device(device.id)
        claimers = {i: await uow.users.find_by_id(i) for i in {c.user_id for c in claims}}
    # A device released with its history kept carries its previous owner's events and
    # claim attempts: only those of this user's subtree are theirs to read.
    events = readable(scope, events)
    claims = [
        c for c in claims if (u := claimers[c.user_id]) is not None and scope.covers(u.group_path)
    ]
    if since and events:  # reset at a release: that event starts the timeline
        claims = [c for c in claims if c.started_at >= events[0].at]
    return device, events, claims
