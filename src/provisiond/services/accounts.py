"""Signing in and out of the pages: passwords, sessions, throttles and lock-out.

A session is a random token in an HttpOnly cookie; the database keeps its SHA-256, the user,
a CSRF token for the session's forms, and when it ends (``sessions__hours`` after sign-in, or
``sessions__idle_minutes`` after its last use). Every outcome is an audit event. A failed
sign-in says the same whatever was wrong, so e-mail addresses cannot be probed.

Guessing is held back three ways (docs/security.md, "Sign-in"):

- each client address may try ``login_rate_per_minute`` times a minute (any e-mail);
- each e-mail *and address*: ``login_failures_before_lockout`` wrong passwords in a row lock
  that address out of that e-mail for ``login_lockout_minutes``. Whoever guesses locks only
  themselves: the account's owner, elsewhere, still signs in. E-mails with no account are
  counted and locked the same way, so a lock says nothing about who has an account;
- each account, from all addresses together: after ``login_account_failures_before_slowdown``
  wrong passwords since its last sign-in, it checks one password per
  ``login_account_slowdown_seconds`` from addresses it has not been signed in from in the
  last 30 days (those it has are not slowed): many addresses cannot guess it quickly, and
  its owner is not locked out by them.

Every attempt is counted in the database, atomically, *before* its password is checked:
attempts sent at the same instant, to one instance or several, each see the ones before.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from provisiond.domain.events import EventType, NewEvent
from provisiond.domain.users import User
from provisiond.errors import InvalidInput, TooManyRequests, Unauthenticated
from provisiond.services.hashing import (
    hash_password_off_loop,
    hash_token,
    needs_rehash,
    verify_password_off_loop,
)
from provisiond.services.ratelimit import RateLimiter, log_refused
from provisiond.store.sessions import Charge, LoginRecord, StoredSession
from provisiond.store.uow import UnitOfWork

SIGN_IN_REFUSED = "wrong e-mail or password, or the account is locked for a while"
TOUCH_EVERY = timedelta(seconds=60)
MAX_EMAIL = 254
KNOWN_ADDRESS = timedelta(days=30)  # an address signed in from this recently is not slowed


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    lifetime: timedelta
    idle: timedelta
    failures_before_lockout: int  # per e-mail and address
    lockout: timedelta
    rate_per_minute: int  # per address
    account_failures_before_slowdown: int = 20
    account_slowdown: timedelta = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class SignedIn:
    token: str  # the cookie's value: shown to the browser once, stored hashed
    csrf: str
    user: User
    expires_at: datetime


def new_csrf() -> str:
    return secrets.token_urlsafe(24)


async def sign_in(
    uow: UnitOfWork,
    limiter: RateLimiter,
    policy: SessionPolicy,
    *,
    email: str,
    password: str,
    address: str,
    now: datetime,
) -> SignedIn:
    wait = limiter.take(("sign-in", address), policy.rate_per_minute)
    if wait:
        raise TooManyRequests(
            "too many sign-in attempts from this address; wait a minute", retry_after=wait
        )
    email = email.strip().lower()
    if not email or not password:
        raise InvalidInput("enter your e-mail and password")
    if len(email) > MAX_EMAIL:
        raise InvalidInput(f"an e-mail address has at most {MAX_EMAIL} characters")
    async with uow:  # counted before the check, known e-mail or not (the same work)
        record = await uow.sessions.login_record(email)
        charge = await uow.sessions.charge(
            email,
            address,
            now=now,
            budget=policy.failures_before_lockout,
            lock_until=now + policy.lockout,
            forget_before=now - policy.lockout,
            known_after=now - KNOWN_ADDRESS,
            account_threshold=policy.account_failures_before_slowdown,
            account_next=now + policy.account_slowdown,
        )
        await uow.commit()
    # argon2 is slow on purpose: off the event loop. Refused attempts are checked all the
    # same, unknown e-mails against a dummy hash, so every failure takes as long.
    ok = await verify_password_off_loop(record.password_hash if record else None, password)
    refusal = _refusal(record, charge, policy, ok)
    if refusal is not None or record is None:
        await _refuse(
            uow,
            record,
            charge,
            policy,
            email=email,
            address=address,
            reason=refusal or "unknown user",
            now=now,
        )
        raise Unauthenticated(SIGN_IN_REFUSED)
    return await _start_session(
        uow, record, policy, email=email, password=password, address=address, now=now
    )


def _refusal(
    record: LoginRecord | None, charge: Charge, policy: SessionPolicy, ok: bool
) -> str | None:
    """Why this attempt is refused (None: it is not), in the audit log's words."""
    if record is None:
        return "unknown user"
    if charge.failures > policy.failures_before_lockout:
        return "locked"  # whether the password was right is not looked at
    if charge.account_failures is None:
        return "slowed down"
    if not ok:
        return "wrong password"
    if record.user.disabled:
        return "disabled"
    return None


