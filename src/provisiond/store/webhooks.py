"""Webhooks and their deliveries (the persisted outbox of HTTP calls)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from provisiond.domain.events import EventType
from provisiond.domain.webhooks import Delivery, DeliveryStatus, Webhook
from provisiond.store.directory import keyset, subtree_clause
from provisiond.store.schema import devices, groups, webhook_deliveries, webhooks

_COLUMNS = (webhooks, groups.c.path.label("group_path"))


def _webhook(row: Any) -> Webhook:
    return Webhook(
        row.id,
        row.group_id,
        row.group_path,
        row.url,
        tuple(EventType(e) for e in row.event_types),
        row.enabled,
        row.disabled_reason,
        row.consecutive_failures,
        row.created_at,
    )


def _delivery(row: Any) -> Delivery:
    return Delivery(
        row.id,
        row.webhook_id,
        row.event_id,
        row.event_type,
        DeliveryStatus(row.status),
        row.attempts,
        row.next_attempt_at,
        row.last_status_code,
        row.last_error,
        row.created_at,
        row.finished_at,
    )


class WebhookRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    def _select(self) -> Any:
        return select(*_COLUMNS).select_from(  # no group: operator-wide
            webhooks.outerjoin(groups, groups.c.id == webhooks.c.group_id)
        )

    async def add(self, webhook: Webhook, secret_sealed: str) -> None:
        await self._conn.execute(
            insert(webhooks).values(
                id=webhook.id,
                group_id=webhook.group_id,
                url=webhook.url,
                secret_sealed=secret_sealed,
                event_types=[e.value for e in webhook.events],
                enabled=webhook.enabled,
                consecutive_failures=0,
                created_at=webhook.created_at,
            )
        )

    async def find(self, webhook_id: uuid.UUID) -> Webhook | None:
        row = (await self._conn.execute(self._select().where(webhooks.c.id == webhook_id))).first()
        return _webhook(row) if row else None

    async def in_subtree(
        self, under: str | None = None, *, after: uuid.UUID | None = None, limit: int | None = None
    ) -> list[Webhook]:
        """Webhooks in id (creation) order: all, or one subtree's; after the id ``after``;
        ``limit`` of them."""
        query = keyset(self._select(), webhooks.c.id, after, limit)
        if under is not None:
            query = query.where(subtree_clause(groups.c.path, under))
        return [_webhook(r) for r in await self._conn.execute(query)]

    async def all(self) -> list[Webhook]:
        """Every webhook, operator-wide ones (no group) included."""
        return [_webhook(r) for r in await self._conn.execute(self._select())]

    async def secrets(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
        rows = await self._conn.execute(
            select(webhooks.c.id, webhooks.c.secret_sealed).where(webhooks.c.id.in_(list(ids)))
        )
        return {r.id: r.secret_sealed for r in rows}

    async def delete(self, webhook_id: uuid.UUID) -> None:
        await self._conn.execute(delete(webhooks).where(webhooks.c.id == webhook_id))

    async def set_enabled(self, webhook_id: uuid.UUID, enabled: bool, reason: str | None) -> None:
        values: dict[str, Any] = {"enabled": enabled, "disabled_reason": reason}
        if enabled:
            values["consecutive_failures"] = 0
        await self._conn.execute(
            update(webhooks).where(webhooks.c.id == webhook_id).values(**values)
        )

    async def record_outcomes(
        self,
        webhook_id: uuid.UUID,
        *,
        delivered: int,
        failed: int,
        disable_after: int,
        last_error: str | None,
    ) -> bool:
        """Count a batch's outcomes in order of effect (a success resets the count of
        failures in a row); disable at ``disable_after``. Whether it was disabled now."""
        if delivered:
            await self._conn.execute(
                update(webhooks)
                .where(webhooks.c.id == webhook_id)
                .values(consecutive_failures=failed)
            )
        elif failed:
            await self._conn.execute(
                update(webhooks)
                .where(webhooks.c.id == webhook_id)
                .values(consecutive_failures=webhooks.c.consecutive_failures + failed)
            )
        row = (
            await self._conn.execute(
                select(webhooks.c.consecutive_failures, webhooks.c.enabled).where(
                    webhooks.c.id == webhook_id
                )
            )
        ).first()
        if row is None or not row.enabled or row.consecutive_failures < disable_after:
            return False
        await self.set_enabled(
            webhook_id,
            False,
            f"disabled after {row.consecutive_failures} failed deliveries "
            f"in a row; last: {last_error}"[:500],
        )
        return True

    # ------------------------------------------------------------------ deliveries

    async def enqueue(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            await self._conn.execute(insert(webhook_deliveries), list(rows))

    async def imported_devices(
        self, event_id: int, after: uuid.UUID | None, limit: int
    ) -> list[Any]:
        """A page of the devices a bulk import registered, with their group path."""
        query = (
            select(
                devices.c.id,
                devices.c.serial,
                devices.c.name,
                devices.c.state,
                devices.c.group_id,
                groups.c.path.label("group_path"),
            )
            .select_from(devices.outerjoin(groups, groups.c.id == devices.c.group_id))
            .where(devices.c.registered_event_id == event_id)
            .order_by(devices.c.id)
            .limit(limit)
        )
        if after is not None:
            query = query.where(devices.c.id > after)
        return list(await self._conn.execute(query))

    async def due(self, now: datetime, limit: int) -> list[tuple[Delivery, str, Any]]:
        """Pending deliveries of enabled webhooks whose time has come: (delivery, url, body)."""
        rows = await self._conn.execute(
            select(webhook_deliveries, webhooks.c.url)
            .select_from(
                webhook_deliveries.join(webhooks, webhooks.c.id == webhook_deliveries.c.webhook_id)
            )
            .where(
                webhook_deliveries.c.status == DeliveryStatus.PENDING.value,
                webhooks.c.enabled.is_(True),
                or_(
                    webhook_deliveries.c.next_attempt_at.is_(None),
                    webhook_deliveries.c.next_attempt_at <= now,
                ),
            )
            .order_by(webhook_deliveries.c.id)
            .limit(limit)
        )
        return [(_delivery(r), r.url, r.body) for r in rows]

    async def delivered(self, ids: Sequence[int], status_code: int, now: datetime) -> None:
        if ids:
            await self._conn.execute(
                update(webhook_deliveries)
                .where(webhook_deliveries.c.id.in_(list(ids)))
                .values(
                    status=DeliveryStatus.DELIVERED.value,
                    attempts=webhook_deliveries.c.attempts + 1,
                    last_status_code=status_code,
                    last_error=None,
                    finished_at=now,
                    next_attempt_at=None,
                )
            )

    async def attempt_failed(
        self,
        delivery_id: int,
        *,
        status_code: int | None,
        error: str,
        next_attempt_at: datetime | None,
        now: datetime,
    ) -> None:
        """Count a failed attempt; ``next_attempt_at`` None: no attempt is left."""
        values: dict[str, Any] = {
            "attempts": webhook_deliveries.c.attempts + 1,
            "last_status_code": status_code,
            "last_error": error[:500],
            "next_attempt_at": next_attempt_at,
        }
        if next_attempt_at is None:
            values |= {"status": DeliveryStatus.FAILED.value, "finished_at": now}
        await self._conn.execute(
            update(webhook_deliveries)
            .where(webhook_deliveries.c.id == delivery_id)
            .values(**values)
        )

    async def deliveries(
        self,
        webhook_id: uuid.UUID,
        *,
        status: DeliveryStatus | None,
        before: int | None,
        limit: int,
    ) -> list[Delivery]:
        query = (
            select(webhook_deliveries)
            .where(webhook_deliveries.c.webhook_id == webhook_id)
            .order_by(webhook_deliveries.c.id.desc())
            .limit(limit)
        )
        if status is not None:
            query = query.where(webhook_deliveries.c.status == status.value)
        if before is not None:
            query = query.where(webhook_deliveries.c.id < before)
        return [_delivery(r) for r in await self._conn.execute(query)]

    async def find_delivery(self, delivery_id: int) -> Delivery | None:
        row = (
            await self._conn.execute(
                select(webhook_deliveries).where(webhook_deliveries.c.id == delivery_id)
            )
        ).first()
        return _delivery(row) if row else None

    async def requeue_failed(
        self,
        webhook_id: uuid.UUID,
        *,
        delivery_id: int | None = None,
        since: datetime | None = None,
    ) -> int:
        """Make the webhook's failed deliveries (that one; those created at or after
        ``since``) pending again, due now, with every attempt ahead of them; how many. One
        statement, conditional on the status: one still pending is never queued twice."""
        query = (
            update(webhook_deliveries)
            .where(
                webhook_deliveries.c.webhook_id == webhook_id,
                webhook_deliveries.c.status == DeliveryStatus.FAILED.value,
            )
            .values(
                status=DeliveryStatus.PENDING.value,
                attempts=0,
                next_attempt_at=None,
                finished_at=None,
            )
        )
        if delivery_id is not None:
            query = query.where(webhook_deliveries.c.id == delivery_id)
        if since is not None:
            query = query.where(webhook_deliveries.c.created_at >= since)
        return int((await self._conn.execute(query)).rowcount or 0)

    async def counts(self, webhook_id: uuid.UUID) -> dict[str, int]:
        rows = await self._conn.execute(
            select(webhook_deliveries.c.status, func.count())
            .where(webhook_deliveries.c.webhook_id == webhook_id)
            .group_by(webhook_deliveries.c.status)
        )
        return {r[0]: int(r[1]) for r in rows}

    async def prune(self, finished_before: datetime) -> int:
        """Forget finished deliveries older than the log keeps."""
        result = await self._conn.execute(
            delete(webhook_deliveries).where(
                webhook_deliveries.c.status != DeliveryStatus.PENDING.value,
                webhook_deliveries.c.finished_at < finished_before,
            )
        )
        return int(result.rowcount or 0)
