"""The outbox dispatcher: turns queued events into the work of each integration.

A trigger on ``events`` queues every event an integration cares about in the transaction
that wrote it (store/schema.py ``OUTBOX_EVENT_TYPES``). The dispatcher reads the queue in
order and, in one write transaction per batch, removes what it handles, queues the devices
whose broker accounts must follow and queues webhook deliveries: an event is acted on once,
and none is lost across a restart.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from provisiond.domain.events import Event, EventType
from provisiond.store.uow import UnitOfWork

# The events after which an integration must look at the device again, by integration.
BROKER_EVENTS = frozenset(
    {
        EventType.DEVICE_REGISTERED,
        EventType.DEVICE_PROVISIONED,
        EventType.DEVICE_DELETED,
        EventType.CREDENTIALS_ISSUED,
        EventType.CREDENTIALS_REVOKED,
    }
)
TTS_EVENTS = frozenset(
    {
        EventType.DEVICE_CLAIMED,
        EventType.DEVICE_RELEASED,
        EventType.DEVICE_DELETED,
        EventType.CREDENTIALS_ISSUED,
        EventType.CREDENTIALS_REVOKED,
    }
)
WORK = {"broker": BROKER_EVENTS, "tts": TTS_EVENTS}

# What else consumes the batch in the same transaction (webhook fan-out).
Consumer = Callable[[UnitOfWork, Sequence[Event]], Awaitable[None]]


class Dispatcher:
    def __init__(
        self,
        uow: Callable[[], UnitOfWork],
        *,
        work: Sequence[str] = (),
        consumers: Sequence[Consumer] = (),
    ) -> None:
        """``work``: the integrations in use ("broker", "tts"), whose devices are queued."""
        self._uow = uow
        self._work = {kind: WORK[kind] for kind in work}
        self._consumers = list(consumers)

    async def dispatch(self, limit: int = 1000) -> int:
        """Handle up to ``limit`` queued events; how many there were.

        The queue is read in a read transaction and acted on in a write transaction that
        starts by removing the entries: on SQLite the write lock, which provisioning waits
        for, is held for the writes alone. An entry already gone then was handled by another
        dispatcher (one whose lease this one took over): the batch is rolled back and read
        again next time.
        """
        async with self._uow().read() as uow:
            entries = await uow.outbox.take(limit)
        if not entries:
            return 0
        batch = [event for _, event in entries if event is not None]
        async with self._uow() as uow:
            ids = [outbox_id for outbox_id, _ in entries]
            if await uow.outbox.remove(ids) != len(ids):
                return 0
            for kind, types in self._work.items():
                pending = uow.pending(kind)
                await pending.mark(
                    e.device_id for e in batch if e.type in types and e.device_id is not None
                )
                for e in batch:
                    if e.type is EventType.DEVICES_IMPORTED:
                        await pending.mark_imported(e.id)
            for consume in self._consumers:
                await consume(uow, batch)
            await uow.commit()
        return len(entries)
