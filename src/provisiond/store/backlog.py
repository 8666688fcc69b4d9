"""What is waiting, read for the metrics at each scrape: the outbox, webhook deliveries,
devices an integration must still bring in step, The Things Stack's records and the leases.

The database's truth, the same from every instance. Each figure is one statement over an
index (COUNT with GROUP BY, or the first row by primary key) whose labels are bounded: per
webhook, per lease, per reason — never per device.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection

from provisiond.domain.webhooks import DeliveryStatus
from provisiond.store.schema import (
    events,
    leases,
    outbox,
    pending_work,
    tts_devices,
    webhook_deliveries,
    webhooks,
)

DELIVERY_STATES = ("pending", "retrying", "failed")


@dataclass(frozen=True, slots=True)
class Waiting:
    """Devices one integration (``kind``: broker, tts) must still bring in step, by why:
    ``queued`` (not tried yet), ``name_taken`` (its user name is another credential's),
    ``failed`` (tried, failed, retrying with backoff)."""

    kind: str
    reason: str
    count: int


@dataclass(frozen=True, slots=True)
class LeaseRow:
    name: str
    holder: str
    expires_at: datetime


class BacklogRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def outbox(self) -> tuple[int, datetime | None]:
        """How many events wait in the outbox, and when the oldest one happened."""
        depth = (await self._conn.execute(select(func.count()).select_from(outbox))).scalar_one()
        oldest = (
            await self._conn.execute(
                select(events.c.at)
                .select_from(outbox.join(events, events.c.id == outbox.c.event_id))
                .order_by(outbox.c.id)
                .limit(1)
            )
        ).scalar_one_or_none()
        return int(depth), oldest

    async def deliveries(
        self, of: Collection[uuid.UUID] | None = None
    ) -> dict[uuid.UUID, dict[str, int]]:
        """Per webhook (every one, or those of ``of`` only; with zeros): its deliveries
        ``pending`` (not tried yet), ``retrying`` (tried, to be tried again) and ``failed``
        (given up)."""
        hooks = select(webhooks.c.id)
        if of is not None:
            hooks = hooks.where(webhooks.c.id.in_(of))
        out: dict[uuid.UUID, dict[str, int]] = {
            r.id: dict.fromkeys(DELIVERY_STATES, 0) for r in await self._conn.execute(hooks)
        }
        if not out:
            return out
        state = case(
            (webhook_deliveries.c.status == DeliveryStatus.FAILED.value, literal("failed")),
            (webhook_deliveries.c.attempts > 0, literal("retrying")),
            else_=literal("pending"),
        ).label("state")
        counted = (
            select(webhook_deliveries.c.webhook_id, state, func.count().label("n"))
            .where(
                webhook_deliveries.c.status.in_(
                    [DeliveryStatus.PENDING.value, DeliveryStatus.FAILED.value]
                )
            )
            .group_by(webhook_deliveries.c.webhook_id, state)
        )
        if of is not None:
            counted = counted.where(webhook_deliveries.c.webhook_id.in_(of))
        for r in await self._conn.execute(counted):
            out.setdefault(r.webhook_id, dict.fromkeys(DELIVERY_STATES, 0))[r.state] = r.n
        return out

    async def waiting(self, name_taken: str) -> list[Waiting]:
        """Devices waiting in ``pending_work``, per integration and reason (``name_taken``:
        how the reason of a device whose user name another credential holds begins)."""
        reason = case(
            (pending_work.c.attempts == 0, literal("queued")),
            (
                pending_work.c.last_error.startswith(name_taken, autoescape=True),
                literal("name_taken"),
            ),
            else_=literal("failed"),
        ).label("reason")
        rows = await self._conn.execute(
            select(pending_work.c.kind, reason, func.count().label("n")).group_by(
                pending_work.c.kind, reason
            )
        )
        return [Waiting(r.kind, r.reason, int(r.n)) for r in rows]

    async def tts_records(self, statuses: Sequence[str]) -> dict[str, int]:
        """provisiond's end devices in The Things Stack of these statuses (not
        ``registered``: counting every registered device would read them all)."""
        rows = await self._conn.execute(
            select(tts_devices.c.status, func.count().label("n"))
            .where(tts_devices.c.status.in_(list(statuses)))
            .group_by(tts_devices.c.status)
        )
        return {r.status: int(r.n) for r in rows}

    async def leases(self, exclude_prefix: str) -> list[LeaseRow]:
        """Every lease but those whose names begin with ``exclude_prefix``."""
        rows = await self._conn.execute(
            select(leases)
            .where(~leases.c.name.startswith(exclude_prefix, autoescape=True))
            .order_by(leases.c.name)
        )
        return [LeaseRow(r.name, r.holder, r.expires_at) for r in rows]
