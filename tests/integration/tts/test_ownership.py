"""provisiond never takes over, nor deletes, an end device in The Things Stack it did not
create: one with the same ID, one holding the same DevEUI under another ID (in this
application or another), one a Join Server holds; and one that was provisiond's but has been
replaced by someone else's since. Such a device waits with the reason shown; the end devices
are left exactly as they were. On both backends."""

from __future__ import annotations

from typing import Any

from provisiond.bootstrap import Container
from provisiond.domain.scope import Scope
from provisiond.domain.users import UserSpec
from provisiond.services import devices as device_service
from provisiond.services import directory
from provisiond.services.claims.ownership import release_device
from provisiond.store.tts import TtsRecord
from tests.integration.tts.conftest import JOIN_EUI, import_meters, settings_for, settle
from tests.support.containers import within
from tests.support.tts_standin import COMPONENTS, StandIn

OPERATOR = Scope.operator()

FIRST, SECOND = "0018B20000000101", "0018B20000000102"
FIRST_ID, SECOND_ID = "eui-0018b20000000101", "eui-0018b20000000102"


def snapshot(
    standin: StandIn, device_id: str, application: str = "kanarra-meters"
) -> dict[str, Any]:
    return {c: standin.end_device(device_id, c, application) for c in COMPONENTS}


async def state(c: Container) -> tuple[dict[str, TtsRecord], list[Any], list[Any]]:
    """provisiond's records by DevEUI, what waits in the queue, the latest events."""
    async with c.uow().read() as uow:
        records = {r.dev_eui: r for r in (await uow.tts.records()).values()}
        return records, await uow.tts.pending.listed(), await uow.events.latest(50)


def kinds(events: list[Any], kind: str) -> list[Any]:
    return [e for e in events if e.type.value == kind]


def test_a_foreign_end_device_with_the_same_id_is_left_as_it_is(
    database_url: str, standin: StandIn
) -> None:
    standin.plant(
        FIRST_ID,
        dev_eui=FIRST,
        join_eui=JOIN_EUI,
        name="Field trial meter",
        attributes={"owner": "field-team"},
    )
    before = snapshot(standin, FIRST_ID)
    settings = settings_for(database_url, standin)

    async def work(c: Container) -> Any:
        await import_meters(c)  # claimed at import: both are wanted in The Things Stack
        await settle(c)
        return await state(c)

    records, pending, events = within(settings, work)
    # not one field of it changed: no AppKey, name, attribute or network setting of ours
    assert snapshot(standin, FIRST_ID) == before
    assert standin.writes(FIRST_ID) == [("POST", "is", 409)]
    assert records[SECOND].status == "registered"  # the other device goes on
    waiting = records[FIRST]
    assert waiting.status == "conflict"
    assert waiting.last_error is not None
    assert f"end device {FIRST_ID} in application kanarra-meters" in waiting.last_error
    assert "provisiond did not create it" in waiting.last_error
    assert f"provisiond lorawan adopt {FIRST}" in waiting.last_error
    assert pending == []  # it waits for an operator, not in a retry loop
    [conflict] = kinds(events, "lorawan.conflict")
    assert (conflict.serial, conflict.data["end_device_id"]) == (FIRST, FIRST_ID)

    async def again_then_release(c: Container) -> Any:
        async with c.tts_sync() as tts:
            report = (await tts.sync_all()).as_dict()
        admin = await directory.create_user(
            c.uow(),
            scope=OPERATOR,
            spec=UserSpec(
                "boss@kanarra.example",
                password="correct horse battery",
                role="admin",
                group="Kanarra",
            ),
            actor="tests",
            now=c.now(),
        )
        await release_device(c.uow(), user=admin, serial=FIRST, now=c.now())
        await settle(c)
        return report, await state(c)

    report, (records, _pending, events) = within(settings, again_then_release)
    assert list(report["waiting"]) == [str(waiting.device_id)]
    assert len(kinds(events, "lorawan.conflict")) == 1  # no new event for the same reason
    assert snapshot(standin, FIRST_ID) == before  # released: still not deleted
    assert [w for w in standin.writes(FIRST_ID) if w[0] == "DELETE"] == []
    assert FIRST not in records