_LOGGED = {
    "unknown user": "unknown e-mail",
    "locked": "account locked",
    "slowed down": "account slowed down",
    "wrong password": "wrong password",
    "disabled": "account disabled",
}


async def _refuse(
    uow: UnitOfWork,
    record: LoginRecord | None,
    charge: Charge,
    policy: SessionPolicy,
    *,
    email: str,
    address: str,
    reason: str,
    now: datetime,
) -> None:
    group_id = record.user.group_id if record else None
    async with uow:
        await uow.events.add(
            NewEvent(
                EventType.USER_SIGN_IN_FAILED,
                now,
                f"web:{address}",
                group_id=group_id,
                data={"email": email, "reason": reason},
            )
        )
        if reason == "wrong password" and charge.failures == policy.failures_before_lockout:
            await uow.events.add(
                NewEvent(
                    EventType.USER_LOCKED,
                    now,
                    "provisiond",
                    group_id=group_id,
                    data={
                        "email": email,
                        "lock": "address",
                        "address": address,
                        "until": (now + policy.lockout).isoformat(),
                    },
                )
            )
        if (
            reason == "wrong password"
            and charge.account_failures == policy.account_failures_before_slowdown
        ):
            await uow.events.add(
                NewEvent(
                    EventType.USER_LOCKED,
                    now,
                    "provisiond",
                    group_id=group_id,
                    data={"email": email, "lock": "account", "failures": charge.account_failures},
                )
            )
        await uow.commit()
    # what was typed is not logged: it may be a password typed in the wrong field
    if record is None:
        log_refused("sign-in", _LOGGED[reason], address=address)
    else:
        log_refused("sign-in", _LOGGED[reason], address=address, user=email)


async def _start_session(
    uow: UnitOfWork,
    record: LoginRecord,
    policy: SessionPolicy,
    *,
    email: str,
    password: str,
    address: str,
    now: datetime,
) -> SignedIn:
    user = record.user
    # a hash made with other parameters is made again with today's (OWASP's) while the
    # password is at hand
    rehashed = (
        await hash_password_off_loop(password) if needs_rehash(record.password_hash) else None
    )
    token = secrets.token_urlsafe(32)
    csrf = new_csrf()
    expires_at = now + policy.lifetime
    async with uow:
        await uow.sessions.purge_expired(now)
        await uow.sessions.signed_in(user.id, email, address, now)
        if rehashed is not None:
            await uow.sessions.replace_password_hash(user.id, record.password_hash, rehashed)
        await uow.sessions.add(
            hash_token(token), user.id, csrf, now=now, expires_at=expires_at, address=address
        )
        await uow.events.add(
            NewEvent(
                EventType.USER_SIGNED_IN,
                now,
                f"user:{user.email}",
                group_id=user.group_id,
                data={"address": address},
            )
        )
        await uow.commit()
    return SignedIn(token, csrf, user, expires_at)


async def forget_sign_in_addresses(
    uow: UnitOfWork, policy: SessionPolicy, *, now: datetime, limit: int = 1000
) -> int:
    """Drop the sign-in counts that no longer count (a background loop of `serve`): the
    rows of attempts older than the lock-out, unless signed in from in the last 30 days."""
    async with uow:
        dropped = await uow.sessions.forget_addresses(
            forget_before=now - policy.lockout, known_after=now - KNOWN_ADDRESS, limit=limit
        )
        await uow.commit()
    return dropped


async def session_for(
    uow: UnitOfWork, policy: SessionPolicy, *, token: str, now: datetime
) -> StoredSession | None:
    """The live session of this cookie token, or None (unknown, expired or idle)."""
    if not token or len(token) > 128:
        return None
    session_id = hash_token(token)
    async with uow.read():
        session = await uow.sessions.find(session_id)
    if session is None:
        return None
    if (
        session.expires_at <= now
        or now - session.last_seen_at > policy.idle
        or session.user.disabled
    ):
        async with uow:
            await uow.sessions.delete(session_id)
            await uow.commit()
        return None
    if now - session.last_seen_at > TOUCH_EVERY:
        async with uow:
            await uow.sessions.touch(session_id, now)
            await uow.commit()
    return session


async def sign_out(uow: UnitOfWork, *, token: str, now: datetime) -> None:
    session_id = hash_token(token)
    async with uow:
        session = await uow.sessions.find(session_id)
        if session is None:
            return
        await uow.sessions.delete(session_id)
        await uow.events.add(
            NewEvent(
                EventType.USER_SIGNED_OUT,
                now,
                f"user:{session.user.email}",
                group_id=session.user.group_id,
            )
        )
        await uow.commit()
