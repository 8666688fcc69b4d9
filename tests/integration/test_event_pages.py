"""The audit log's pages (services/events.py list_events) equal a naive filter and sort of
every event, page after page, on SQLite and PostgreSQL: a subtree read among the newest
events first and through its index after; a period read newest first by time, with events
written out of time order (an import's events carry its start time)."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

import pytest

from provisiond.bootstrap import open_container
from provisiond.domain.events import Event, EventType, NewEvent
from provisiond.domain.scope import Scope, within
from provisiond.domain.users import Role
from provisiond.errors import InvalidCursor
from provisiond.services import events as service
from provisiond.settings import load_settings
from provisiond.store import events as store

NOW = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)
PATHS = ["Busy", "Busy/Site", "Quiet", "Quiet/Site", None]
WEIGHTS = [40, 40, 3, 2, 15]
TYPES = [EventType.DEVICE_REGISTERED, EventType.DEVICE_CLAIMED, EventType.CLAIM_FAILED]


async def write(url: str, n: int) -> None:
    rng = random.Random(n)  # noqa: S311 - test data
    async with open_container(load_settings(database_url=url)) as c:
        for batch in range(0, n, 50):
            async with c.uow() as uow:
                for i in range(batch, min(n, batch + 50)):
                    # mostly in time order; one in five minutes to hours older
                    late = timedelta(minutes=rng.uniform(1, 600)) if rng.random() < 0.2 else None
                    at = NOW - timedelta(minutes=10 * (n - i)) - (late or timedelta())
                    await uow.events.add(
                        NewEvent(
                            rng.choice(TYPES),
                            at,
                            f"user:u{i % 3}@example.com",
                            serial=f"S{i % 17}",
                            group_path=rng.choices(PATHS, WEIGHTS)[0],
                        )
                    )
                await uow.commit()


def every_page(url: str, scope: Scope, limit: int, **filters: object) -> list[Event]:
    async def main() -> list[Event]:
        found: list[Event] = []
        cursor = None
        async with open_container(load_settings(database_url=url)) as c:
            while True:
                page = await service.list_events(
                    c.uow(), scope=scope, cursor=cursor, limit=limit, **filters
                )
                found += page.items
                cursor = page.next_cursor
                if cursor is None:
                    return found

    return asyncio.run(main())


def everything(url: str) -> list[Event]:
    return every_page(url, Scope.operator(), 500)


def admin(path: str) -> Scope:
    return Scope(Role.ADMIN, path)


def test_a_subtrees_pages_are_its_events_newest_first(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "RECENT_EVENTS", 40)  # both ways within a few pages
    asyncio.run(write(database_url, 600))
    every = everything(database_url)
    assert len(every) == 600
    for path in ("Busy", "Quiet", "Quiet/Site"):
        expected = [e.id for e in every if e.group_path and within(e.group_path, path)]
        for limit in (7, 50):
            got = [e.id for e in every_page(database_url, admin(path), limit)]
            assert got == expected, (path, limit)


def test_a_periods_pages_are_its_events_newest_first_by_time(database_url: str) -> None:
    asyncio.run(write(database_url, 600))
    every = everything(database_url)
    since, until = NOW - timedelta(hours=80), NOW - timedelta(hours=20)
    for path, kinds in (("Busy", []), ("Quiet", []), ("Busy", ["device.claimed"])):
        expected = sorted(
            (
                e
                for e in every
                if e.group_path
                and within(e.group_path, path)
                and since <= e.at < until
                and (not kinds or e.type.value in kinds)
            ),
            key=lambda e: (e.at, e.id),
            reverse=True,
        )
        assert len(expected) > 10
        for limit in (7, 50):
            got = every_page(
                database_url, admin(path), limit, since=since, until=until, kinds=kinds
            )
            assert [e.id for e in got] == [e.id for e in expected], (path, limit)
    only_since = every_page(database_url, admin("Busy"), 9, since=since)
    assert [e.id for e in only_since] == [
        e.id
        for e in sorted(every, key=lambda e: (e.at, e.id), reverse=True)
        if e.group_path and within(e.group_path, "Busy") and e.at >= since
    ]


def test_a_cursor_of_one_order_is_refused_by_the_other(database_url: str) -> None:
    asyncio.run(write(database_url, 60))
    scope = admin("Busy")

    async def main() -> None:
        async with open_container(load_settings(database_url=database_url)) as c:
            by_id = await service.list_events(c.uow(), scope=scope, limit=5)
            by_time = await service.list_events(
                c.uow(), scope=scope, limit=5, since=NOW - timedelta(days=30)
            )
            assert by_id.next_cursor
            assert by_time.next_cursor
            with pytest.raises(InvalidCursor):
                await service.list_events(
                    c.uow(),
                    scope=scope,
                    limit=5,
                    cursor=by_id.next_cursor,
                    since=NOW - timedelta(days=30),
                )
            with pytest.raises(InvalidCursor):
                await service.list_events(c.uow(), scope=scope, limit=5, cursor=by_time.next_cursor)

    asyncio.run(main())
