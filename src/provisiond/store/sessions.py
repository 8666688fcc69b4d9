"""Signed-in browser sessions and the bookkeeping of sign-in attempts (per address and per
account), for the login pages."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, delete, insert, or_, select, true, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from provisiond.domain.users import User
from provisiond.store.directory import user_from_row, user_query
from provisiond.store.schema import sign_in_addresses, users, web_sessions


@dataclass(frozen=True, slots=True)
class StoredSession:
    id: str
    user: User
    csrf: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class LoginRecord:
    user: User
    password_hash: str


@dataclass(frozen=True, slots=True)
class Charge:
    """One sign-in attempt, counted before its password is checked."""

    failures: int  # from this address, in a row, this attempt included
    known: bool  # the account was signed in to from this address (recently)
    account_failures: int | None  # the account's count, this attempt included; None: not
    #                               counted (no such account, or refused before it)


class SessionRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(
        self,
        session_id: str,
        user_id: uuid.UUID,
        csrf: str,
        *,
        now: datetime,
        expires_at: datetime,
        address: str,
    ) -> None:
        await self._conn.execute(
            insert(web_sessions).values(
                id=session_id,
                user_id=user_id,
                csrf=csrf,
                created_at=now,
                last_seen_at=now,
                expires_at=expires_at,
                address=address[:64],
            )
        )

    async def find(self, session_id: str) -> StoredSession | None:
        s = web_sessions
        row = (
            await self._conn.execute(
                user_query()
                .add_columns(
                    s.c.csrf,
                    s.c.created_at.label("session_created_at"),
                    s.c.last_seen_at,
                    s.c.expires_at,
                )
                .join(s, s.c.user_id == users.c.id)
                .where(s.c.id == session_id)
            )
        ).first()
        if row is None:
            return None
        return StoredSession(
            session_id,
            user_from_row(row),
            row.csrf,
            row.session_created_at,
            row.last_seen_at,
            row.expires_at,
        )

    async def touch(self, session_id: str, now: datetime) -> None:
        await self._conn.execute(
            update(web_sessions).where(web_sessions.c.id == session_id).values(last_seen_at=now)
        )

    async def delete(self, session_id: str) -> None:
        await self._conn.execute(delete(web_sessions).where(web_sessions.c.id == session_id))

    async def delete_for_user(self, user_id: uuid.UUID) -> int:
        result = await self._conn.execute(
            delete(web_sessions).where(web_sessions.c.user_id == user_id)
        )
        return int(result.rowcount or 0)

    async def purge_expired(self, now: datetime) -> None:
        await self._conn.execute(delete(web_sessions).where(web_sessions.c.expires_at <= now))

    # sign-in bookkeeping ----------------------------------------------------------------
    async def login_record(self, email: str) -> LoginRecord | None:
        row = (await self._conn.execute(user_query().where(users.c.email == email))).first()
        if row is None:
            return None
        return LoginRecord(user_from_row(row), row.password_hash)

    async def charge(  # noqa: PLR0913 - the sign-in counters' keys and limits, charged in one statement
        self,
        email: str,
        address: str,
        *,
        now: datetime,
        budget: int,
        lock_until: datetime,
        forget_before: datetime,
        known_after: datetime,
        account_threshold: int,
        account_next: datetime,
    ) -> Charge:
        """Count an attempt to sign in as ``email`` from ``address``, atomically (one
        statement per count: concurrent attempts, on any instance, each see their own).

        Per e-mail and address: the ``budget``-th failure in a row locks until
        ``lock_until``; a lock past, or failures older than ``forget_before``, start again.
        Per account (only while the address is not locked): once its count reaches
        ``account_threshold``, an address it was not signed in from after ``known_after``
        is counted (allowed) only when the account's ``locked_until`` has passed, which then
        moves to ``account_next``."""
        a = sign_in_addresses
        address = address[:64]
        stale = or_(
            and_(a.c.locked_until.is_not(None), a.c.locked_until <= now),
            and_(a.c.locked_until.is_(None), a.c.updated_at <= forget_before),
        )
        first_lock = lock_until if budget <= 1 else None
        upsert = self._insert(a).values(
            email=email, address=address, failures=1, locked_until=first_lock, updated_at=now
        )
        row = (
            await self._conn.execute(
                upsert.on_conflict_do_update(
                    index_elements=[a.c.email, a.c.address],
                    set_={
                        "failures": case((stale, 1), else_=a.c.failures + 1),
                        "locked_until": case(
                            (stale, first_lock),
                            (
                                and_(a.c.locked_until.is_(None), a.c.failures + 1 >= budget),
                                lock_until,
                            ),
                            else_=a.c.locked_until,
                        ),
                        "updated_at": now,
                    },
                ).returning(a.c.failures, a.c.signed_in_at)
            )
        ).one()
        known = row.signed_in_at is not None and row.signed_in_at > known_after
        if row.failures > budget:
            return Charge(row.failures, known, None)
        u = users
        allowed = or_(
            u.c.failed_logins < account_threshold,
            u.c.locked_until.is_(None),
            u.c.locked_until <= now,
        )
        counted = (
            await self._conn.execute(
                update(u)
                .where(u.c.email == email, true() if known else allowed)
                .values(
                    failed_logins=u.c.failed_logins + 1,
                    locked_until=case(
                        (u.c.failed_logins + 1 >= account_threshold, account_next),
                        else_=u.c.locked_until,
                    ),
                )
                .returning(u.c.failed_logins)
            )
        ).scalar_one_or_none()
        return Charge(row.failures, known, counted)

    async def signed_in(self, user_id: uuid.UUID, email: str, address: str, now: datetime) -> None:
        """A sign-in succeeded: the account's and this address's counts start again (rows
        in the order :meth:`charge` takes them, so the two never wait on each other)."""
        a = sign_in_addresses
        values = {"failures": 0, "locked_until": None, "signed_in_at": now, "updated_at": now}
        await self._conn.execute(
            self._insert(a)
            .values(email=email, address=address[:64], **values)
            .on_conflict_do_update(index_elements=[a.c.email, a.c.address], set_=values)
        )
        await self._conn.execute(
            update(users).where(users.c.id == user_id).values(failed_logins=0, locked_until=None)
        )

    def _insert(self, table: Any) -> Any:
        """INSERT in the connection's dialect (for its ON CONFLICT)."""
        return (postgresql if self._conn.dialect.name == "postgresql" else sqlite).insert(table)

    async def forget_addresses(
        self, *, forget_before: datetime, known_after: datetime, limit: int
    ) -> int:
        """Drop up to ``limit`` rows that no longer count: no attempt since
        ``forget_before`` (a lock, shorter, is over) and no sign-in since ``known_after``.
        Rows a sign-in holds are skipped (PostgreSQL): this never waits on one."""
        a = sign_in_addresses
        stale = (
            select(a.c.email, a.c.address)
            .where(
                a.c.updated_at < forget_before,
                or_(a.c.signed_in_at.is_(None), a.c.signed_in_at <= known_after),
            )
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        result = await self._conn.execute(
            delete(a).where(tuple_(a.c.email, a.c.address).in_(stale))
        )
        return int(result.rowcount or 0)

    async def replace_password_hash(self, user_id: uuid.UUID, old: str, new: str) -> bool:
        """Store ``new`` as the user's password hash if it is still ``old`` (a password
        changed meanwhile is kept)."""
        result = await self._conn.execute(
            update(users)
            .where(users.c.id == user_id, users.c.password_hash == old)
            .values(password_hash=new)
        )
        return bool(result.rowcount)
