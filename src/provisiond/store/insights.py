"""Read-only summaries for the admin overview (services/claims/overview.py).

The overview reads the daily summaries the triggers of migration 0020 keep: ``device_days``
(per day and group: the cohort, its time-to-claim buckets, failed and expired claims by
reason) and ``funnel_days`` (the same per model). A period of a year over a million devices
is some thousands of summary rows, not a million device rows. Live claims whose window
closed are counted from ``claims`` (index ``status, started_at``).

A subtree is its groups' ids; with ``with_stock``, devices of no group (the nil UUID in the
summaries) count too.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncConnection

from provisiond.domain.claims import LIVE, ClaimProof, ClaimStatus
from provisiond.domain.events import Event
from provisiond.domain.funnel import ClaimEnding, Counts, GroupFigures, ModelFigures
from provisiond.store.devices import event_from_row
from provisiond.store.directory import subtree_clause
from provisiond.store.schema import (
    DELAY_BUCKETS,
    REASON_COLUMNS,
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
    def _in_scope(key: Any, under: str | None, with_stock: bool) -> Any:
        """``key`` (a group id, NIL: none) within the subtree ``under`` (None: every group),
        and NIL too ``with_stock``."""
        if under is None:
            return true() if with_stock else key != NIL
        in_subtree = key.in_(select(groups.c.id).where(subtree_clause(groups.c.path, under)))
        return or_(in_subtree, key == NIL) if with_stock else in_subtree

    def _days(self, table: Any, under: str | None, with_stock: bool, first: str, last: str) -> Any:
        return (
            table.c.day >= first,
            table.c.day <= last,
            self._in_scope(table.c.group_key, under, with_stock),
        )

    async def funnel_by_group(
        self, under: str | None, *, with_stock: bool, first: str, last: str
    ) -> dict[uuid.UUID | None, GroupFigures]:
        """From day ``first`` to ``last`` (YYYY-MM-DD, included), by group (None: none): the
        cohort registered then that is in the group now, its claimed devices by time-to-claim
        bucket, and the claims its people started then that failed or expired, by reason."""
        d = device_days.c
        columns = [
            d.registered,
            d.provisioned,
            d.claimed,
            *(d[f"b{i}"] for i in range(DELAY_BUCKETS)),
            *(d[r] for r in REASON_COLUMNS),
        ]
        rows = await self._conn.execute(
            select(d.group_key, *(func.sum(c) for c in columns))
            .where(*self._days(device_days, under, with_stock, first, last))
            .group_by(d.group_key)
        )
        out: dict[uuid.UUID | None, GroupFigures] = {}
        for g, r, p, c, *rest in rows:
            buckets, reasons = rest[:DELAY_BUCKETS], rest[DELAY_BUCKETS:]
            out[_key(g)] = GroupFigures(
                Counts(int(r), int(p), int(c)),
                {i: int(n) for i, n in enumerate(buckets) if n},
                {k: int(n) for k, n in zip(REASON_COLUMNS, reasons, strict=True) if n},
            )
        return out

    async def funnel_by_model(
        self, under: str | None, *, with_stock: bool, first: str, last: str
    ) -> dict[uuid.UUID | None, ModelFigures]:
        """The same by model (None: none): the cohort, and the claims failed and expired."""
        f = funnel_days.c
        columns = (f.registered, f.provisioned, f.claimed, f.failed, f.expired)
        rows = await self._conn.execute(
            select(f.model_key, *(func.sum(c) for c in columns))
            .where(*self._days(funnel_days, under, with_stock, first, last))
            .group_by(f.model_key)
        )
        return {
            _key(m): ModelFigures(Counts(int(r), int(p), int(c)), int(fa), int(ex))
            for m, r, p, c, fa, ex in rows
        }

    async def funnel_by_day(
        self, under: str | None, *, with_stock: bool, first: str, last: str
    ) -> dict[str, Counts]:
        """The cohort by day of registration."""
        d = device_days.c
        rows = await self._conn.execute(
            select(d.day, func.sum(d.registered), func.sum(d.provisioned), func.sum(d.claimed))
            .where(*self._days(device_days, under, with_stock, first, last))
            .group_by(d.day)
        )
        return {str(day): Counts(int(r), int(p), int(c)) for day, r, p, c in rows}

    async def lapsed_claims(
        self, under: str | None, *, first: str, last: str, now: datetime
    ) -> list[ClaimEnding]:
        """Live claims started from day ``first`` to ``last`` by people of the subtree whose
        window closed by ``now``: expired, as Claim.shown_status says, though nobody has
        moved them yet (the summaries count them once they are)."""
        c = claims.c
        proven = c.proven_at.is_not(None)
        rows = await self._conn.execute(
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
        return [
            ClaimEnding(g, m, ClaimStatus.EXPIRED, ClaimProof(proof), bool(was_proven), int(n))
            for g, m, proof, was_proven, n in rows
        ]

    async def latest_events(self, under: str | None, limit: int = 20) -> list[Event]:
        """The subtree's latest events (by the path each event keeps, as the audit log;
        ``under`` None: every event).

        A busy subtree finds them among the newest RECENT_EVENTS events, read newest first
        by id (its path compared as an expression, so that no index on it is chosen: SQLite
        would read every event of the subtree through it and sort them); a quiet one, which
        has fewer there, through the index on (group_path, id)."""
        newest = (await self._conn.execute(select(func.max(events.c.id)))).scalar()
        if newest is None:
            return []
        query = select(events).order_by(events.c.id.desc()).limit(limit)
        if under is None:
            return [event_from_row(r) for r in await self._conn.execute(query)]
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
