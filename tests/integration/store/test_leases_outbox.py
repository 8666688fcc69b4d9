"""Leases (background work runs in one instance at a time) and the outbox trigger, on both
backends, with real concurrent connections."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from provisiond.bootstrap import open_container
from provisiond.domain.events import EventType, NewEvent
from provisiond.settings import load_settings

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_a_lease_has_one_holder_until_it_expires(database_url: str) -> None:
    async def main() -> list[object]:
        async with open_container(load_settings(database_url=database_url)) as c:
            async def take(holder: str, at: datetime) -> bool:
                async with c.uow() as uow:
                    held = await uow.leases.acquire("outbox", holder, at,
                                                    at + timedelta(seconds=30))
                    await uow.commit()
                    return held

            # two instances at once: exactly one wins
            first = await asyncio.gather(take("a", T0), take("b", T0))
            winner = "a" if first[0] else "b"
            loser = "b" if winner == "a" else "a"
            renewed = await take(winner, T0 + timedelta(seconds=10))
            refused = await take(loser, T0 + timedelta(seconds=20))
            taken_over = await take(loser, T0 + timedelta(seconds=41))
            async with c.uow() as uow:
                await uow.leases.release("outbox", loser)
                await uow.commit()
            async with c.uow().read() as uow:
                gone = await uow.leases.holder("outbox")
            return [sorted(first), renewed, refused, taken_over, gone]

    assert asyncio.run(main()) == [[False, True], True, False, True, None]


def test_the_outbox_receives_exactly_the_events_integrations_use(database_url: str) -> None:
    async def main() -> tuple[list[str], int]:
        async with open_container(load_settings(database_url=database_url)) as c:
            async with c.uow() as uow:
                for kind in (EventType.DEVICE_CLAIMED, EventType.USER_SIGNED_IN,
                             EventType.CREDENTIALS_REVOKED, EventType.GROUP_CREATED,
                             EventType.DEVICES_IMPORTED):
                    await uow.events.add(NewEvent(kind, T0, "tests"))
                await uow.commit()
            async with c.uow() as uow:  # rolled back: nothing queued
                await uow.events.add(NewEvent(EventType.DEVICE_DELETED, T0, "tests"))
            async with c.uow().read() as uow:
                queued = await uow.outbox.take(100)
                return ([e.type.value for _, e in queued if e is not None],
                        await uow.outbox.size())

    types, size = asyncio.run(main())
    assert types == ["device.claimed", "credentials.revoked", "devices.imported"]
    assert size == 3
