"""Compaction of the overview's summaries (store/summaries.py): the rows of every writer's
slot are folded into slot 0, the totals unchanged, while writers keep writing — with real
concurrency on PostgreSQL (each writer its own connection, so its own backend and slot)."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, func, insert, select, text, update

from provisiond.bootstrap import open_container
from provisiond.domain.scope import Scope
from provisiond.services import directory
from provisiond.services.summaries import compact_summaries
from provisiond.settings import load_settings
from provisiond.store.database import sync_url
from provisiond.store.schema import device_days, devices, funnel_days, groups
from tests.integration.cli.conftest import Cli

NOW = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)
SITES = ["Org", "Org/A", "Org/B"]
SUMMARIES = ((device_days, ("day", "group_key")), (funnel_days, ("day", "group_key", "model_key")))


def prepare(url: str) -> Engine:
    async def main() -> None:
        async with open_container(load_settings(database_url=url)) as c:
            for path in SITES:
                await directory.create_group(
                    c.uow(), scope=Scope.operator(), path=path, actor="t", now=NOW
                )

    asyncio.run(main())
    return create_engine(sync_url(url))


def group_ids(engine: Engine) -> list[uuid.UUID]:
    with engine.connect() as conn:
        return [r.id for r in conn.execute(select(groups.c.id).order_by(groups.c.path))]


def add_devices(conn: Connection, sites: list[uuid.UUID], tag: str, n: int, day: int) -> None:
    """``n`` devices registered on day ``day`` before NOW, half of them claimed at a site."""
    created = NOW - timedelta(days=day)
    conn.execute(
        insert(devices),
        [
            {
                "id": uuid.uuid4(),
                "serial": f"{tag}-{i}",
                "name": f"{tag}-{i}",
                "state": "claimed" if i % 2 else "registered",
                "group_id": sites[i % len(sites)] if i % 2 else None,
                "created_at": created,
                "updated_at": created,
                "claimed_at": created + timedelta(hours=i) if i % 2 else None,
            }
            for i in range(n)
        ],
    )


def totals(engine: Engine) -> dict[str, dict[tuple[Any, ...], tuple[int, ...]]]:
    """Each summary's sums over slots, per key (what the overview reads)."""
    found: dict[str, dict[tuple[Any, ...], tuple[int, ...]]] = {}
    with engine.connect() as conn:
        for table, keys in SUMMARIES:
            counters = [c for c in table.c if c.name not in (*keys, "slot")]
            rows = conn.execute(
                select(*(table.c[k] for k in keys), *(func.sum(c) for c in counters)).group_by(
                    *(table.c[k] for k in keys)
                )
            )
            found[table.name] = {
                tuple(r[: len(keys)]): tuple(int(v) for v in r[len(keys) :]) for r in rows
            }
    return found


def slots(engine: Engine) -> set[int]:
    with engine.connect() as conn:
        return {
            int(s)
            for table, _ in SUMMARIES
            for s in conn.execute(select(table.c.slot).distinct()).scalars()
        }


def naive(engine: Engine) -> dict[tuple[str, uuid.UUID], tuple[int, int]]:
    """Per registration day and group: devices registered, devices claimed (from the rows)."""
    out: dict[tuple[str, uuid.UUID], tuple[int, int]] = {}
    nil = uuid.UUID(int=0)
    with engine.connect() as conn:
        for created, group, claimed in conn.execute(
            select(devices.c.created_at, devices.c.group_id, devices.c.claimed_at)
        ):
            key = (created.astimezone(UTC).date().isoformat(), group or nil)
            registered, claimed_count = out.get(key, (0, 0))
            out[key] = (registered + 1, claimed_count + (claimed is not None))
    return out


def summarised(engine: Engine) -> dict[tuple[str, uuid.UUID], tuple[int, int]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                device_days.c.day,
                device_days.c.group_key,
                func.sum(device_days.c.registered),
                func.sum(device_days.c.claimed),
            ).group_by(device_days.c.day, device_days.c.group_key)
        )
        return {(d, g): (int(r), int(c)) for d, g, r, c in rows if r or c}


def compact(url: str, batch: int = 1000) -> int:
    async def main() -> int:
        async with open_container(load_settings(database_url=url)) as c:
            return await compact_summaries(c.uow, batch=batch)

    return asyncio.run(main())


def spread(engine: Engine) -> None:
    """Summary rows in several slots for the same keys: three writers' (on PostgreSQL,
    three connections are three backends); on SQLite, whose one writer writes slot 0, rows
    moved to another slot, then slot 0's of the same keys."""
    sites = group_ids(engine)
    for w in range(3):
        with engine.connect() as conn:
            add_devices(conn, sites, f"W{w}", 40, day=w)
            conn.commit()
            conn.invalidate()  # the next writer is another backend
    if engine.dialect.name == "sqlite":
        with engine.begin() as conn:
            for table, _ in SUMMARIES:
                conn.execute(text(f"UPDATE {table.name} SET slot = 7"))  # noqa: S608 - ours
            add_devices(conn, sites, "S", 40, day=1)
        assert slots(engine) == {0, 7}
    else:
        assert len(slots(engine) - {0}) >= 2


