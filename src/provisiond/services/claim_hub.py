"""Claim events to open claim pages, in this process.

A claim page subscribes to its own claim's id and receives only that claim's events
(``claim.proven``, ``claim.completed``, ``claim.failed`` …): never the device's telemetry or
state, as the reference requires. Events are published after the transaction that made them
has committed. Delivery is to the pages connected to this process (several instances on one
database: see docs/claiming.md).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

QUEUE_MAX = 16  # a page that does not read is cut off rather than buffered without bound


class ClaimHub:
    def __init__(self) -> None:
        self._subscribers: dict[uuid.UUID, set[asyncio.Queue[dict[str, Any]]]] = {}

    @contextmanager
    def subscribe(self, claim_id: uuid.UUID) -> Iterator[asyncio.Queue[dict[str, Any]]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_MAX)
        self._subscribers.setdefault(claim_id, set()).add(queue)
        try:
            yield queue
        finally:
            subscribers = self._subscribers.get(claim_id)
            if subscribers is not None:
                subscribers.discard(queue)
                if not subscribers:
                    del self._subscribers[claim_id]

    def publish(self, claim_id: uuid.UUID, event: dict[str, Any]) -> int:
        """Hand ``event`` to every page of this claim; returns how many got it."""
        delivered = 0
        for queue in list(self._subscribers.get(claim_id, ())):
            try:
                queue.put_nowait(event)
                delivered += 1
            except asyncio.QueueFull:
                continue
        return delivered

    @property
    def pages(self) -> int:
        return sum(len(s) for s in self._subscribers.values())
