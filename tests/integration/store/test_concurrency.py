"""Real concurrency: two processes' worth of work at the same moment, on both backends."""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from provisiond.bootstrap import open_container
from provisiond.domain.device import DeviceSpec
from provisiond.domain.scope import Scope
from provisiond.errors import DeviceExists, GroupExists, ImportInvalid
from provisiond.services import devices, directory
from provisiond.services.import_formats import ImportFormat, read_import
from provisiond.services.registration import ImportOptions, SecretRow, register_devices
from provisiond.settings import load_settings

OPERATOR = Scope.operator()

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


class Sink:
    def __init__(self) -> None:
        self.rows: list[str] = []
        self.prepared = False

    def add_rows(self, rows: Sequence[SecretRow]) -> None:
        self.rows.extend(serial for serial, _, _, _ in rows)

    def prepare(self) -> None:
        self.prepared = True

    def commit(self) -> None:
        pass


def race(database_url: str, work: Callable[[Any, int], Any], n: int = 2) -> list[object]:
    """Run ``work(container, i)`` in n threads, each with its own event loop and engine, released
    together by a barrier. Returns each result or the exception it raised."""
    barrier = threading.Barrier(n)
    results: list[object] = [None] * n

    def runner(i: int) -> None:
        async def main() -> object:
            async with open_container(load_settings(database_url=database_url)) as c:
                await asyncio.to_thread(barrier.wait)
                return await work(c, i)

        try:
            results[i] = asyncio.run(main())
        except Exception as err:  # the outcome under test
            results[i] = err

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


def all_serials(database_url: str) -> list[str]:
    async def main() -> list[str]:
        async with open_container(load_settings(database_url=database_url)) as c:
            page = await devices.list_devices(c.uow(), scope=OPERATOR, limit=500)
            return [d.serial for d in page.items]

    return asyncio.run(main())


def test_two_overlapping_imports_one_wins_whole(database_url: str) -> None:
    files = [
        b"serial\n" + b"".join(f"R{n:04d}\n".encode() for n in range(0, 300)),
        b"serial\n" + b"".join(f"R{n:04d}\n".encode() for n in range(200, 400)),
    ]
    sinks = [Sink(), Sink()]

    async def work(c: Any, i: int) -> object:
        return await register_devices(
            c.uow(),
            scope=OPERATOR,
            items=read_import(io.BytesIO(files[i]), ImportFormat.CSV),
            options=ImportOptions(batch_size=50),
            sink=sinks[i],
            actor=f"t{i}",
            now=NOW,
        )

    results = race(database_url, work)
    failures = [r for r in results if isinstance(r, Exception)]
    assert len(failures) == 1, results
    assert isinstance(failures[0], ImportInvalid | DeviceExists), repr(failures[0])
    winner = next(i for i, r in enumerate(results) if not isinstance(r, Exception))
    expected = sorted(f"R{n:04d}" for n in (range(0, 300) if winner == 0 else range(200, 400)))
    assert sorted(all_serials(database_url)) == expected
    assert sinks[winner].prepared
    assert not sinks[1 - winner].prepared


def test_same_serial_created_twice_at_once(database_url: str) -> None:
    async def work(c: Any, _: int) -> object:
        return await devices.create_device(
            c.uow(), scope=OPERATOR, spec=DeviceSpec("SAME-1"), actor="t", now=NOW
        )

    results = race(database_url, work, n=4)
    assert sum(not isinstance(r, Exception) for r in results) == 1, results
    assert all(isinstance(r, DeviceExists) for r in results if isinstance(r, Exception))
    assert all_serials(database_url) == ["SAME-1"]


def test_same_group_created_at_once(database_url: str) -> None:
    async def work(c: Any, _: int) -> object:
        return await directory.create_group(
            c.uow(), scope=OPERATOR, path="Org/Region/Site", actor="t", now=NOW
        )

    results = race(database_url, work, n=4)
    # Each caller either created the group or was told a concurrent caller did.
    assert all(isinstance(r, tuple | GroupExists) for r in results), results

    async def paths() -> list[str]:
        async with open_container(load_settings(database_url=database_url)) as c:
            page = await directory.list_groups(c.uow(), scope=OPERATOR)
            return [g.path for g, _ in page.items]

    assert asyncio.run(paths()) == ["Org", "Org/Region", "Org/Region/Site"]
