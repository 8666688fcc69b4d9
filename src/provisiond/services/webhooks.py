"""Webhooks: manage a group's subscriptions, fan events out to deliveries, deliver them.

Fan-out runs in the outbox dispatcher's transaction (services/outbox.py): every event a
webhook subscribes to becomes a pending delivery row in the same commit that takes the
event off the outbox, so none is lost across a restart. The deliverer POSTs due deliveries
concurrently, signs each (domain/webhooks.py), and records every attempt: 2xx delivers;
anything else is retried with exponential backoff until ``webhooks__max_attempts``; after
``webhooks__disable_after`` failures in a row the webhook is disabled with the reason, its
pending deliveries kept for when it is enabled again.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import orjson

from provisiond.domain.events import Event, EventType, NewEvent
from provisiond.domain.groups import parse_group_path
from provisiond.domain.limits import PAGE_SIZE_DEFAULT
from provisiond.domain.scope import Scope
from provisiond.domain.users import Role
from provisiond.domain.webhooks import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    Delivery,
    DeliveryStatus,
    Webhook,
    WebhookSpec,
    backoff,
    parse_events,
    parse_url,
    receives,
    sign,
)
from provisiond.errors import Forbidden, InvalidCursor, InvalidInput, Problem, WebhookNotFound
from provisiond.services.destinations import DestinationGuard
from provisiond.services.ids import new_id
from provisiond.services.paging import Page, page_of, start
from provisiond.services.scoping import group_in_scope, require
from provisiond.services.sealing import Sealer
from provisiond.store.uow import UnitOfWork

CONCURRENCY = 64  # deliveries in flight at once
IMPORT_PAGE = 5000


class SendFailed(Exception):
    """The receiver could not be reached, or did not answer in time."""


class Sender(Protocol):
    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        """POST and return the status code, or raise :class:`SendFailed` with a message
        that names a class of failure only ("no answer in time"), never what the socket
        met: the delivery log must not tell a port that refused from one that answered
        something else. Connect only to addresses a :class:`DestinationGuard` returned,
        and follow no redirect."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class WebhookPolicy:
    max_attempts: int = 12
    disable_after: int = 50
    log_days: int = 14


# ------------------------------------------------------------------------ management


def parse_webhook_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text.strip())
    except ValueError:
        raise InvalidInput(
            f"{text!r} is not a webhook id",
            problems=[Problem("is not a webhook id (a UUID)", "id")],
        ) from None


async def create_webhook(
    uow: UnitOfWork,
    *,
    scope: Scope,
    spec: WebhookSpec,
    actor: str,
    now: datetime,
    sealer: Sealer,
    guard: DestinationGuard,
) -> tuple[Webhook, str]:
    """A new webhook for a group of the caller's subtree, and its signing secret (shown
    once, kept sealed). ``spec.group`` None: an operator-wide webhook (every event, those
    of no group too), which only an operator-wide ``scope`` may create. ``guard`` refuses a
    URL that is not a public destination (deliveries check it again)."""
    if spec.group is None and not scope.operator_wide:
        raise Forbidden(
            "only an operator-wide caller may create an operator-wide webhook; give a group"
        )
    path = parse_group_path(spec.group) if spec.group is not None else None
    clean_url = parse_url(spec.url)
    types = parse_events(spec.events)
    require(scope, Role.ADMIN, "creating webhooks")
    await guard.check_url(clean_url)
    secret = "whsec_" + secrets.token_urlsafe(32)
    async with uow:
        found = await group_in_scope(uow, scope, path) if path is not None else None
        webhook = Webhook(
            new_id(), found.id if found else None, path, clean_url, types, True, None, 0, now
        )
        await uow.webhooks.add(webhook, sealer.seal(secret))
        await uow.events.add(
            NewEvent(
                EventType.WEBHOOK_CREATED,
                now,
                actor,
                group_id=webhook.group_id,
                group_path=path,
                data={
                    "webhook_id": str(webhook.id),
                    "url": clean_url,
                    "events": [t.value for t in types],
                },
            )
        )
        await uow.commit()
    return webhook, secret


async def find_webhook(uow: UnitOfWork, webhook_id: uuid.UUID, scope: Scope) -> Webhook:
    """The webhook; WebhookNotFound, in the same words, also when it is outside ``scope``."""
    webhook = await uow.webhooks.find(webhook_id)
    if webhook is None or not scope.covers(webhook.group_path):
        raise WebhookNotFound(f"no webhook {webhook_id}", id=str(webhook_id))
    return webhook