def test_compaction_folds_every_slot_into_slot_0_totals_unchanged(database_url: str) -> None:
    engine = prepare(database_url)
    spread(engine)
    before = totals(engine)

    folded = compact(database_url, batch=5)  # several batches
    assert folded > 5

    assert slots(engine) == {0}
    assert totals(engine) == before
    assert summarised(engine) == naive(engine)
    assert compact(database_url) == 0  # nothing left: a second run folds nothing
    engine.dispose()


def in_thread(work: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(work())
        except Exception as err:  # the outcome under test
            outcome.append(err)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_a_writers_open_transaction_does_not_hold_up_the_compaction(postgres_url: str) -> None:
    """A row a writer holds is skipped, not waited for; the next compaction folds it."""
    engine = prepare(postgres_url)
    sites = group_ids(engine)
    with engine.connect() as writer:
        add_devices(writer, sites, "A", 10, day=1)
        writer.commit()  # this backend's rows exist ...
        add_devices(writer, sites, "B", 10, day=1)  # ... and it holds them, uncommitted
        thread, outcome = in_thread(lambda: compact(postgres_url))
        thread.join(timeout=60)
        assert not thread.is_alive(), "the compaction waited for the writer's transaction"
        assert outcome == [0]  # every row of the writer's slot is held: left for later
        writer.commit()
    assert compact(postgres_url) > 0
    assert slots(engine) == {0}
    assert summarised(engine) == naive(engine)
    engine.dispose()


def test_writers_and_compactions_at_once_totals_exact(postgres_url: str) -> None:
    """Four writers (four backends) register, claim and move devices while compactions run
    again and again; nothing fails, no deadlock, and the totals are the devices' own."""
    engine = prepare(postgres_url)
    sites = group_ids(engine)
    writers, rounds = 4, 25
    done = threading.Event()
    started = threading.Barrier(writers + 1)

    def write(w: int) -> int:
        with engine.connect() as conn:
            started.wait()
            for r in range(rounds):
                add_devices(conn, sites, f"W{w}R{r}", 12, day=r % 5)
                # claim some devices of an earlier round (an update of another day's rows)
                conn.execute(
                    update(devices)
                    .where(devices.c.serial.like(f"W{w}R{max(0, r - 1)}-%"))
                    .where(devices.c.state == "registered")
                    .values(
                        state="claimed",
                        group_id=sites[r % len(sites)],
                        claimed_at=NOW,
                    )
                )
                conn.commit()
        return rounds

    def compactions() -> int:
        folded = passes = 0
        started.wait()
        while not done.is_set() or passes == 0:
            folded += compact(postgres_url, batch=50)
            passes += 1
        return folded

    threads = [in_thread(lambda w=w: write(w)) for w in range(writers)]
    compactor, compacted = in_thread(compactions)
    for thread, _ in threads:
        thread.join(timeout=300)
    done.set()
    compactor.join(timeout=300)
    assert [o for _, o in threads] == [[rounds]] * writers
    assert len(compacted) == 1
    assert isinstance(compacted[0], int), compacted
    assert compacted[0] > 0  # the compactions ran among the writers and folded rows

    compact(postgres_url)
    assert slots(engine) == {0}
    assert summarised(engine) == naive(engine)
    engine.dispose()


def test_serve_compacts_in_the_background(postgres_url: str) -> None:
    """`serve`'s background work folds the rows (its loop under the lease "summaries")."""
    engine = prepare(postgres_url)
    sites = group_ids(engine)
    for w in range(3):
        with engine.connect() as conn:
            add_devices(conn, sites, f"W{w}", 20, day=w)
            conn.commit()
            conn.invalidate()
    assert slots(engine) != {0}
    before = totals(engine)

    async def main() -> None:
        async with (
            open_container(load_settings(database_url=postgres_url)) as c,
            c.background(),
        ):
            deadline = time.monotonic() + 60
            while await asyncio.to_thread(slots, engine) != {0}:  # its first pass, at start
                assert time.monotonic() < deadline, "the background compaction did not run"
                await asyncio.sleep(0.05)

    asyncio.run(main())
    assert totals(engine) == before
    engine.dispose()


def test_the_command_line_compacts(database_url: str) -> None:
    engine = prepare(database_url)
    spread(engine)
    before = totals(engine)
    done = Cli(database_url).json("db", "compact")
    assert isinstance(done, dict)
    assert done["folded"] > 0
    assert done["left"] == 0
    assert slots(engine) == {0}
    assert totals(engine) == before
    engine.dispose()