def test_release_and_delete_leave_an_end_device_someone_else_registered_since(
    database_url: str, standin: StandIn
) -> None:
    settings = settings_for(database_url, standin)

    async def register(c: Container) -> None:
        await import_meters(c)
        await settle(c)

    within(settings, register)
    assert standin.devices("is") == {FIRST_ID, SECOND_ID}
    # since then the field team deleted both in the Console and registered their own
    for device_id, dev_eui in ((FIRST_ID, FIRST), (SECOND_ID, SECOND)):
        standin.forget(device_id)
        standin.plant(
            device_id,
            dev_eui=dev_eui,
            join_eui=JOIN_EUI,
            name="Theirs now",
            attributes={"owner": "field-team"},
        )
    before = {d: snapshot(standin, d) for d in (FIRST_ID, SECOND_ID)}
    standin.requests.clear()

    async def release_and_delete(c: Container) -> Any:
        admin = await directory.create_user(
            c.uow(),
            scope=OPERATOR,
            spec=UserSpec(
                "boss@kanarra.example",
                password="correct horse battery",
                role="admin",
                group="Kanarra",
            ),
            actor="tests",
            now=c.now(),
        )
        await release_device(c.uow(), user=admin, serial=FIRST, now=c.now())
        await device_service.delete_device(
            c.uow(), scope=OPERATOR, serial=SECOND, actor="tests", now=c.now()
        )
        await settle(c)
        return await state(c)

    records, pending, events = within(settings, release_and_delete)
    assert {d: snapshot(standin, d) for d in (FIRST_ID, SECOND_ID)} == before
    assert [r for r in standin.requests if r.method == "DELETE"] == []
    assert records == {}  # provisiond no longer registers them, and forgot them
    assert pending == []
    skipped = kinds(events, "lorawan.removal-skipped")
    assert sorted(e.serial for e in skipped) == [FIRST, SECOND]
    assert all("provisiond did not create it" in e.data["reason"] for e in skipped)
    assert kinds(events, "lorawan.removed") == []


def test_a_deveui_registered_under_another_id_is_not_taken(
    database_url: str, standin: StandIn
) -> None:
    # the first meter is already "meter-kitchen" here; the second, in another application
    standin.plant("meter-kitchen", dev_eui=FIRST, join_eui=JOIN_EUI, name="Kitchen meter")
    standin.plant("spare-7", dev_eui=SECOND, join_eui=JOIN_EUI, application="kanarra-spare")
    before = (snapshot(standin, "meter-kitchen"), snapshot(standin, "spare-7", "kanarra-spare"))
    settings = settings_for(database_url, standin)

    async def work(c: Container) -> Any:
        await import_meters(c)
        await settle(c)
        return await state(c)

    records, pending, events = within(settings, work)
    assert (
        snapshot(standin, "meter-kitchen"),
        snapshot(standin, "spare-7", "kanarra-spare"),
    ) == before
    for component in COMPONENTS:  # nothing half-registered beside them
        assert standin.devices(component, "kanarra-meters") <= {"meter-kitchen"}
    # read to see whose they are; the only writes are the two refused creates
    assert [(r.method, r.component, r.status) for r in standin.requests if r.method != "GET"] == [
        ("POST", "is", 409),
        ("POST", "is", 409),
    ]
    assert (records[FIRST].status, records[SECOND].status) == ("conflict", "conflict")
    assert (
        "DevEUI 0018B20000000101 is registered as meter-kitchen in application "
        "kanarra-meters" in (records[FIRST].last_error or "")
    )
    assert "as spare-7 in application kanarra-spare" in (records[SECOND].last_error or "")
    assert pending == []
    assert len(kinds(events, "lorawan.conflict")) == 2


def test_a_deveui_a_join_server_holds_under_another_id_is_not_taken(
    database_url: str, standin: StandIn
) -> None:
    # only the Join Server knows it (its Identity Server record was deleted, or it is a
    # Join Server of its own): the Join Server refuses our end device
    standin.plant("old-meter", dev_eui=FIRST, join_eui=JOIN_EUI, components=["js"])
    before = snapshot(standin, "old-meter")
    settings = settings_for(database_url, standin)

    async def work(c: Container) -> Any:
        await import_meters(c)
        await settle(c)
        return await state(c)

    records, pending, _events = within(settings, work)
    assert snapshot(standin, "old-meter") == before
    assert standin.devices("is") == {SECOND_ID}  # what this attempt created is gone again
    assert standin.writes(FIRST_ID) == [
        ("POST", "is", 201),
        ("PUT", "js", 409),
        ("DELETE", "as", 404),
        ("DELETE", "ns", 404),
        ("DELETE", "js", 404),
        ("DELETE", "is", 200),
    ]
    assert records[FIRST].status == "conflict"
    assert "the Join Server holds DevEUI 0018B20000000101 as old-meter" in (
        records[FIRST].last_error or ""
    )
    assert pending == []