def _webhook_cursor(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise InvalidCursor(
            "the page cursor is not one provisiond gave out",
            problems=[Problem("is not a cursor from a previous page", "cursor")],
        ) from None


async def list_webhooks(
    uow: UnitOfWork,
    *,
    scope: Scope,
    group: str | None = None,
    cursor: str | None = None,
    limit: int = PAGE_SIZE_DEFAULT,
) -> Page[Webhook]:
    """A page of the webhooks of the caller's subtree (or of ``group``'s), oldest first."""
    after = start(cursor, limit)
    async with uow.read():
        subtree = (
            (await group_in_scope(uow, scope, parse_group_path(group))).path
            if group
            else scope.group_path
        )
        hooks = await uow.webhooks.in_subtree(
            subtree, after=_webhook_cursor(after) if after else None, limit=limit + 1
        )
    return page_of(hooks, limit, lambda w: str(w.id))


async def get_webhook(
    uow: UnitOfWork, *, scope: Scope, webhook_id: uuid.UUID
) -> tuple[Webhook, dict[str, int]]:
    async with uow.read():
        webhook = await find_webhook(uow, webhook_id, scope)
        return webhook, await uow.webhooks.counts(webhook_id)


async def set_webhook_enabled(
    uow: UnitOfWork,
    *,
    scope: Scope,
    webhook_id: uuid.UUID,
    enabled: bool,
    actor: str,
    now: datetime,
) -> Webhook:
    require(scope, Role.ADMIN, "enabling and disabling webhooks")
    async with uow:
        webhook = await find_webhook(uow, webhook_id, scope)
        await uow.webhooks.set_enabled(
            webhook_id, enabled, None if enabled else f"disabled by {actor}"
        )
        await uow.events.add(
            NewEvent(
                EventType.WEBHOOK_ENABLED if enabled else EventType.WEBHOOK_DISABLED,
                now,
                actor,
                group_id=webhook.group_id,
                group_path=webhook.group_path,
                data={"webhook_id": str(webhook_id)},
            )
        )
        await uow.commit()
        return await find_webhook(uow, webhook_id, scope)


async def delete_webhook(
    uow: UnitOfWork, *, scope: Scope, webhook_id: uuid.UUID, actor: str, now: datetime
) -> Webhook:
    require(scope, Role.ADMIN, "deleting webhooks")
    async with uow:
        webhook = await find_webhook(uow, webhook_id, scope)
        await uow.webhooks.delete(webhook_id)
        await uow.events.add(
            NewEvent(
                EventType.WEBHOOK_DELETED,
                now,
                actor,
                group_id=webhook.group_id,
                group_path=webhook.group_path,
                data={"webhook_id": str(webhook_id), "url": webhook.url},
            )
        )
        await uow.commit()
    return webhook


async def list_deliveries(
    uow: UnitOfWork,
    *,
    scope: Scope,
    webhook_id: uuid.UUID,
    status: str | None = None,
    before: int | None = None,
    limit: int = 50,
) -> list[Delivery]:
    """The webhook's delivery log, newest first."""
    try:
        wanted = DeliveryStatus(status) if status else None
    except ValueError:
        raise InvalidInput(
            f"status {status!r}: pending, delivered or failed",
            problems=[Problem("pending, delivered or failed", "status")],
        ) from None
    async with uow.read():
        await find_webhook(uow, webhook_id, scope)
        return await uow.webhooks.deliveries(webhook_id, status=wanted, before=before, limit=limit)


# --------------------------------------------------------------------------- fan-out


def event_body(
    event_id: int,
    event_type: str,
    at: datetime,
    actor: str,
    device: dict[str, Any] | None,
    group: str | None,
    data: dict[str, Any],
) -> dict[str, Any]:
    """What a receiver gets (docs/webhooks.md)."""
    return {
        "event_id": event_id,
        "type": event_type,
        "at": at.isoformat(),
        "actor": actor,
        "device": device,
        "group": group,
        "data": data,
    }


async def fan_out(uow: UnitOfWork, events: Sequence[Event]) -> None:
    """Queue a delivery per webhook for each event it receives (the dispatcher's consumer):
    a webhook receives the events of its subtree; an event of no group reaches only
    operator-wide webhooks. An event's subtree is the one it was stored with. A webhook
    receives what happened from its creation on, never the backlog queued before it."""
    hooks = await uow.webhooks.all()
    if not hooks:
        return
    rows: list[dict[str, Any]] = []

    def add(
        event_type: EventType,
        group_path: str | None,
        body: dict[str, Any],
        event_id: int,
        at: datetime,
    ) -> None:
        for webhook in hooks:
            if (
                event_type in webhook.events
                and webhook.created_at <= at
                and receives(webhook.group_path, group_path)
            ):
                rows.append(
                    {
                        "webhook_id": webhook.id,
                        "event_id": event_id,
                        "event_type": event_type.value,
                        "body": body,
                        "status": DeliveryStatus.PENDING.value,
                        "attempts": 0,
                        "created_at": at,
                    }
                )

    for e in events:
        if e.type is EventType.DEVICES_IMPORTED:
            if not any(EventType.DEVICE_REGISTERED in w.events for w in hooks):
                continue
            after: uuid.UUID | None = None
            while page := await uow.webhooks.imported_devices(e.id, after, IMPORT_PAGE):
                for d in page:
                    registered = {
                        "id": str(d.id),
                        "serial": d.serial,
                        "name": d.name,
                        "state": d.state,
                    }
                    add(
                        EventType.DEVICE_REGISTERED,
                        d.group_path,
                        event_body(
                            e.id,
                            EventType.DEVICE_REGISTERED.value,
                            e.at,
                            e.actor,
                            registered,
                            d.group_path,
                            {"import": e.data.get("source")},
                        ),
                        e.id,
                        e.at,
                    )
                after = page[-1].id
                await uow.webhooks.enqueue(rows)
                rows.clear()
            continue
        device = {"id": str(e.device_id), "serial": e.serial} if e.device_id is not None else None
        add(
            e.type,
            e.group_path,
            event_body(e.id, e.type.value, e.at, e.actor, device, e.group_path, e.data),
            e.id,
            e.at,
        )
    await uow.webhooks.enqueue(rows)


# -------------------------------------------------------------------------- delivery


class WebhookDeliverer:
    def __init__(
        self,
        uow: Callable[[], UnitOfWork],
        sender: Sender,
        sealer: Sealer,
        policy: WebhookPolicy,
        clock: Callable[[], datetime],
    ) -> None:
        self._uow = uow
        self._sender = sender
        self._sealer = sealer
        self._policy = policy
        self._clock = clock
        self._secrets: dict[uuid.UUID, str] = {}
        self._pruned_at: datetime | None = None

    async def _secret_of(self, uow: UnitOfWork, ids: set[uuid.UUID]) -> None:
        missing = [i for i in ids if i not in self._secrets]
        if missing:
            for webhook_id, sealed in (await uow.webhooks.secrets(missing)).items():
                self._secrets[webhook_id] = self._sealer.unseal(sealed)

    async def deliver(self, limit: int = 500) -> int:
        """Attempt up to ``limit`` due deliveries; how many were attempted."""
        now = self._clock()
        async with self._uow().read() as uow:
            due = await uow.webhooks.due(now, limit)
            await self._secret_of(uow, {d.webhook_id for d, _, _ in due})
        if not due:
            await self._prune(now)
            return 0
        gate = asyncio.Semaphore(CONCURRENCY)

        async def attempt(
            delivery: Delivery, url: str, body: Any
        ) -> tuple[Delivery, int | None, str | None]:
            payload = orjson.dumps(body)
            headers = {
                "Content-Type": "application/json",
                EVENT_HEADER: delivery.event_type,
                DELIVERY_HEADER: str(delivery.id),
                SIGNATURE_HEADER: sign(
                    self._secrets.get(delivery.webhook_id, ""), int(time.time()), payload
                ),
            }
            async with gate:
                try:
                    code = await self._sender.post(url, payload, headers)
                except SendFailed as err:
                    return delivery, None, str(err)
            if 200 <= code < 300:
                return delivery, code, None
            return delivery, code, f"the receiver answered {code}"

        outcomes = await asyncio.gather(*(attempt(d, u, b) for d, u, b in due))
        await self._record(outcomes)
        return len(due)

    async def _record(self, outcomes: list[tuple[Delivery, int | None, str | None]]) -> None:
        now = self._clock()
        by_code: dict[int, list[int]] = {}
        per_hook: dict[uuid.UUID, list[str | None]] = {}
        async with self._uow() as uow:
            for delivery, code, error in outcomes:
                per_hook.setdefault(delivery.webhook_id, []).append(error)
                if error is None and code is not None:
                    by_code.setdefault(code, []).append(delivery.id)
                    continue
                tries = delivery.attempts + 1
                retry = now + backoff(tries) if tries < self._policy.max_attempts else None
                await uow.webhooks.attempt_failed(
                    delivery.id,
                    status_code=code,
                    error=error or "failed",
                    next_attempt_at=retry,
                    now=now,
                )
            for code, ids in by_code.items():
                await uow.webhooks.delivered(ids, code, now)
            for webhook_id, errors in per_hook.items():
                # failures after the last success are the ones "in a row"
                tail = 0
                for error in reversed(errors):
                    if error is None:
                        break
                    tail += 1
                delivered = sum(e is None for e in errors)
                disabled = await uow.webhooks.record_outcomes(
                    webhook_id,
                    delivered=delivered,
                    failed=tail,
                    disable_after=self._policy.disable_after,
                    last_error=next((e for e in reversed(errors) if e), None),
                )
                if disabled:
                    webhook = await uow.webhooks.find(webhook_id)
                    await uow.events.add(
                        NewEvent(
                            EventType.WEBHOOK_DISABLED,
                            now,
                            "provisiond",
                            group_id=webhook.group_id if webhook else None,
                            group_path=webhook.group_path if webhook else None,
                            data={
                                "webhook_id": str(webhook_id),
                                "reason": webhook.disabled_reason if webhook else None,
                            },
                        )
                    )
            await uow.commit()

    async def _prune(self, now: datetime) -> None:
        if self._pruned_at is not None and now - self._pruned_at < timedelta(hours=1):
            return
        self._pruned_at = now
        async with self._uow() as uow:
            await uow.webhooks.prune(now - timedelta(days=self._policy.log_days))
            await uow.commit()
