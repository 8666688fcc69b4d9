"""The outbox dispatcher: turns queued events into the work of each integration.

A trigger on ``events`` queues every event an integration cares about in the transaction
that wrote it (store/schema.py ``OUTBOX_EVENT_TYPES``). The dispatcher reads the queue in
order and, in one transaction per batch, queues the devices whose broker accounts must
follow, queues webhook deliveries, and removes what it handled: an event is acted on once,
and none is lost across a restart.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from provisiond.domain.events import Event, EventType
from provisiond.store.uow import UnitOfWork

BROKER_EVENTS = frozenset({
    EventType.DEVICE_REGISTERED, EventType.DEVICE_PROVISIONED, EventType.DEVICE_DELETED,
    EventType.CREDENTIALS_ISSUED, EventType.CREDENTIALS_REVOKED,
})

# What else consumes the batch in the same transaction (webhook fan-out).
Consumer = Callable[[UnitOfWork, Sequence[Event]], Awaitable[None]]


class Dispatcher:
    def __init__(self, uow: Callable[[], UnitOfWork], *, broker: bool,
                 consumers: Sequence[Consumer] = ()) -> None:
        self._uow = uow
        self._broker = broker
        self._consumers = list(consumers)

    async def dispatch(self, limit: int = 1000) -> int:
        """Handle up to ``limit`` queued events; how many there were."""
        async with self._uow() as uow:
            entries = await uow.outbox.take(limit)
            if not entries:
                return 0
            batch = [event for _, event in entries if event is not None]
            if self._broker:
                await uow.broker.mark_pending(
                    e.device_id for e in batch
                    if e.type in BROKER_EVENTS and e.device_id is not None)
                for e in batch:
                    if e.type is EventType.DEVICES_IMPORTED:
                        await uow.broker.mark_imported(e.id)
            for consume in self._consumers:
                await consume(uow, batch)
            await uow.outbox.remove([outbox_id for outbox_id, _ in entries])
            await uow.commit()
        return len(entries)
