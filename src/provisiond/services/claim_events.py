"""The events a claim's page follows live: its state, then what happens to it.

Only the claim's own events (services/claim_hub.py), never the device's telemetry; the page
renders them (web/pages/claim.py sends them as server-sent events).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator, Callable
from datetime import datetime
from typing import Any

from provisiond.domain.claims import ClaimStatus
from provisiond.services.claim_hub import ClaimHub
from provisiond.store.uow import UnitOfWork

FINAL_EVENTS = ("completed", "failed", "cancelled")

#: One event: its name and data; None when nothing happened for a while (a keep-alive).
ClaimEvent = tuple[str, dict[str, Any]] | None


async def follow_claim(
    uow: UnitOfWork,
    hub: ClaimHub,
    *,
    claim_id: uuid.UUID,
    keepalive_seconds: float,
    clock: Callable[[], datetime],
) -> AsyncGenerator[ClaimEvent, None]:
    """``state`` first (status and seconds left, by the server's clock), then ``proven``,
    ``completed``, ``failed``, ``cancelled`` or ``expired`` as they happen, and None after
    ``keepalive_seconds`` without one; ends after the last event (nothing if no such claim).
    The caller checks the claim is the user's."""
    with hub.subscribe(claim_id) as queue:
        # subscribed first, then read: an event between the two is not missed
        async with uow.read():
            claim = await uow.claims.find(claim_id)
        if claim is None:
            return
        now = clock()
        status = claim.shown_status(now)
        yield "state", {"status": status.value, "seconds_left": claim.seconds_left(now)}
        if status not in (ClaimStatus.OPEN, ClaimStatus.PROVEN):
            return
        while True:
            left = (claim.expires_at - clock()).total_seconds()
            if left <= 0:
                yield "expired", {}
                return
            try:
                event = await asyncio.wait_for(queue.get(), timeout=min(keepalive_seconds, left))
            except TimeoutError:
                yield None
                continue
            yield str(event["event"]), event
            if event["event"] in FINAL_EVENTS:
                return
