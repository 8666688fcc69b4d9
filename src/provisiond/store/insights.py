"""Read-only summaries for the admin overview (services/claims/overview.py).

The funnel reads the daily summaries the triggers of migration 0020 keep: ``device_days``
(per day and group, with the time-to-claim buckets), ``funnel_days`` (per day, group and
model) and ``claim_endings_days`` (failed and expired claims). A period of a year over a
million devices is some thousands of summary rows, not a million device rows. Live claims
whose window closed are counted from ``claims`` (index ``status, started_at``).

A subtree is its groups' ids; with ``with_stock``, devices of no group (the nil UUID in the
summaries) count too.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from provisiond.domain.claims import LIVE, ClaimProof, ClaimStatus
from provisiond.domain.events import Event
from provisiond.domain.funnel import ClaimEnding, Counts
from provisiond.store.devices import event_from_row
from provisiond.store.directory import subtree_clause
from provisiond.store.schema import (
    DELAY_BUCKETS,
    claim_endings_days,
    claims,
    device_days,
    devices,
    events,
    funnel_days,
    groups,
    users,
)

#: The summary's key for "no group" and "no model".
NIL = uuid.UUID(int=0)
#: How many of the newest events the latest of a busy subtree are looked for in first.
RECENT_EVENTS = 5000
_LIVE = [s.value for s in LIVE]


class InsightRepository:
    """Read-only summaries for the admin overview."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    @staticmethod
    def _in_scope(key: Any, under: str, with_stock: bool) -> Any:
        in_subtree = key.in_(select(groups.c.id).where(subtree_clause(groups.c.path, under)))
        return or_(in_subtree, key == NIL) if with_stock else in_subtree

    def _days(self, table: Any, under: str, with_stock: bool, first: str, last: str) -> Any:
        return (
            table.c.day >= first,
            table.c.day <= last,
            self._in_scope(table.c.group_key, under, with_stock),
        )

    async def funnel_by_group(
        self, under: str, *, with_stock: bool, first: str, last: str
    ) -> dict[uuid.UUID | None, tuple[Counts, dict[int, int]]]:
        """The cohort registered from day ``first`` to ``last`` (YYYY-MM-DD, included), by
        the group each device is in now (None: none), with the claimed ones by time-to-claim
        bucket."""
        d = device_days.c
        buckets = [d[f"b{i}"] for i in range(DELAY_BUCKETS)]
        rows = await self._conn.execute(
            select(
                d.group_key,
                func.sum(d.registered),
                func.sum(d.provisioned),
                func.sum(d.claimed),
                *(func.sum(b) for b in buckets),
            )
            .where(*self._days(device_days, under, with_stock, first, last))
            .group_by(d.group_key)
        )
        out: dict[uuid.UUID | None, tuple[Counts, dict[int, int]]] = {}
        for g, r, p, c, *counts in rows:
            if r or p or c:
                delays = {i: int(n) for i, n in enumerate(counts) if n}
                out[_key(g)] = (Counts(int(r), int(p), int(c)), delays)
        return out

    async def funnel_by_model(
        self, under: str, *, with_stock: bool, first: str, last: str
    ) -> dict[uuid.UUID | None, Counts]:
        """The same cohort by model (None: none)."""
        f = funnel_days.c
        rows = await self._conn.execute(
            select(
                f.model_key, func.sum(f.registered), func.sum(f.provisioned), func.sum(f.claimed)
            )
            .where(*self._days(funnel_days, under, with_stock, first, last))
            .group_by(f.model_key)
        )
        return {_key(m): Counts(int(r), int(p), int(c)) for m, r, p, c in rows if r or p or c}

    async def funnel_by_day(
        self, under: str, *, with_stock: bool, first: str, last: str
    ) -> dict[str, Counts]:
        """The same cohort, by day of registration."""
        d = device_days.c
        rows = await self._conn.execute(
            select(d.day, func.sum(d.registered), func.sum(d.provisioned), func.sum(d.claimed))
            .where(*self._days(device_days, under, with_stock, first, last))
            .group_by(d.day)
        )
        return {str(day): Counts(int(r), int(p), int(c)) for day, r, p, c in rows}

    async def claim_endings(
        self, under: str, *, first: str, last: str, now: datetime
    ) -> list[ClaimEnding]:
        """Claims by users of the subtree, started from day ``first`` to ``last``, that
        failed or expired, by the claimer's group, the device's model, status, proof and
        whether proven: the summary's, and the live claims whose window closed by ``now``
        (expired, as Claim.shown_status says, though no one has moved them yet)."""
        e = claim_endings_days.c
        ended = await self._conn.execute(
            select(e.group_key, e.model_key, e.status, e.proof, e.proven, func.sum(e.claims))
            .where(*self._days(claim_endings_days, under, False, first, last))
            .group_by(e.group_key, e.model_key, e.status, e.proof, e.proven)
        )
        c = claims.c
        proven = c.proven_at.is_not(None)
        live = await self._conn.execute(
            select(users.c.group_id, devices.c.model_id, c.proof, proven, func.count())
            .select_from(
                claims.join(users, users.c.id == c.user_id).join(
                    devices, devices.c.id == c.device_id
                )
            )
            .where(
                c.status.in_(_LIVE),
                c.started_at >= _start_of(first),
                c.started_at < _start_of(last) + timedelta(days=1),
                c.expires_at <= now,
                self._in_scope(users.c.group_id, under, False),
            )
            .group_by(users.c.group_id, devices.c.model_id, c.proof, proven)
        )
        counts: dict[tuple[Any, ...], int] = defaultdict(int)
        for g, m, status, proof, was_proven, n in ended:
            counts[(_key(g), _key(m), ClaimStatus(status), proof, bool(was_proven))] += int(n)
        for g, m, proof, was_proven, n in live:
            counts[(g, m, ClaimStatus.EXPIRED, proof, bool(was_proven))] += int(n)
        return [
            ClaimEnding(g, m, status, ClaimProof(proof), was_proven, n)
            for (g, m, status, proof, was_proven), n in counts.items()
            if n
        ]

    async def latest_events(self, under: str, limit: int = 20) -> list[Event]:
        """The subtree's latest events (by the path each event keeps, as the audit log).

        A busy subtree finds them among the newest RECENT_EVENTS events, read newest first
        by id (its path compared as an expression, so that no index on it is chosen: SQLite
        would read every event of the subtree through it and sort them); a quiet one, which
        has fewer there, through the index on (group_path, id)."""
        newest = (await self._conn.execute(select(func.max(events.c.id)))).scalar()
        if newest is None:
            return []
        query = select(events).order_by(events.c.id.desc()).limit(limit)
        recent = await self._conn.execute(
            query.where(
                events.c.id > newest - RECENT_EVENTS,
                subtree_clause(events.c.group_path.concat(""), under),
            )
        )
        found = [event_from_row(r) for r in recent]
        if len(found) == limit:
            return found
        rows = await self._conn.execute(query.where(subtree_clause(events.c.group_path, under)))
        return [event_from_row(r) for r in rows]


def _key(value: uuid.UUID) -> uuid.UUID | None:
    return None if value == NIL else value


def _start_of(day: str) -> datetime:
    d = date.fromisoformat(day)
    return datetime(d.year, d.month, d.day, tzinfo=UTC)
