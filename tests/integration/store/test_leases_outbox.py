"""Leases (background work runs in one instance at a time) and the outbox trigger, on both
backends, with real concurrent connections."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from provisiond.bootstrap import open_container
from provisiond.domain.events import EventType, NewEvent
from provisiond.settings import load_settings

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_a_lease_has_one_holder_until_it_expires(database_url: str) -> None:
    async def main() -> list[object]:
        async with open_container(load_settings(database_url=database_url)) as c:

            async def take(holder: str, at: datetime) -> bool:
                async with c.uow() as uow:
                    held = await uow.leases.acquire(
                        "outbox", holder, at, at + timedelta(seconds=30)
                    )
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
                for kind in (
                    EventType.DEVICE_CLAIMED,
                    EventType.USER_SIGNED_IN,
                    EventType.CREDENTIALS_REVOKED,
                    EventType.GROUP_CREATED,
                    EventType.DEVICES_IMPORTED,
                ):
                    await uow.events.add(NewEvent(kind, T0, "tests"))
                await uow.commit()
            async with c.uow() as uow:  # rolled back: nothing queued
                await uow.events.add(NewEvent(EventType.DEVICE_DELETED, T0, "tests"))
            async with c.uow().read() as uow:
                queued = await uow.outbox.take(100)
                return ([e.type.value for _, e in queued if e is not None], await uow.outbox.size())

    types, size = asyncio.run(main())
    assert types == ["device.claimed", "credentials.revoked", "devices.imported"]
    assert size == 3


def test_background_work_runs_in_one_instance_at_a_time(database_url: str) -> None:
    """Two instances' background loops on one database: every step runs in the one that
    holds the lease; loops of one instance that share a lease do not shut each other out."""
    from provisiond.services.background import Background, Loop

    async def main() -> tuple[set[str], set[str]]:
        async with open_container(load_settings(database_url=database_url)) as c:
            done = asyncio.Event()
            ran: list[tuple[str, str]] = []

            def worker(instance: str, loop_name: str) -> Loop:
                async def step() -> int:
                    ran.append((instance, loop_name))
                    if len(ran) >= 40:
                        done.set()
                    return 0

                return Loop(loop_name, step, idle=0.01, lease="shared")

            first = Background(c.uow, c.now, [worker("a", "one"), worker("a", "two")])
            second = Background(c.uow, c.now, [worker("b", "one"), worker("b", "two")])
            await asyncio.gather(first.start(), second.start())
            try:
                await asyncio.wait_for(done.wait(), 30)
            finally:
                # Both at once: stopped one after the other, the second would rightly take
                # the lease the first released and run a step of its own.
                await asyncio.gather(first.stop(), second.stop())
            return {i for i, _ in ran}, {n for _, n in ran}

    instances, loops = asyncio.run(main())
    assert len(instances) == 1  # one instance did all the work
    assert loops == {"one", "two"}  # both of its loops under the one lease


def test_instances_count_each_other_and_share_rate_limits(database_url: str) -> None:
    """Each instance's heartbeat is its own lease; every instance learns how many are alive
    and its rate limiter enforces that share of each limit."""
    from provisiond.services.background import Background
    from provisiond.services.ratelimit import RateLimiter

    async def main() -> tuple[list[int], list[int], float]:
        async with open_container(load_settings(database_url=database_url)) as c:
            limiters = [RateLimiter(), RateLimiter()]
            seen: list[list[int]] = [[], []]
            both = asyncio.Event()
            alone = asyncio.Event()

            def counter(i: int) -> Any:
                def record(count: int) -> None:
                    seen[i].append(count)
                    limiters[i].set_share(count)
                    if all(s and s[-1] == 2 for s in seen):
                        both.set()
                    if i == 0 and seen[0][-1] == 1 and both.is_set():
                        alone.set()

                return record

            instances = []
            for i in range(2):
                b = Background(c.uow, c.now, [])
                b.add(b.heartbeat(counter(i), every=0.02))
                instances.append(b)
            for b in instances:
                await b.start()
            await asyncio.wait_for(both.wait(), 30)
            shared = [limiters[0].take("k", 60) for _ in range(31)]  # 60/min over 2: 30
            await instances[1].stop()  # the other one leaves
            await asyncio.wait_for(alone.wait(), 30)
            await instances[0].stop()
            return seen[0], seen[1], shared[-1]

    first, second, refused_after = asyncio.run(main())
    assert 2 in first
    assert 2 in second
    assert first[-1] == 1  # alone again once the other released its heartbeat
    assert refused_after > 0  # the 31st request of a 60/min limit shared by two: refused


def test_stopping_lets_a_step_in_progress_finish(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """stop() waits for the step a loop is in (its transaction ends as written, not cut
    by cancellation); a step that outlasts the grace period is cancelled."""
    from provisiond.services import background
    from provisiond.services.background import Background, Loop

    monkeypatch.setattr(background, "STOP_GRACE", 0.5)

    async def main() -> tuple[list[str], list[str]]:
        async with open_container(load_settings(database_url=sqlite_url)) as c:
            finishing: list[str] = []
            stuck: list[str] = []
            inside = asyncio.Event()
            stuck_inside = asyncio.Event()
            release = asyncio.Event()

            async def step() -> int:
                inside.set()
                await release.wait()
                finishing.append("finished")
                return 1

            async def never() -> int:
                stuck_inside.set()
                try:
                    await asyncio.Event().wait()
                except asyncio.CancelledError:
                    stuck.append("cancelled")
                    raise
                return 1

            b = Background(
                c.uow, c.now, [Loop("finishing", step, idle=0.01), Loop("stuck", never, idle=0.01)]
            )
            await b.start()
            await asyncio.wait_for(asyncio.gather(inside.wait(), stuck_inside.wait()), 30)
            stopping = asyncio.create_task(b.stop())
            await asyncio.sleep(0)  # stop() has begun: the loops are told to stop
            release.set()
            await asyncio.wait_for(stopping, 30)
            return finishing, stuck

    finishing, stuck = asyncio.run(main())
    assert finishing == ["finished"]  # the step ended, and no further step began
    assert stuck == ["cancelled"]
