"""The provisioning writer: group commit, one job's failure its own, answers after commit."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from provisiond.bootstrap import Container, open_container
from provisiond.domain.device import Device, DeviceState
from provisiond.domain.events import EventType, NewEvent
from provisiond.domain.scope import Scope
from provisiond.errors import Unavailable
from provisiond.services import devices
from provisiond.services.ids import new_id
from provisiond.settings import load_settings
from provisiond.store.provision_writer import ProvisionTx

OPERATOR = Scope.operator()

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@asynccontextmanager
async def container(database_url: str) -> AsyncIterator[Container]:
    async with open_container(load_settings(database_url=database_url)) as c:
        yield c


def new_device(serial: str) -> tuple[Device, NewEvent]:
    device = Device(
        new_id(), serial, serial, None, DeviceState.REGISTERED, None, None, None, None, NOW, NOW
    )
    return device, NewEvent(
        EventType.DEVICE_REGISTERED, NOW, "test", device_id=device.id, serial=serial
    )


def add(serial: str, *, then: Callable[[], None] | None = None) -> Callable[[ProvisionTx], str]:
    """A job registering ``serial`` with two events; ``then`` runs after its writes."""

    def job(tx: ProvisionTx) -> str:
        device, registered = new_device(serial)
        tx.add_device(device, model_id=None, registered=registered)
        tx.add_event(
            NewEvent(EventType.DEVICE_PROVISIONED, NOW, "test", device_id=device.id, serial=serial)
        )
        if then is not None:
            then()
        return serial

    return job


async def held(c: Container, gate: threading.Event) -> asyncio.Future[Any]:
    """Occupy the writer thread until ``gate`` is set, so later jobs queue up together."""
    started = threading.Event()

    def job(_: ProvisionTx) -> None:
        started.set()
        gate.wait(30)

    future = c.provision_writer.submit(job)
    await asyncio.to_thread(started.wait, 30)
    return future


async def registered(c: Container) -> list[str]:
    page = await devices.list_devices(c.uow(), scope=OPERATOR, limit=500)
    return [d.serial for d in page.items]


async def events_of(c: Container, serial: str) -> list[EventType]:
    _, _, timeline = await devices.get_device_detail(c.uow(), scope=OPERATOR, serial=serial)
    return [e.type for e in timeline]


def test_waiting_jobs_share_one_transaction(database_url: str) -> None:
    async def main() -> None:
        async with container(database_url) as c:
            gate = threading.Event()
            blocker = await held(c, gate)
            before = c.provision_writer.batches
            jobs = [c.provision_writer.submit(add(f"G-{i:02}")) for i in range(20)]
            gate.set()
            assert sorted(await asyncio.gather(*jobs)) == [f"G-{i:02}" for i in range(20)]
            await blocker
            # the blocker's batch, then all twenty in one transaction and one commit
            assert c.provision_writer.batches - before == 2
            assert await registered(c) == [f"G-{i:02}" for i in range(20)]
            assert await events_of(c, "G-07") == [
                EventType.DEVICE_REGISTERED,
                EventType.DEVICE_PROVISIONED,
            ]

    asyncio.run(main())


def test_a_failing_job_fails_alone(database_url: str) -> None:
    def boom() -> None:
        raise ValueError("this job changed its mind after writing")

    async def main() -> None:
        async with container(database_url) as c:
            gate = threading.Event()
            blocker = await held(c, gate)
            jobs = [
                c.provision_writer.submit(add(f"F-{i:02}", then=boom if i == 5 else None))
                for i in range(10)
            ]
            gate.set()
            results = await asyncio.gather(*jobs, return_exceptions=True)
            await blocker
            assert isinstance(results[5], ValueError)
            assert [r for i, r in enumerate(results) if i != 5] == [
                f"F-{i:02}" for i in range(10) if i != 5
            ]
            # its writes were rolled back, nobody else's
            assert await registered(c) == [f"F-{i:02}" for i in range(10) if i != 5]

    asyncio.run(main())


def test_a_constraint_violation_is_the_violators_only(database_url: str) -> None:
    async def main() -> None:
        async with container(database_url) as c:
            gate = threading.Event()
            blocker = await held(c, gate)
            # two jobs write the same serial (provisioning reads first and never does this;
            # another process can): the batch is rolled back, each job runs again alone
            jobs = [
                c.provision_writer.submit(add(serial)) for serial in ("C-1", "C-2", "C-1", "C-3")
            ]
            gate.set()
            results = await asyncio.gather(*jobs, return_exceptions=True)
            await blocker
            assert results[:2] == ["C-1", "C-2"]
            assert results[3] == "C-3"
            assert "unique" in str(results[2]).lower() or "duplicate" in str(results[2])
            assert await registered(c) == ["C-1", "C-2", "C-3"]

    asyncio.run(main())


def test_an_answer_follows_the_commit(database_url: str) -> None:
    async def main() -> None:
        async with container(database_url) as writer_side:
            assert await writer_side.provision_writer.run(add("D-1")) == "D-1"
            async with container(database_url) as other_process:  # its own connections
                assert await registered(other_process) == ["D-1"]

    asyncio.run(main())


def test_a_closed_writer_refuses_work(database_url: str) -> None:
    async def main() -> None:
        async with container(database_url) as c:
            assert await c.provision_writer.run(add("E-1")) == "E-1"
            await c.provision_writer.close()
            with pytest.raises(Unavailable):
                await c.provision_writer.run(add("E-2"))

    asyncio.run(main())


def test_a_locked_database_fails_the_batch_at_once(sqlite_url: str) -> None:
    """Another process holds SQLite's write lock past the busy timeout: the waiting jobs get
    Unavailable (a batch fails at once, its jobs are not retried one by one, each waiting
    the timeout again); then work resumes."""
    path = sqlite_url.removeprefix("sqlite:///")

    async def main() -> None:
        settings = load_settings(database_url=sqlite_url, sqlite_busy_timeout_ms=200)
        async with open_container(settings) as c:
            other = sqlite3.connect(path, isolation_level=None)
            other.execute("BEGIN IMMEDIATE")
            try:
                jobs = [c.provision_writer.submit(add(f"L-{i}")) for i in range(8)]
                results = await asyncio.gather(*jobs, return_exceptions=True)
            finally:
                other.execute("ROLLBACK")
                other.close()
            assert all(isinstance(r, Unavailable) for r in results), results
            assert await c.provision_writer.run(add("L-after")) == "L-after"
            assert await registered(c) == ["L-after"]

    asyncio.run(main())


def test_sqlite_log_is_copied_back_beside_the_writer(sqlite_url: str, tmp_path: Path) -> None:
    """The writer's commits leave SQLite's write-ahead log to the checkpointer thread, which
    copies it into the database file: a copy of that file alone, without its log, holds
    every device the writer committed."""
    path = Path(sqlite_url.removeprefix("sqlite:///"))

    async def main() -> None:
        async with container(sqlite_url) as c:
            writer = c.provision_writer
            await asyncio.gather(*(writer.run(add(f"W-{i}")) for i in range(300)))
            checkpointer = writer.checkpointer
            assert checkpointer is not None
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            assert checkpointer.commits == writer.batches
            while checkpointer.copied < checkpointer.commits:  # a checkpoint after the last
                assert loop.time() < deadline
                await asyncio.to_thread(checkpointer.wait, 1.0)
            shutil.copyfile(path, tmp_path / "alone.db")  # the file, not its -wal
            alone = sqlite3.connect(tmp_path / "alone.db")
            try:
                count = alone.execute(
                    "SELECT count(*) FROM devices WHERE serial LIKE 'W-%'"
                ).fetchone()[0]
            finally:
                alone.close()
            assert count == 300

    asyncio.run(main())
