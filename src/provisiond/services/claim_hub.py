"""Claim events to open claim pages, in this process.

A claim page subscribes to its own claim's id and receives only that claim's events
(``claim.proven``, ``claim.completed``, ``claim.failed`` …): never the device's telemetry or
state, as the reference requires. Events are published after the transaction that made them
has committed. Delivery is to the pages connected to this process; with several instances
on one PostgreSQL, a relay (integrations/pg_notify.py) carries each event to the others.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from provisiond.errors import TooManyRequests

QUEUE_MAX = 16  # a page that does not read is cut off rather than buffered without bound


class ClaimHub:
    def __init__(self) -> None:
        self._subscribers: dict[uuid.UUID, set[asyncio.Queue[dict[str, Any]]]] = {}
        self._relay: Callable[[uuid.UUID, dict[str, Any]], None] | None = None
        self._streams: Counter[uuid.UUID] = Counter()

    def hold_stream(self, user_id: uuid.UUID, limit: int) -> Callable[[], None]:
        """A place for one more open event stream of this user, given back by calling the
        result (once); TooManyRequests when the user holds ``limit`` already."""
        if self._streams[user_id] >= limit:
            raise TooManyRequests(
                f"at most {limit} event streams may be open at once "
                "(setting event_streams_per_user); close another page",
                retry_after=5,
            )
        self._streams[user_id] += 1
        held = True

        def release() -> None:
            nonlocal held
            if held:
                held = False
                self._streams[user_id] -= 1
                if not self._streams[user_id]:
                    del self._streams[user_id]

        return release

    def relay_to(self, relay: Callable[[uuid.UUID, dict[str, Any]], None] | None) -> None:
        """Also hand every published event to ``relay`` (the other instances)."""
        self._relay = relay

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
        """Hand ``event`` to every page of this claim, here and (relayed) elsewhere; how
        many pages of this process got it."""
        delivered = self.deliver(claim_id, event)
        if self._relay is not None:
            self._relay(claim_id, event)
        return delivered

    def deliver(self, claim_id: uuid.UUID, event: dict[str, Any]) -> int:
        """Hand ``event`` to this process's pages of the claim only."""
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
