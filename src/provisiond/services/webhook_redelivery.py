"""Sending failed webhook deliveries again: one by id, or every failed one of a webhook (or
of every webhook of the caller's subtree), optionally only those created since a time.

A delivery that gave up (``failed``: every attempt used) is made ``pending`` again, due at
once, with all of ``webhooks__max_attempts`` ahead of it; the deliverer sends it as it sends
any, to the webhook's URL with a fresh signature and the same body and delivery id. A
delivery still pending (waiting for its next attempt) is left as it is, so asking twice never
sends one twice; a delivered one is not sent again. A disabled webhook's redelivered
deliveries go out when it is enabled. Each webhook whose deliveries were queued gets a
``webhook.redelivered`` event in the same transaction.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from provisiond.domain.events import EventType, NewEvent
from provisiond.domain.scope import Scope
from provisiond.domain.users import Role
from provisiond.domain.webhooks import DeliveryStatus, Webhook
from provisiond.errors import DeliveryDelivered, DeliveryNotFound, InvalidInput, Problem
from provisiond.services.scoping import require
from provisiond.services.webhooks import find_webhook
from provisiond.store.uow import UnitOfWork


def parse_delivery_id(text: str) -> int:
    """A delivery's id (a positive whole number, as the delivery log shows it)."""
    value = text.strip()
    if not value.isdigit() or int(value) < 1:
        problem = Problem("is not a delivery id (a whole number from the delivery log)", "id")
        raise InvalidInput(f"{text!r} {problem.message}", problems=[problem])
    return int(value)


async def redeliver_delivery(
    uow: UnitOfWork, *, scope: Scope, delivery_id: int, actor: str, now: datetime
) -> int:
    """Queue the failed delivery ``delivery_id`` again: 1; 0 when it is still pending.
    DeliveryNotFound, in the same words, when it is not there or its webhook is outside
    ``scope``; DeliveryDelivered when it was delivered."""
    require(scope, Role.ADMIN, "redelivering webhook deliveries")
    async with uow:
        delivery = await uow.webhooks.find_delivery(delivery_id)
        webhook = await uow.webhooks.find(delivery.webhook_id) if delivery else None
        if delivery is None or webhook is None or not scope.covers(webhook.group_path):
            raise DeliveryNotFound(f"no delivery {delivery_id}", id=str(delivery_id))
        if delivery.status is DeliveryStatus.DELIVERED:
            raise DeliveryDelivered(
                f"delivery {delivery_id} was delivered ({delivery.last_status_code}): "
                "only failed deliveries are sent again",
                id=str(delivery_id),
            )
        queued = await uow.webhooks.requeue_failed(webhook.id, delivery_id=delivery_id)
        if queued:
            await _event(uow, webhook, queued, actor, now, delivery_id=delivery_id)
        await uow.commit()
    return queued


async def redeliver_failed(
    uow: UnitOfWork,
    *,
    scope: Scope,
    webhook_id: uuid.UUID | None,
    since: datetime | None,
    actor: str,
    now: datetime,
) -> int:
    """Queue again every failed delivery of ``webhook_id`` (None: of every webhook of the
    caller's subtree) created at or after ``since`` (None: any); how many. WebhookNotFound
    when ``webhook_id`` is not there or outside ``scope``."""
    require(scope, Role.ADMIN, "redelivering webhook deliveries")
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)  # a time without a zone is UTC, as everywhere
    total = 0
    async with uow:
        if webhook_id is not None:
            hooks = [await find_webhook(uow, webhook_id, scope)]
        else:
            hooks = await uow.webhooks.in_subtree(scope.group_path)
        for webhook in hooks:
            queued = await uow.webhooks.requeue_failed(webhook.id, since=since)
            if queued:
                await _event(uow, webhook, queued, actor, now, since=since)
            total += queued
        await uow.commit()
    return total


async def _event(
    uow: UnitOfWork,
    webhook: Webhook,
    queued: int,
    actor: str,
    now: datetime,
    *,
    delivery_id: int | None = None,
    since: datetime | None = None,
) -> None:
    await uow.events.add(
        NewEvent(
            EventType.WEBHOOK_REDELIVERED,
            now,
            actor,
            group_id=webhook.group_id,
            group_path=webhook.group_path,
            data={
                "webhook_id": str(webhook.id),
                "delivery_id": delivery_id,
                "since": since.isoformat() if since else None,
                "queued": queued,
            },
        )
    )
