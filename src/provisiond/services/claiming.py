"""Claiming by people: start a claim, prove possession, finish it; release a device.

Visibility is the rule that protects the fleet: a user sees the devices in their group's
subtree. A device that does not exist and one the user may not see are answered alike
(:class:`DeviceNotFound`, one 404 page) and in the same time (the subtree is part of the
query that looks the serial up), so serials cannot be enumerated. Users who may
claim (admins, installers) may also start claims on unowned (registered or released)
devices, whose serial they must have.

Every change is one transaction with its audit event; claim events reach open claim pages
through the :class:`~provisiond.services.claim_hub.ClaimHub` after the commit. Claims and
devices move only along the domain's tables (:data:`~provisiond.domain.claims.CLAIM_LIFECYCLE`,
:data:`~provisiond.domain.device.LIFECYCLE`): services ask them before moving, and the store's
guarded updates admit only the moves they name. Two people claiming one device at once: the
partial unique index on live claims admits one claim, and the guarded update of the device
(``WHERE state IN`` the states a claim may leave) admits one owner; the other gets a conflict.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from provisiond.domain.catalog import DeviceModel
from provisiond.domain.claims import (
    CLAIM_LIFECYCLE,
    DEVICE_WINDOW_MAX_SECONDS,
    WRONG_PROOFS_MAX,
    Claim,
    ClaimAction,
    ClaimProof,
    ClaimStatus,
    ClaimTarget,
    ReleasePolicy,
    normalise_claim_code,
    parse_target,
)
from provisiond.domain.device import LIFECYCLE, Device, DeviceAction, name_problem
from provisiond.domain.events import Event, EventType, NewEvent
from provisiond.domain.groups import Group
from provisiond.domain.serials import parse_serial
from provisiond.domain.users import Role, User
from provisiond.errors import (
    ClaimClosed,
    ClaimInProgress,
    ClaimNotFound,
    DeviceAlreadyClaimed,
    DeviceNotFound,
    Forbidden,
    InvalidInput,
    Problem,
    TooManyRequests,
    UserNotFound,
)
from provisiond.services.claim_hub import ClaimHub
from provisiond.services.hashing import hash_claim_code, hash_token, tokens_equal
from provisiond.services.ids import new_id
from provisiond.services.ratelimit import RateLimiter, log_refused
from provisiond.services.scoping import readable
from provisiond.store.claims import ClaimableDevice
from provisiond.store.uow import UnitOfWork

NOT_FOUND = "no such device, or it is not yours to see"


@dataclass(frozen=True, slots=True)
class ClaimPolicy:
    default_proof: ClaimProof
    default_window_seconds: int
    claim_rate_per_minute: int
    proof_rate_per_minute: int
    lookup_rate_per_minute: int  # device pages a user may ask for that find nothing


@dataclass(frozen=True, slots=True)
class Started:
    """A claim started: ``claim`` when proof is needed, else the device is claimed."""

    serial: str
    claim: Claim | None


@dataclass(frozen=True, slots=True)
class ClaimView:
    claim: Claim
    device_name: str
    leaves: list[Group]  # where the device may go: the leaves of the user's subtree
    models: list[DeviceModel]


def visible(user: User, group_path: str | None) -> bool:
    """The user may see what sits in this group (their group's subtree)."""
    return user.scope.covers(group_path)


def _effective(device: ClaimableDevice, policy: ClaimPolicy) -> tuple[ClaimProof, int]:
    return (
        device.claim_proof or policy.default_proof,
        device.claim_window_seconds or policy.default_window_seconds,
    )


def _take_token(limiter: RateLimiter, keys: list[tuple[Any, ...]], rate: int, what: str) -> None:
    for key in keys:
        wait = limiter.take(key, rate)
        if wait:
            raise TooManyRequests(f"too many {what}; try again in {wait:.0f} s", retry_after=wait)


def _actor(user: User) -> str:
    return f"user:{user.email}"


def leaves_of(groups: list[Group]) -> list[Group]:
    parents = {g.parent_id for g in groups}
    return [g for g in groups if g.id not in parents]


def _serial_or_not_found(text: str) -> str:
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
) -> Device:
    """The device if the user may see it; else DeviceNotFound, whether or not it exists.

    A device of another customer and a missing serial take the same path: the user's
    subtree is part of the query, so the database returns no row for either, nothing more
    is read, and the same branch raises. With a limiter, each lookup that finds nothing
    costs one of the user's ``lookup_rate_per_minute``: guessing serials is throttled.
    """
    serial = _serial_or_not_found(serial_text)
    async with uow.read():
        device = await uow.devices.find_by_serial(serial, seen_by=user.scope)
    if device is None or not visible(user, device.group_path):
        if limiter is not None and policy is not None:
            _take_token(
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
    serial = _serial_or_not_found(serial_text)
    async with uow.read():
        device = await uow.claims.device(serial, claimer=user.scope)
    if device is not None and visible(user, device.group_path):
        return "device"
    _take_token(
        limiter,
        [("claim-user", user.id), ("claim-address", address)],
        policy.claim_rate_per_minute,
        "claim attempts",
    )
    if (
        device is not None
        and LIFECYCLE.allows(device.state, DeviceAction.CLAIM)
        and user.role.may_claim
    ):
        return "claim"
    log_refused("claim", "no such device to claim", user=user.email, address=address, serial=serial)
    raise DeviceNotFound(NOT_FOUND)


async def device_timeline(
    uow: UnitOfWork, limiter: RateLimiter, policy: ClaimPolicy, user: User, serial_text: str
) -> tuple[Device, list[Event], list[Claim]]:
    """A visible device, its onboarding timeline (from its last reset release on) and its
    claims. A device the user may not see is not read further than a missing one."""
    device = await find_visible_device(uow, user, serial_text, limiter=limiter, policy=policy)
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
    events = readable(user.scope, events)
    claims = [
        c
        for c in claims
        if (u := claimers[c.user_id]) is not None and user.scope.covers(u.group_path)
    ]
    if since and events:  # reset at a release: that event starts the timeline
        claims = [c for c in claims if c.started_at >= events[0].at]
    return device, events, claims


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
    """Start claiming a device (the scan). Without a proof requirement, claim it at once."""
    if not user.role.may_claim:
        raise Forbidden("your role may not claim devices")
    _take_token(
        limiter,
        [("claim-user", user.id), ("claim-address", address)],
        policy.claim_rate_per_minute,
        "claim attempts",
    )
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
    async with uow:
        in_progress = ClaimInProgress(
            "someone else started claiming this device a moment "
            "ago; try again when their window closes"
        )
        uow.conflicts_as(in_progress)
        device = await uow.claims.device(serial, claimer=user.scope)
        claimable = device is not None and LIFECYCLE.allows(device.state, DeviceAction.CLAIM)
        if device is None or (not claimable and not visible(user, device.group_path)):
            log_refused(
                "claim", "no such device to claim", user=user.email, address=address, serial=serial
            )
            raise DeviceNotFound(NOT_FOUND)
        if not claimable:
            raise DeviceAlreadyClaimed(f"{serial} is claimed already", serial=serial)
        proof, window = _effective(device, policy)
        if proof is ClaimProof.NONE:
            await _take(
                uow,
                device,
                user=user,
                target=parsed_target,
                group=None,
                name=None,
                model=None,
                claim=None,
                now=now,
            )
            await uow.commit()
            return Started(serial, None)
        live = await uow.claims.live_for_device(device.id)
        if live is not None:
            if live.live(now) and live.user_id == user.id:
                return Started(serial, live)  # a second scan resumes the claim
            if live.live(now):
                raise ClaimInProgress(
                    f"someone else is claiming this device; try again in "
                    f"{live.seconds_left(now)} s",
                    retry_after=live.seconds_left(now),
                )
            await _end(
                uow, live, ClaimAction.EXPIRE, EventType.CLAIM_EXPIRED, now, actor="provisiond"
            )
        claim = Claim(
            new_id(),
            device.id,
            serial,
            user.id,
            parsed_target,
            proof,
            ClaimStatus.OPEN,
            now,
            now + timedelta(seconds=window),
        )
        await uow.claims.add(claim, address)
        await uow.events.add(
            NewEvent(
                EventType.CLAIM_STARTED,
                now,
                _actor(user),
                device_id=device.id,
                serial=serial,
                group_id=user.group_id,
                data={
                    "claim": str(claim.id),
                    "proof": proof.value,
                    "target": parsed_target.value,
                    "expires_at": claim.expires_at.isoformat(),
                    "address": address,
                },
            )
        )
        await uow.commit()
    return Started(serial, claim)


async def _claimer_group(uow: UnitOfWork, claim: Claim) -> dict[str, Any]:
    """A claim's events belong to its claimer's subtree (the device is nobody's yet), as
    ``claim.started`` does: never to no group, which would reach other customers' readers."""
    user = await uow.users.find_by_id(claim.user_id)
    return {"group_id": user.group_id, "group_path": user.group_path} if user else {}


async def _end(
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
            **await _claimer_group(uow, claim),
            data={"claim": str(claim.id), **(data or {})},
        )
    )
    return True


