"""Webhooks (always in use: a webhook registered through the API is delivered), registered."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from provisiond.integrations.integration import Integration, Wiring
from provisiond.services.background import Loop
from provisiond.services.webhooks import WebhookDeliverer, WebhookPolicy
from provisiond.settings import Settings


def _enabled(settings: Settings) -> bool:  # noqa: ARG001
    return True


@asynccontextmanager
async def open_webhooks(c: Wiring) -> AsyncIterator[WebhookDeliverer]:
    """The deliverer, with its HTTP sender (closed after)."""
    from provisiond.integrations.webhooks.sender import HttpSender

    s = c.settings
    sender = HttpSender(s.webhooks.timeout_seconds, guard=c.webhook_guard)
    try:
        yield WebhookDeliverer(
            c.uow,
            sender,
            c.sealer,
            WebhookPolicy(s.webhooks.max_attempts, s.webhooks.disable_after, s.webhooks.log_days),
            c.now,
        )
    finally:
        await sender.close()


def _loops(deliverer: WebhookDeliverer, settings: Settings) -> list[Loop]:  # noqa: ARG001
    return [Loop("webhooks", deliverer.deliver, idle=0.25)]


WEBHOOKS: Integration[WebhookDeliverer] = Integration(
    "webhooks", enabled=_enabled, open=open_webhooks, loops=_loops
)
