"""Signing in and out of the pages: passwords, sessions, lock-out.

A session is a random token in an HttpOnly cookie; the database keeps its SHA-256, the user,
a CSRF token for the session's forms, and when it ends (``session_hours`` after sign-in, or
``session_idle_minutes`` after its last use). Wrong passwords are counted per account:
``login_failures_before_lockout`` in a row lock it for ``login_lockout_minutes``; each address
may try ``login_rate_per_minute`` times a minute. Every outcome is an audit event. A failed
sign-in says the same whatever was wrong, so e-mail addresses cannot be probed.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from provisiond.domain.events import EventType, NewEvent
from provisiond.domain.users import User
from provisiond.errors import InvalidInput, TooManyRequests, Unauthenticated
from provisiond.services.hashing import hash_token, verify_password_off_loop
from provisiond.services.ratelimit import RateLimiter, log_refused
from provisiond.store.claims import StoredSession
from provisiond.store.uow import UnitOfWork

SIGN_IN_REFUSED = "wrong e-mail or password, or the account is locked for a while"
TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    lifetime: timedelta
    idle: timedelta
    failures_before_lockout: int
    lockout: timedelta
    rate_per_minute: int


@dataclass(frozen=True, slots=True)
class SignedIn:
    token: str  # the cookie's value: shown to the browser once, stored hashed
    csrf: str
    user: User
    expires_at: datetime


def new_csrf() -> str:
    return secrets.token_urlsafe(24)


async def sign_in(uow: UnitOfWork, limiter: RateLimiter, policy: SessionPolicy, *,
                  email: str, password: str, address: str, now: datetime) -> SignedIn:
    wait = limiter.take(("sign-in", address), policy.rate_per_minute)
    if wait:
        raise TooManyRequests("too many sign-in attempts from this address; wait a minute",
                              retry_after=wait)
    email = email.strip().lower()
    if not email or not password:
        raise InvalidInput("enter your e-mail and password")
    async with uow.read():
        record = await uow.sessions.login_record(email)
    # argon2 takes tens of milliseconds: off the event loop. Unknown users are verified
    # against a dummy hash, so a miss takes as long as a wrong password.
    ok = await verify_password_off_loop(record.password_hash if record else None, password)
    locked = record is not None and record.locked_until is not None \
        and record.locked_until > now
    if record is None:
        async with uow:
            await uow.events.add(NewEvent(EventType.USER_SIGN_IN_FAILED, now, f"web:{address}",
                                          data={"email": email, "reason": "unknown user"}))
            await uow.commit()
        # what was typed is not logged: it may be a password typed in the wrong field
        log_refused("sign-in", "unknown e-mail", address=address)
        raise Unauthenticated(SIGN_IN_REFUSED)
    user = record.user
    if ok and user.disabled:
        async with uow:
            await uow.events.add(NewEvent(
                EventType.USER_SIGN_IN_FAILED, now, f"web:{address}", group_id=user.group_id,
                data={"email": email, "reason": "disabled"}))
            await uow.commit()
        log_refused("sign-in", "account disabled", address=address, user=email)
        raise Unauthenticated(SIGN_IN_REFUSED)  # the same answer: nothing to probe
    if not ok or locked:
        async with uow:
            lock_until = None
            if not locked and record.failed_logins + 1 >= policy.failures_before_lockout:
                lock_until = now + policy.lockout
            if not locked:
                await uow.sessions.record_failure(user.id, lock_until)
            await uow.events.add(NewEvent(
                EventType.USER_SIGN_IN_FAILED, now, f"web:{address}", group_id=user.group_id,
                data={"email": email, "reason": "locked" if locked else "wrong password"}))
            if lock_until is not None:
                await uow.events.add(NewEvent(
                    EventType.USER_LOCKED, now, "provisiond", group_id=user.group_id,
                    data={"email": email, "until": lock_until.isoformat()}))
            await uow.commit()
        log_refused("sign-in", "account locked" if locked else "wrong password",
                    address=address, user=email)
        raise Unauthenticated(SIGN_IN_REFUSED)
    token = secrets.token_urlsafe(32)
    csrf = new_csrf()
    expires_at = now + policy.lifetime
    async with uow:
        await uow.sessions.purge_expired(now)
        await uow.sessions.record_success(user.id)
        await uow.sessions.add(hash_token(token), user.id, csrf, now=now,
                               expires_at=expires_at, address=address)
        await uow.events.add(NewEvent(EventType.USER_SIGNED_IN, now, f"user:{user.email}",
                                      group_id=user.group_id, data={"address": address}))
        await uow.commit()
    return SignedIn(token, csrf, user, expires_at)


async def session_for(uow: UnitOfWork, policy: SessionPolicy, *, token: str,
                      now: datetime) -> StoredSession | None:
    """The live session of this cookie token, or None (unknown, expired or idle)."""
    if not token or len(token) > 128:
        return None
    session_id = hash_token(token)
    async with uow.read():
        session = await uow.sessions.find(session_id)
    if session is None:
        return None
    if (session.expires_at <= now or now - session.last_seen_at > policy.idle
            or session.user.disabled):
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
        await uow.events.add(NewEvent(EventType.USER_SIGNED_OUT, now,
                                      f"user:{session.user.email}",
                                      group_id=session.user.group_id))
        await uow.commit()