async def _take(
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
    group_id = group.id if group else user.group_id
    group_path = group.path if group else user.group_path
    owner = user.id if target is ClaimTarget.ME else None
    if not await uow.claims.take_device(
        device.id,
        group_id=group_id,
        owner_user_id=owner,
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
            _actor(user),
            device_id=device.id,
            serial=device.serial,
            group_id=group_id,
            data={
                "group": group_path,
                "owner": user.email if owner else None,
                "target": target.value,
                "name": name or device.name,
                "model": model.name if model else None,
                "claim": str(claim.id) if claim else None,
            },
        )
    )


async def _own_claim(uow: UnitOfWork, user: User, claim_id: uuid.UUID) -> Claim:
    claim = await uow.claims.find(claim_id)
    if claim is None or claim.user_id != user.id:
        raise ClaimNotFound("no such claim of yours")
    return claim


async def get_claim(uow: UnitOfWork, user: User, claim_id: uuid.UUID) -> Claim:
    """The user's own claim, or ClaimNotFound (another's claim is not found either)."""
    async with uow.read():
        return await _own_claim(uow, user, claim_id)


async def view_claim(uow: UnitOfWork, user: User, claim_id: uuid.UUID) -> ClaimView:
    async with uow.read():
        found = await uow.claims.find_named(claim_id)
        if found is None or found[0].user_id != user.id:
            raise ClaimNotFound("no such claim of yours")
        groups = await uow.groups.list(user.group_path)
        models = await uow.models.list()
    return ClaimView(found[0], found[1], leaves_of(groups), models)


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
                **await _claimer_group(uow, claim),
                data={"claim": str(claim.id), "proof": "button"},
            )
        )
        await uow.commit()
    hub.publish(claim.id, {"event": "proven", "at": now.isoformat()})
    return claim


