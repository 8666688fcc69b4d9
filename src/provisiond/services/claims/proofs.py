"""The user proves they hold the device: they type the claim code printed on its label
(proof ``code``) or the secret the device opened its window with (proof ``device-secret``).

Wrong ones are counted; the claim fails after :data:`~provisiond.domain.claims.WRONG_PROOFS_MAX`.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from provisiond.domain.claims import (
    WRONG_PROOFS_MAX,
    Claim,
    ClaimAction,
    ClaimProof,
    ClaimStatus,
    normalise_claim_code,
)
from provisiond.domain.events import EventType, NewEvent
from provisiond.domain.users import User
from provisiond.errors import ClaimClosed, Forbidden, InvalidInput, Problem
from provisiond.services.claim_hub import ClaimHub
from provisiond.services.claims.claiming import end_claim, own_claim, reload_claim
from provisiond.services.claims.ownership import actor
from provisiond.services.claims.policy import ClaimPolicy, take_token
from provisiond.services.hashing import hash_claim_code, hash_token, tokens_equal
from provisiond.services.ratelimit import RateLimiter, log_refused
from provisiond.store.claims import ClaimableDevice
from provisiond.store.uow import UnitOfWork

_FIELD = "code"


def _refused(message: str) -> InvalidInput:
    return InvalidInput(message, problems=[Problem(message, field=_FIELD)])


def _window_closed(device: ClaimableDevice, now: datetime) -> InvalidInput | None:
    """Why no device secret can be checked now (the device's window is not open), or None.
    Nothing is compared then, so the refusal costs no attempt."""
    if device.claim_secret_hash is None or device.claim_secret_expires_at is None:
        return _refused(
            "the device has not opened its claim window yet: have it send its secret "
            "first, then type that secret here"
        )
    if device.claim_secret_expires_at <= now:
        return _refused(
            "the device's claim window has expired: have the device open it again "
            "(it sends its secret anew), then type the secret"
        )
    return None


def _matches(claim: Claim, device: ClaimableDevice, code: str, now: datetime) -> bool:
    """Whether ``code`` is the claim's proof. A mistyped claim code (its check character),
    an empty secret and a device window that is not open are refused here, InvalidInput, and
    cost no attempt."""
    if claim.proof is ClaimProof.CODE:
        given = hash_claim_code(normalise_claim_code(code, field=_FIELD))
        expected = device.claim_code_hash
        return expected is not None and tokens_equal(given, expected)
    if not code.strip():
        raise _refused("type the secret the device opened its claim window with")
    closed = _window_closed(device, now)
    if closed is not None:
        raise closed
    expected = device.claim_secret_hash
    return expected is not None and tokens_equal(hash_token(code), expected)


async def _proven(uow: UnitOfWork, claim: Claim, user: User, now: datetime) -> None:
    await uow.claims.move(claim.id, ClaimAction.PROVE, now)
    await uow.events.add(
        NewEvent(
            EventType.CLAIM_PROVEN,
            now,
            actor(user),
            device_id=claim.device_id,
            serial=claim.serial,
            group_id=user.group_id,
            group_path=user.group_path,
            data={"claim": str(claim.id), "proof": claim.proof.value},
        )
    )


async def _wrong(uow: UnitOfWork, claim: Claim, user: User, now: datetime) -> int:
    """Count a wrong proof, with its event, and fail the claim at the last one allowed.
    The number of wrong proofs so far."""
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
            actor(user),
            device_id=claim.device_id,
            serial=claim.serial,
            group_id=user.group_id,
            group_path=user.group_path,
            data={"claim": str(claim.id), "attempt": attempts},
        )
    )
    if attempts >= WRONG_PROOFS_MAX:
        await end_claim(
            uow,
            claim,
            ClaimAction.FAIL,
            EventType.CLAIM_FAILED,
            now,
            actor=actor(user),
            data={"reason": "too many wrong codes"},
        )
    return attempts


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
    if not user.may_claim:
        raise Forbidden(user.why_no_claims)
    take_token(limiter, [("claim-proof", user.id)], policy.proof_rate_per_minute, "codes tried")
    async with uow:
        claim = await own_claim(uow, user, claim_id)
        if not claim.live(now):
            raise ClaimClosed("this claim is no longer open; scan the device again")
        if claim.status is ClaimStatus.PROVEN:
            return claim
        if claim.proof not in (ClaimProof.CODE, ClaimProof.DEVICE_SECRET):
            raise InvalidInput(
                "this claim is proven by the device, not by a code",
                problems=[Problem("is not asked for", field=_FIELD)],
            )
        device = await uow.claims.device(claim.serial)
        if device is None:
            raise ClaimClosed("the device was deleted")
        right = _matches(claim, device, code, now)
        if right:
            await _proven(uow, claim, user, now)
        else:
            attempts = await _wrong(uow, claim, user, now)
        await uow.commit()
    if right:
        hub.publish(claim.id, {"event": "proven", "at": now.isoformat()})
        return await reload_claim(uow, claim.id)
    if attempts >= WRONG_PROOFS_MAX:
        hub.publish(claim.id, {"event": "failed", "at": now.isoformat()})
        raise ClaimClosed(
            "too many wrong codes: this claim has failed; scan the device to start again"
        )
    what = "claim code" if claim.proof is ClaimProof.CODE else "device secret"
    left = WRONG_PROOFS_MAX - attempts
    raise InvalidInput(
        f"that is not this device's {what}; {left} tries left",
        problems=[Problem(f"is not this device's {what}; {left} tries left", field=_FIELD)],
    )
