"""The bulk writer queues a batch and returns (SQLite): what it queues still happens in order,
and a batch that fails fails the transaction it is in, however late it fails."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from provisiond.bootstrap import open_container
from provisiond.domain.device import DeviceSpec
from provisiond.domain.events import EventType, NewEvent
from provisiond.domain.scope import Scope
from provisiond.errors import DeviceExists
from provisiond.services import devices
from provisiond.services.ids import new_id_hexes
from provisiond.settings import load_settings
from provisiond.store.bulk import CredentialRow, DeviceRow, TagRow
from provisiond.store.uow import UnitOfWork

OPERATOR = Scope.operator()

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
# What COPY's text format and JSON must escape, and what neither may lose.
AWKWARD = 'ünïcode "quoted", back\\slash \\N tab\there\r\nnewline \\t'


def rows(*serials: str) -> tuple[list[DeviceRow], list[TagRow], list[CredentialRow]]:
    ids = new_id_hexes(2 * len(serials))
    found: list[DeviceRow] = []
    tags: list[TagRow] = []
    creds: list[CredentialRow] = []
    for i, serial in enumerate(serials):
        device, credential = ids[2 * i], ids[2 * i + 1]
        found.append(
            (device, serial, f"{serial} {AWKWARD}", None, "registered", None, None, None, None)
        )
        tags.append((device, serial, "line", f"L{i} {AWKWARD}"))
        creds.append((credential, device, "access-token", None, "0" * 64, None))
    return found, tags, creds


def test_lookups_see_the_batches_queued_before_them(database_url: str) -> None:
    async def scenario() -> tuple[set[str], set[str], list[str]]:
        async with open_container(load_settings(database_url=database_url)) as c:
            async with c.uow() as uow:
                event = await uow.events.add(NewEvent(EventType.DEVICES_IMPORTED, NOW, "t"))
                await uow.bulk.write(*rows("B1", "B2"), event_id=event, now=NOW)
                first = await uow.bulk.lookup(["B1", "B2", "B3"])
                await uow.bulk.write(*rows("B3"), event_id=event, now=NOW)
                await uow.bulk.drain()
                second = await uow.bulk.lookup(["B1", "B2", "B3", "B4"])
                await uow.commit()
            listed = await devices.list_devices(c.uow(), scope=OPERATOR, limit=10)
            b1 = await devices.get_device(c.uow(), scope=OPERATOR, serial="B1")
            return first, second, [*(d.serial for d in listed.items), b1.name, b1.tags["line"]]

    first, second, listed = asyncio.run(scenario())
    assert first == {"B1", "B2"}
    assert second == {"B1", "B2", "B3"}
    assert listed == ["B1", "B2", "B3", f"B1 {AWKWARD}", f"L0 {AWKWARD}"]


def test_a_batch_that_fails_after_write_returned_rolls_the_whole_import_back(
    database_url: str,
) -> None:
    """A serial registered already reaches the insert only if the import's own check
    missed it; the unique constraint then fails the batch when the driver runs it, after
    ``write`` returned (SQLite), and the unit of work reports the conflict."""

    async def scenario() -> tuple[bool, list[str]]:
        async with open_container(load_settings(database_url=database_url)) as c:
            await devices.create_device(
                c.uow(), scope=OPERATOR, spec=DeviceSpec("TAKEN"), actor="t", now=NOW
            )
            uow = c.uow()
            reported = False
            try:
                async with uow:
                    uow.conflicts_as(DeviceExists("conflict"))
                    event = await uow.events.add(NewEvent(EventType.DEVICES_IMPORTED, NOW, "t"))
                    await uow.bulk.write(*rows("C1", "C2"), event_id=event, now=NOW)
                    await uow.bulk.write(*rows("C3", "TAKEN"), event_id=event, now=NOW)
                    await uow.bulk.drain()
                    await uow.commit()
            except DeviceExists:
                reported = True
            listed = await devices.list_devices(c.uow(), scope=OPERATOR, limit=10)
            return reported, [d.serial for d in listed.items]

    reported, listed = asyncio.run(scenario())
    assert reported
    assert listed == ["TAKEN"]


def test_a_failure_elsewhere_waits_for_queued_batches_then_rolls_them_back(
    database_url: str,
) -> None:
    async def import_that_fails(uow: UnitOfWork) -> None:
        async with uow:
            event = await uow.events.add(NewEvent(EventType.DEVICES_IMPORTED, NOW, "t"))
            await uow.bulk.write(*rows("D1"), event_id=event, now=NOW)
            await uow.bulk.write(*rows("D2"), event_id=event, now=NOW)
            try:
                raise RuntimeError("file went away")
            finally:
                await uow.bulk.discard()

    async def scenario() -> list[str]:
        async with open_container(load_settings(database_url=database_url)) as c:
            with pytest.raises(RuntimeError, match="file went away"):
                await import_that_fails(c.uow())
            listed = await devices.list_devices(c.uow(), scope=OPERATOR, limit=10)
            return [d.serial for d in listed.items]

    assert asyncio.run(scenario()) == []


def test_an_import_of_several_batches_writes_every_device_once(database_url: str) -> None:
    """Batches overlap (one read and built while the previous one is written) and the
    importer pauses inside them for the event loop: every record still lands once, with
    its own working token."""
    import io

    from provisiond.services.import_formats import ImportFormat, read_import
    from provisiond.services.registration import ImportOptions, register_devices
    from tests.integration.store.test_device_tokens import Sink

    body = "serial,name,colour\n" + "".join(
        f"S{n:05d},Device {n},c{n % 30}\n" for n in range(10_500)
    )

    async def scenario() -> tuple[int, int, list[str], str]:
        async with open_container(load_settings(database_url=database_url)) as c:
            sink = Sink()
            result = await register_devices(
                c.uow(),
                scope=OPERATOR,
                items=read_import(io.BytesIO(body.encode()), ImportFormat.CSV),
                options=ImportOptions(batch_size=6_000),
                sink=sink,
                actor="t",
                now=NOW,
            )
            page = await devices.list_devices(
                c.uow(), scope=OPERATOR, tags={"colour": "c3"}, limit=500
            )
            last = await devices.authenticate_device(
                c.uow(), token=sink.secrets["S10499"], now=c.now()
            )
            return result.imported, len(sink.secrets), [d.serial for d in page.items], last.serial

    imported, secrets, coloured, last = asyncio.run(scenario())
    assert imported == secrets == 10_500
    assert coloured == [f"S{n:05d}" for n in range(10_500) if n % 30 == 3]
    assert last == "S10499"
