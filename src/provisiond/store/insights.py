"""Read-only summaries for the admin overview (services/claims/overview.py).

The funnel reads the daily summary the triggers of migration 0020 keep (``funnel_days``,
``claim_delay_days``): a period of a year over a million devices is a few thousand summary
rows, not a million device rows. Claims that ended unclaimed are counted from ``claims``
(index ``status, started_at``: the failed and expired are a small part of all claims).

A subtree is its groups' ids; with ``with_stock``, devices of no group (the nil UUID in the
summary) count too.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from provisiond.domain.claims import LIVE, ClaimProof, ClaimStatus
from provisiond.domain.events import Event
from provisiond.domain.funnel import ClaimEnding, Counts
from provisiond.store.devices import event_from_row
from provisiond.store.directory import subtree_clause
from provisiond.store.schema import (
    claim_delay_days,
    claims,
    device_models,
    devices,
    events,
    funnel_days,
    groups,
    users,
)

#: The summary's key for "no group" and "no model".
NIL = uuid.UUID(int=0)
_ENDED = [ClaimStatus.FAILED.value, ClaimStatus.EXPIRED.value]
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

    async def funnel_by_group_and_model(
        self, under: str, *, with_stock: bool, first: str, last: str
    ) -> dict[tuple[uuid.UUID | None, uuid.UUID | None], Counts]:
        """The cohort registered from day ``first`` to ``last`` (YYYY-MM-DD, included), by
        the group each device is in now and its model (None: none)."""
        f = funnel_days.c
        rows = await self._conn.execute(
            select(
                f.group_key,
                f.model_key,
                func.sum(f.registered),
                func.sum(f.provisioned),
                func.sum(f.claimed),
            )
            .where(*self._days(funnel_days, under, with_stock, first, last))
            .group_by(f.group_key, f.model_key)
        )
        return {
            (_key(g), _key(m)): Counts(int(r), int(p), int(c))
            for g, m, r, p, c in rows
            if r or p or c
        }

    async def funnel_by_day(
        self, under: str, *, with_stock: bool, first: str, last: str
    ) -> dict[str, Counts]:
        """The same cohort, by day of registration."""
        f = funnel_days.c
        rows = await self._conn.execute(
            select(f.day, func.sum(f.registered), func.sum(f.provisioned), func.sum(f.claimed))
            .where(*self._days(funnel_days, under, with_stock, first, last))
            .group_by(f.day)
        )
        return {str(d): Counts(int(r), int(p), int(c)) for d, r, p, c in rows}

    async def claim_delays(
        self, under: str, *, with_stock: bool, first: str, last: str
    ) -> dict[uuid.UUID | None, dict[int, int]]:
        """The cohort's claimed devices by group and time-to-claim bucket."""
        d = claim_delay_days.c
        rows = await self._conn.execute(
            select(d.group_key, d.bucket, func.sum(d.claimed))
            .where(*self._days(claim_delay_days, under, with_stock, first, last))
            .group_by(d.group_key, d.bucket)
        )
        out: dict[uuid.UUID | None, dict[int, int]] = {}
        for g, bucket, n in rows:
            if n:
                out.setdefault(_key(g), {})[int(bucket)] = int(n)
        return out

    async def claim_endings(
        self, under: str, *, start: datetime, end: datetime, now: datetime
    ) -> list[ClaimEnding]:
        """Claims started in [start, end) by users of the subtree that failed or expired (a
        live claim whose window closed by ``now`` is expired, as Claim.shown_status), by the
        claimer's group, the device's model, status, proof and whether it was proven."""
        c = claims.c
        proven = c.proven_at.is_not(None)
        expired_live = c.status.in_(_LIVE) & (c.expires_at <= now)
        query = select(
            groups.c.path,
            device_models.c.name,
            c.status.in_(_LIVE).label("live"),
            c.status,
            c.proof,
            proven.label("proven"),
            func.count(),
        )
        rows = await self._conn.execute(
            query.select_from(
                claims.join(users, users.c.id == c.user_id)
                .join(groups, groups.c.id == users.c.group_id)
                .join(devices, devices.c.id == c.device_id)
                .outerjoin(device_models, device_models.c.id == devices.c.model_id)
            )
            .where(
                c.status.in_([*_ENDED, *_LIVE]),
                c.started_at >= start,
                c.started_at < end,
                or_(c.status.in_(_ENDED), expired_live),
                subtree_clause(groups.c.path, under),
            )
            .group_by(groups.c.path, device_models.c.name, c.status, c.proof, proven)
        )
        out = []
        for path, model, live, st, proof, was_proven, n in rows:
            shown = ClaimStatus.EXPIRED if live else ClaimStatus(st)
            out.append(ClaimEnding(path, model, shown, ClaimProof(proof), bool(was_proven), int(n)))
        return out

    async def latest_events(self, under: str, limit: int = 20) -> list[Event]:
        """The subtree's latest events (by the path each event keeps, as the audit log)."""
        rows = await self._conn.execute(
            select(events)
            .where(subtree_clause(events.c.group_path, under))
            .order_by(events.c.id.desc())
            .limit(limit)
        )
        return [event_from_row(r) for r in rows]


def _key(value: uuid.UUID) -> uuid.UUID | None:
    return None if value == NIL else value
