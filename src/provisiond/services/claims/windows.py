"""What a device reports for claiming: its claim button pressed (proving the open button
claim), or a window it opens with a secret (ThingsBoard's device claiming) that the person
claiming types."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from provisiond.domain.claims import (
    CLAIM_LIFECYCLE,
    DEVICE_WINDOW_MAX_SECONDS,
    Claim,
    ClaimAction,
    ClaimProof,
)
from provisiond.domain.device import LIFECYCLE, DeviceAction
from provisiond.domain.events import EventType, NewEvent
from provisiond.errors import DeviceAlreadyClaimed, DeviceNotFound, InvalidInput, Problem
from provisiond.services.claim_hub import ClaimHub
from provisiond.services.claims.claiming import claimer_group
from provisiond.services.claims.policy import ClaimPolicy, effective
from provisiond.services.hashing import hash_token
from provisiond.store.uow import UnitOfWork


async def press_button(
    uow: UnitOfWork, hub: ClaimHub, *, device_id: uuid.UUID, now: datetime
) -> Claim | None:
    """The device reports its claim button: proves the open button claim, if there is one
    inside its window. Returns the claim proven, or None (nothing to prove)."""
    async with uow:
        claim = await uow.claims.live_for_device(device_id)
        if (
            claim is None
            or claim.proof is not ClaimProof.BUTTON
            or not CLAIM_LIFECYCLE.allows(claim.status, ClaimAction.PROVE)
            or not claim.live(now)
        ):
            return None
        await uow.claims.move(claim.id, ClaimAction.PROVE, now)
        await uow.events.add(
            NewEvent(
                EventType.CLAIM_PROVEN,
                now,
                f"device:{claim.serial}",
                device_id=device_id,
                serial=claim.serial,
                **await claimer_group(uow, claim),
                data={"claim": str(claim.id), "proof": "button"},
            )
        )
        await uow.commit()
    hub.publish(claim.id, {"event": "proven", "at": now.isoformat()})
    return claim


def _window_problems(secret: str, duration_ms: int | None) -> list[Problem]:
    problems = []
    if not isinstance(secret, str) or not secret or len(secret) > 256:
        problems.append(Problem("must be a text of 1 to 256 characters", field="secretKey"))
    if duration_ms is not None and (
        not isinstance(duration_ms, int)
        or isinstance(duration_ms, bool)
        or not (1_000 <= duration_ms <= DEVICE_WINDOW_MAX_SECONDS * 1000)
    ):
        problems.append(
            Problem(
                f"must be between 1000 and {DEVICE_WINDOW_MAX_SECONDS * 1000} milliseconds",
                field="durationMs",
            )
        )
    return problems


async def open_device_window(
    uow: UnitOfWork,
    policy: ClaimPolicy,
    *,
    device_id: uuid.UUID,
    secret: str,
    duration_ms: int | None,
    now: datetime,
) -> datetime:
    """ThingsBoard's device claiming: the device allows claims with ``secret`` for
    ``duration_ms`` (optional, as in ThingsBoard: without it, the device's claim window, its
    profile's or the instance's). Returns when the window closes."""
    problems = _window_problems(secret, duration_ms)
    if problems:
        raise InvalidInput("; ".join(str(p) for p in problems), problems=problems)
    async with uow:
        device = await uow.claims.device_by_id(device_id)
        if device is None:
            raise DeviceNotFound("the device was deleted")
        if not LIFECYCLE.allows(device.state, DeviceAction.CLAIM):
            raise DeviceAlreadyClaimed(
                f"{device.serial} is claimed already; release it first", serial=device.serial
            )
        if duration_ms is None:
            expires_at = now + timedelta(seconds=effective(device, policy)[1])
        else:
            expires_at = now + timedelta(milliseconds=duration_ms)
        await uow.claims.open_device_window(device_id, hash_token(secret), expires_at)
        await uow.events.add(
            NewEvent(
                EventType.CLAIM_WINDOW_OPENED,
                now,
                f"device:{device.serial}",
                device_id=device_id,
                serial=device.serial,
                group_id=device.group_id,
                group_path=device.group_path,
                data={"expires_at": expires_at.isoformat()},
            )
        )
        await uow.commit()
    return expires_at