async def open_device_window(
    uow: UnitOfWork, *, device_id: uuid.UUID, secret: str, duration_ms: int, now: datetime
) -> datetime:
    """ThingsBoard's device claiming: the device allows claims with ``secret`` for
    ``duration_ms``. Returns when the window closes."""
    problems = []
    if not isinstance(secret, str) or not secret or len(secret) > 256:
        problems.append(Problem("must be a text of 1 to 256 characters", field="secretKey"))
    if (
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
    if problems:
        raise InvalidInput("; ".join(str(p) for p in problems), problems=problems)
    expires_at = now + timedelta(milliseconds=duration_ms)
    async with uow:
        device = await uow.devices.find_by_id(device_id)
        if device is None:
            raise DeviceNotFound("the device was deleted")
        if not LIFECYCLE.allows(device.state, DeviceAction.CLAIM):
            raise DeviceAlreadyClaimed(
                f"{device.serial} is claimed already; release it first", serial=device.serial
            )
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


async def prove(
    uow: UnitOfWork,
    limiter: RateLimiter,
    hub: ClaimHub,
    policy: ClaimPolicy,
    *,
    user: User,
    claim_id: uuid.UUID,
    code: str,
    now: datetime,
) -> Claim:
    """The user types the claim code (proof ``code``) or the device's secret (proof
    ``device-secret``). Wrong ones are counted; the claim fails after WRONG_PROOFS_MAX."""
    if not user.role.may_claim:
        raise Forbidden("your role may not claim devices")
    _take_token(limiter, [("claim-proof", user.id)], policy.proof_rate_per_minute, "codes tried")
    field = "code"
    async with uow:
        claim = await _own_claim(uow, user, claim_id)
        if not claim.live(now):
            raise ClaimClosed("this claim is no longer open; scan the device again")
        if claim.status is ClaimStatus.PROVEN:
            return claim
        if claim.proof not in (ClaimProof.CODE, ClaimProof.DEVICE_SECRET):
            raise InvalidInput(
                "this claim is proven by the device, not by a code",
                problems=[Problem("is not asked for", field=field)],
            )
        device = await uow.claims.device(claim.serial)
        if device is None:
            raise ClaimClosed("the device was deleted")
        if claim.proof is ClaimProof.CODE:
            # a mistyped code (its check character) is refused here and costs no attempt
            given = hash_claim_code(normalise_claim_code(code, field=field))
            expected = device.claim_code_hash
            right = expected is not None and tokens_equal(given, expected)
        else:
            expected = device.claim_secret_hash
            open_ = (
                device.claim_secret_expires_at is not None and device.claim_secret_expires_at > now
            )
            right = (
                bool(code)
                and expected is not None
                and open_
                and tokens_equal(hash_token(code), expected)
            )
        if right:
            await uow.claims.move(claim.id, ClaimAction.PROVE, now)
            await uow.events.add(
                NewEvent(
                    EventType.CLAIM_PROVEN,
                    now,
                    _actor(user),
                    device_id=claim.device_id,
                    serial=claim.serial,
                    group_id=user.group_id,
                    group_path=user.group_path,
                    data={"claim": str(claim.id), "proof": claim.proof.value},
                )
            )
            await uow.commit()
        else:
            log_refused(
                "claim-proof",
                "wrong " + claim.proof.value,
                user=user.email,
                serial=claim.serial,
                claim=claim.id,
            )
            attempts = await uow.claims.count_wrong_proof(claim.id)
            await uow.events.add(
                NewEvent(
                    EventType.CLAIM_REJECTED,
                    now,
                    _actor(user),
                    device_id=claim.device_id,
                    serial=claim.serial,
                    group_id=user.group_id,
                    group_path=user.group_path,
                    data={"claim": str(claim.id), "attempt": attempts},
                )
            )
            failed = attempts >= WRONG_PROOFS_MAX
            if failed:
                await _end(
                    uow,
                    claim,
                    ClaimAction.FAIL,
                    EventType.CLAIM_FAILED,
                    now,
                    actor=_actor(user),
                    data={"reason": "too many wrong codes"},
                )
            await uow.commit()
    if right:
        hub.publish(claim.id, {"event": "proven", "at": now.isoformat()})
        return await _reload(uow, claim.id)
    if failed:
        hub.publish(claim.id, {"event": "failed", "at": now.isoformat()})
        raise ClaimClosed(
            "too many wrong codes: this claim has failed; scan the device to start again"
        )
    what = "claim code" if claim.proof is ClaimProof.CODE else "device secret"
    left = WRONG_PROOFS_MAX - attempts
    raise InvalidInput(
        f"that is not this device's {what}; {left} tries left",
        problems=[Problem(f"is not this device's {what}; {left} tries left", field=field)],
    )


async def _reload(uow: UnitOfWork, claim_id: uuid.UUID) -> Claim:
    async with uow.read():
        claim = await uow.claims.find(claim_id)
    if claim is None:
        raise ClaimNotFound("the claim is gone")
    return claim


async def finish_claim(
    uow: UnitOfWork,
    hub: ClaimHub,
    *,
    user: User,
    claim_id: uuid.UUID,
    name: str,
    group_id: str,
    model: str,
    now: datetime,
) -> str:
    """Finish a proven claim: the device gets its name, group (a leaf of the user's subtree)
    and model, and its owner. Every field is checked again here; all problems are reported
    at once. Returns the serial."""
    if not user.role.may_claim:
        raise Forbidden("your role may not claim devices")
    async with uow:
        claim = await _own_claim(uow, user, claim_id)
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
        models = {m.name.lower(): m for m in await uow.models.list()}
        chosen = models.get(model.strip().lower()) if model.strip() else None
        if models and chosen is None:
            problems.append(Problem("choose a model from the catalogue", field="model"))
        if problems:
            raise InvalidInput("; ".join(str(p) for p in problems), problems=problems)
        device = await uow.claims.device(claim.serial)
        if device is None:
            raise ClaimClosed("the device was deleted")
        await _take(
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
        claim = await _own_claim(uow, user, claim_id)
        ended = await _end(
            uow, claim, ClaimAction.CANCEL, EventType.CLAIM_CANCELLED, now, actor=_actor(user)
        )
        await uow.commit()
    if ended:
        hub.publish(claim.id, {"event": "cancelled", "at": now.isoformat()})


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
    device_view = await find_visible_device(uow, user, serial, limiter=limiter, policy=policy)
    if not (device_view.owner_user_id == user.id or user.role is Role.ADMIN):
        raise Forbidden("only the device's owner or an admin may release it")
    async with uow:
        device = await uow.claims.device(device_view.serial)
        if device is None or not visible(user, device.group_path):
            raise DeviceNotFound(NOT_FOUND)
        if not LIFECYCLE.allows(device.state, DeviceAction.RELEASE):
            raise DeviceAlreadyClaimed(f"{device.serial} is not claimed")
        event_id = await uow.events.add(
            NewEvent(
                EventType.DEVICE_RELEASED,
                now,
                _actor(user),
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


@dataclass(frozen=True, slots=True)
class Overview:
    days: list[str]  # the last FUNNEL_DAYS days, oldest first
    registered: list[int]  # cumulative, per day
    provisioned: list[int]
    claimed: list[int]
    events: list[Event]
    with_stock: bool


FUNNEL_DAYS = 30


async def overview(uow: UnitOfWork, *, user: User, now: datetime) -> Overview:
    """An admin's view of their subtree: the onboarding funnel over the last 30 days and the
    latest events. Unowned stock (registered, not yet claimed) has no group: it counts for
    admins of a top-level group, who run the instance's fleet."""
    if user.role is not Role.ADMIN:
        raise Forbidden("the overview is for admins")
    first = (now - timedelta(days=FUNNEL_DAYS - 1)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    with_stock = "/" not in user.group_path
    async with uow.read():
        funnel = await uow.insights.funnel(user.group_path, with_stock=with_stock, since=first)
        events = await uow.insights.latest_events(user.group_path)
    days = [(first + timedelta(days=i)).strftime("%Y-%m-%d") for i in range(FUNNEL_DAYS)]
    series: list[list[int]] = [[], [], []]
    totals = list(funnel.base)
    for day in days:
        counts = funnel.days.get(day, [0, 0, 0])
        for i in range(3):
            totals[i] += counts[i]
            series[i].append(totals[i])
    return Overview(days, series[0], series[1], series[2], events, with_stock)


# ------------------------------------------------------------ user-node association

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
    import secrets

    async with uow:
        user = await uow.users.find_by_email(email.strip().lower())
        if user is None:
            raise UserNotFound(f"no user {email!r}", email=email)
        if not user.role.may_claim:
            raise Forbidden(f"{user.email} is a {user.role.value}: viewers may not claim devices")
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
        await _take(
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
