"""A user's claims: start one (the scan), finish a proven one, cancel it, look at it.

A claim moves only along :data:`~provisiond.domain.claims.CLAIM_LIFECYCLE`; ending one
(:func:`end_claim`) is a guarded update that admits the move only from a status the table
allows, so of two endings (a cancel and an expiry, say) one happens.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from provisiond.domain.catalog import DeviceModel
from provisiond.domain.claims import (
    CLAIM_LIFECYCLE,
    Claim,
    ClaimAction,
    ClaimProof,
    ClaimStatus,
    ClaimTarget,
    parse_target,
)
from provisiond.domain.device import LIFECYCLE, DeviceAction, name_problem
from provisiond.domain.events import EventType, NewEvent
from provisiond.domain.groups import Group
from provisiond.domain.serials import parse_serial
from provisiond.domain.text import format_wait
from provisiond.domain.users import User
from provisiond.errors import (
    ClaimClosed,
    ClaimInProgress,
    ClaimNotFound,
    DeviceAlreadyClaimed,
    DeviceNotFound,
    Forbidden,
    InvalidInput,
    Problem,
)
from provisiond.services.claim_hub import ClaimHub
from provisiond.services.claims.ownership import actor, take_device
from provisiond.services.claims.policy import ClaimPolicy, effective, take_token
from provisiond.services.claims.visibility import NOT_FOUND, visible
from provisiond.services.ids import new_id
from provisiond.services.ratelimit import RateLimiter, log_refused
from provisiond.store.claims import ClaimableDevice
from provisiond.store.uow import UnitOfWork


@dataclass(frozen=True, slots=True)
class Started:
    """A claim started (or resumed): the device is claimed when the claim is finished."""

    serial: str
    claim: Claim


@dataclass(frozen=True, slots=True)
class ClaimView:
    claim: Claim
    device_name: str
    leaves: list[Group]  # where the device may go: the leaves of the user's subtree
    models: list[DeviceModel]
    device_model: str | None = None  # the model it was registered with: the form's choice


def leaves_of(groups: list[Group]) -> list[Group]:
    parents = {g.parent_id for g in groups}
    return [g for g in groups if g.id not in parents]


def _parse_start(serial: str, target: str) -> tuple[str, ClaimTarget]:
    """The serial and target of a scan, with every problem of both reported at once."""
    problems: list[Problem] = []
    try:
        serial = parse_serial(serial)
    except InvalidInput as err:
        problems += err.problems or [Problem(str(err), field="serial")]
    try:
        parsed_target = parse_target(target)
    except InvalidInput as err:
        problems += err.problems
    if problems:
        raise InvalidInput("; ".join(str(p) for p in problems), problems=problems)
    return serial, parsed_target


async def start_claim(
    uow: UnitOfWork,
    limiter: RateLimiter,
    policy: ClaimPolicy,
    *,
    user: User,
    serial: str,
    target: str,
    address: str,
    now: datetime,
) -> Started:
    """Start claiming a device (the scan). Without a proof requirement the claim starts
    proven: the device is still named and placed at a site (:func:`finish_claim`)."""
    if not user.may_claim:
        raise Forbidden(user.why_no_claims)
    take_token(
        limiter,
        [("claim-user", user.id), ("claim-address", address)],
        policy.claim_rate_per_minute,
        "claim attempts",
    )
    serial, parsed_target = _parse_start(serial, target)
    async with uow:
        in_progress = ClaimInProgress(
            "someone else started claiming this device a moment "
            "ago; try again when their window closes"
        )
        uow.conflicts_as(in_progress)
        device = await uow.claims.device(serial, claimer=user.scope, lock=True)
        claimable = device is not None and LIFECYCLE.allows(device.state, DeviceAction.CLAIM)
        if device is None or (not claimable and not visible(user, device.group_path)):
            log_refused(
                "claim", "no such device to claim", user=user.email, address=address, serial=serial
            )
            raise DeviceNotFound(NOT_FOUND)
        if not claimable:
            raise DeviceAlreadyClaimed(f"{serial} is claimed already", serial=serial)
        proof, window = effective(device, policy)
        resumed = await _resumed(uow, device, user=user, now=now)
        if resumed is not None:
            return Started(serial, resumed)  # a second scan resumes the claim
        claim = await _open_claim(
            uow,
            device,
            user=user,
            target=parsed_target,
            proof=proof,
            window=window,
            now=now,
            address=address,
        )
        await uow.commit()
    return Started(serial, claim)


async def _resumed(
    uow: UnitOfWork, device: ClaimableDevice, *, user: User, now: datetime
) -> Claim | None:
    """The device's live claim if it is this user's; ClaimInProgress if it is another's.
    A claim whose window closed is expired first (None: a new claim may start)."""
    live = await uow.claims.live_for_device(device.id)
    if live is None:
        return None
    if live.live(now) and live.user_id == user.id:
        return live
    if live.live(now):
        raise ClaimInProgress(
            "someone else is claiming this device; "
            f"try again in {format_wait(live.seconds_left(now))}",
            retry_after=live.seconds_left(now),
        )
    await end_claim(uow, live, ClaimAction.EXPIRE, EventType.CLAIM_EXPIRED, now, actor="provisiond")
    return None


async def _open_claim(
    uow: UnitOfWork,
    device: ClaimableDevice,
    *,
    user: User,
    target: ClaimTarget,
    proof: ClaimProof,
    window: int,
    address: str,
    now: datetime,
) -> Claim:
    needs_proof = proof is not ClaimProof.NONE
    claim = Claim(
        new_id(),
        device.id,
        device.serial,
        user.id,
        target,
        proof,
        ClaimStatus.OPEN if needs_proof else ClaimStatus.PROVEN,
        now,
        now + timedelta(seconds=window),
        proven_at=None if needs_proof else now,
    )
    await uow.claims.add(claim, address)
    await uow.events.add(
        NewEvent(
            EventType.CLAIM_STARTED,
            now,
            actor(user),
            device_id=device.id,
            serial=device.serial,
            group_id=user.group_id,
            data={
                "claim": str(claim.id),
                "proof": proof.value,
                "target": target.value,
                "expires_at": claim.expires_at.isoformat(),
                "address": address,
            },
        )
    )
    return claim


async def claimer_group(uow: UnitOfWork, claim: Claim) -> dict[str, Any]:
    """A claim's events belong to its claimer's subtree (the device is nobody's yet), as
    ``claim.started`` does: never to no group, which would reach other customers' readers."""
    user = await uow.users.find_by_id(claim.user_id)
    return {"group_id": user.group_id, "group_path": user.group_path} if user else {}


async def end_claim(
    uow: UnitOfWork,
    claim: Claim,
    action: ClaimAction,
    event: EventType,
    now: datetime,
    *,
    actor: str,
    data: dict[str, Any] | None = None,
) -> bool:
    """Apply ``action`` to a live claim, with its event; False when the claim had moved."""
    if not await uow.claims.move(claim.id, action, now):
        return False
    await uow.events.add(
        NewEvent(
            event,
            now,
            actor,
            device_id=claim.device_id,
            serial=claim.serial,
            **await claimer_group(uow, claim),
            data={"claim": str(claim.id), **(data or {})},
        )
    )
    return True


async def own_claim(uow: UnitOfWork, user: User, claim_id: uuid.UUID) -> Claim:
    claim = await uow.claims.find(claim_id)
    if claim is None or claim.user_id != user.id:
        raise ClaimNotFound("no such claim of yours")
    return claim


async def get_claim(uow: UnitOfWork, user: User, claim_id: uuid.UUID) -> Claim:
    """The user's own claim, or ClaimNotFound (another's claim is not found either)."""
    async with uow.read():
        return await own_claim(uow, user, claim_id)


async def reload_claim(uow: UnitOfWork, claim_id: uuid.UUID) -> Claim:
    async with uow.read():
        claim = await uow.claims.find(claim_id)
    if claim is None:
        raise ClaimNotFound("the claim is gone")
    return claim


async def view_claim(uow: UnitOfWork, user: User, claim_id: uuid.UUID) -> ClaimView:
    async with uow.read():
        found = await uow.claims.find_named(claim_id)
        if found is None or found[0].user_id != user.id:
            raise ClaimNotFound("no such claim of yours")
        groups = await uow.groups.list(user.group_path)
        models = await uow.models.list()
    return ClaimView(found[0], found[1], leaves_of(groups), models, found[2])


def _model_choice(
    models: dict[str, DeviceModel], *, registered: str | None, posted: str, confirmed: str
) -> tuple[DeviceModel | None, Problem | None]:
    """The model a finished claim saves (by lower-case name in ``models``, the catalogue),
    or the problem with the one posted. Nothing posted keeps the registered model; another
    model than the registered one needs ``confirmed`` to name it."""
    kept = models.get(registered.lower()) if registered else None
    chosen = models.get(posted.strip().lower()) if posted.strip() else kept
    if chosen is None:
        if models:
            return None, Problem("choose a model from the catalogue", field="model")
        return None, None
    if (
        kept is not None
        and chosen.id != kept.id
        and confirmed.strip().lower() != chosen.name.lower()
    ):
        return None, Problem(
            f"this device was registered as {kept.name}; check its label, and tick the box "
            f"below to save {chosen.name} instead",
            field="model",
        )
    return chosen, None


async def finish_claim(  # noqa: C901, PLR0913 - the claim's outcomes (target, group, window, broker) and the form's four fields
    uow: UnitOfWork,
    hub: ClaimHub,
    *,
    user: User,
    claim_id: uuid.UUID,
    name: str,
    group_id: str,
    model: str,
    now: datetime,
    model_confirmed: str = "",
) -> str:
    """Finish a proven claim: the device gets its name, group (a leaf of the user's subtree)
    and model, and its owner. Every field is checked again here; all problems are reported
    at once. A model other than the one the device was registered with is saved only when
    ``model_confirmed`` names it (never silently). Returns the serial."""
    if not user.may_claim:
        raise Forbidden(user.why_no_claims)
    async with uow:
        claim = await own_claim(uow, user, claim_id)
        if claim.status is ClaimStatus.COMPLETED:
            raise ClaimClosed("this claim is finished already")
        if not claim.live(now):
            raise ClaimClosed("the claim window has closed; scan the device to start again")
        problems: list[Problem] = []
        if not CLAIM_LIFECYCLE.allows(claim.status, ClaimAction.FINISH):
            problems.append(Problem("prove you hold the device first", field="proof"))
        clean_name = name.strip()
        if not clean_name:
            problems.append(Problem("give the device a name", field="name"))
        elif (problem := name_problem(clean_name)) is not None:
            problems.append(Problem(problem, field="name"))
        leaves = {str(g.id): g for g in leaves_of(await uow.groups.list(user.group_path))}
        group = leaves.get(group_id.strip())
        if group is None:
            problems.append(Problem("choose a site from the list", field="group"))
        device = await uow.claims.device(claim.serial)
        if device is None:
            raise ClaimClosed("the device was deleted")
        chosen, model_problem = _model_choice(
            {m.name.lower(): m for m in await uow.models.list()},
            registered=device.model,
            posted=model,
            confirmed=model_confirmed,
        )
        if model_problem is not None:
            problems.append(model_problem)
        if problems:
            raise InvalidInput("; ".join(str(p) for p in problems), problems=problems)
        await take_device(
            uow,
            device,
            user=user,
            target=claim.target,
            group=group,
            name=clean_name,
            model=chosen,
            claim=claim,
            now=now,
        )
        if not await uow.claims.move(claim.id, ClaimAction.FINISH, now):
            raise ClaimClosed("this claim changed meanwhile; reload the page")
        await uow.commit()
    hub.publish(claim.id, {"event": "completed", "at": now.isoformat(), "serial": claim.serial})
    return claim.serial


async def cancel_claim(
    uow: UnitOfWork, hub: ClaimHub, *, user: User, claim_id: uuid.UUID, now: datetime
) -> None:
    async with uow:
        claim = await own_claim(uow, user, claim_id)
        ended = await end_claim(
            uow, claim, ClaimAction.CANCEL, EventType.CLAIM_CANCELLED, now, actor=actor(user)
        )
        await uow.commit()
    if ended:
        hub.publish(claim.id, {"event": "cancelled", "at": now.isoformat()})
