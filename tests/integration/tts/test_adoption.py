"""Adoption — an operator's explicit decision that provisiond takes over an end device it did
not create — and how provisiond knows its own end devices from The Things Stack itself: after
its database is restored from an old backup, and for end devices registered before it marked
them. On both backends."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import update

from provisiond.bootstrap import Container
from provisiond.domain.scope import Scope
from provisiond.domain.users import UserSpec
from provisiond.errors import (
    AdoptionRefused,
    DeviceNotFound,
    InvalidTransition,
    NothingToAdopt,
    ProvisiondError,
    TtsUnavailable,
)
from provisiond.services import devices as device_service
from provisiond.services import directory
from provisiond.services.claims.ownership import release_device
from provisiond.store.schema import tts_devices
from tests.integration.tts.conftest import (
    APP_KEY,
    JOIN_EUI,
    import_meters,
    settings_for,
    settle,
)
from tests.integration.tts.test_ownership import (
    FIRST,
    FIRST_ID,
    SECOND,
    SECOND_ID,
    kinds,
    state,
)
from tests.support.containers import within
from tests.support.tts_standin import StandIn

OPERATOR = Scope.operator()


async def adopt(c: Container, serial: str = FIRST) -> dict[str, Any]:
    async with c.tts_sync() as tts:
        return await tts.adopt(serial=serial, actor="cli:ops")


async def device_id_of(c: Container, serial: str) -> str:
    device, _creds, _events = await device_service.get_device_detail(
        c.uow(), scope=OPERATOR, serial=serial
    )
    return str(device.id)


async def rewrite_records(c: Container, **values: Any) -> None:
    """Edit provisiond's records behind its back (a restored backup, an old version)."""
    async with c.uow() as uow:
        await uow._conn.execute(update(tts_devices).values(**values))  # type: ignore[union-attr]
        await uow.commit()


async def forget_records(c: Container) -> None:
    async with c.uow() as uow:
        await uow._conn.execute(tts_devices.delete())  # type: ignore[union-attr]
        await uow.commit()


def test_adopting_an_end_device_with_the_same_id(database_url: str, standin: StandIn) -> None:
    standin.plant(
        FIRST_ID,
        dev_eui=FIRST,
        join_eui=JOIN_EUI,
        name="Field trial meter",
        attributes={"owner": "field-team"},
    )
    settings = settings_for(database_url, standin)

    async def work(c: Container) -> Any:
        await import_meters(c)
        await settle(c)
        result = await adopt(c)
        return result, await device_id_of(c, FIRST), await state(c)

    result, owner, (records, pending, events) = within(settings, work)
    assert result == {
        "serial": FIRST,
        "application_id": "kanarra-meters",
        "end_device_id": FIRST_ID,
        "status": "registered",
        "error": None,
    }
    identity = standin.end_device(FIRST_ID)
    assert identity is not None
    assert identity["attributes"] == {
        "owner": "field-team",
        "provisiond-device-id": owner,
        "provisiond-serial": FIRST,
    }  # theirs kept, ours added
    assert standin.end_device(FIRST_ID, "js")["root_keys"]["app_key"]["key"] == APP_KEY  # type: ignore[index]
    assert (records[FIRST].status, records[FIRST].origin) == ("registered", "adopted")
    assert pending == []
    [adopted] = kinds(events, "lorawan.adopted")
    assert (adopted.actor, adopted.serial, adopted.data["end_device_id"]) == (
        "cli:ops",
        FIRST,
        FIRST_ID,
    )
    assert adopted.data["attributes_before"] == {"owner": "field-team"}
    assert adopted.group_id is not None  # seen in the device's group's scope
    assert [e.type.value for e in events].index("lorawan.registered") < [
        e.type.value for e in events
    ].index("lorawan.adopted")  # latest first

    async def release(c: Container) -> Any:
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
        return await state(c)

    records, _pending, events = within(settings, release)
    assert standin.devices("is") == {SECOND_ID}  # adopted, so provisiond's to remove
    assert FIRST not in records
    assert [e.serial for e in kinds(events, "lorawan.removed")] == [FIRST]


def test_adopting_an_end_device_under_another_id_and_finding_it_after_a_restore(
    database_url: str, standin: StandIn
) -> None:
    standin.plant("meter-kitchen", dev_eui=FIRST, join_eui=JOIN_EUI, name="Kitchen meter")
    settings = settings_for(database_url, standin)

    async def work(c: Container) -> Any:
        await import_meters(c)
        await settle(c)
        result = await adopt(c)
        async with c.tts_sync() as tts:
            in_step = (await tts.sync_all()).as_dict()
        return result, in_step, await state(c)

    result, in_step, (records, _pending, _events) = within(settings, work)
    assert (result["end_device_id"], result["status"]) == ("meter-kitchen", "registered")
    assert (records[FIRST].end_device_id, records[FIRST].origin) == ("meter-kitchen", "adopted")
    assert in_step["registered"] == []
    assert in_step["waiting"] == {}
    for component in ("is", "js", "ns", "as"):  # no eui-… beside it
        assert standin.devices(component) == {"meter-kitchen", SECOND_ID}

    # provisiond's database is restored from a backup made before the adoption: The Things
    # Stack's mark tells it the end device is its own, under the adopted ID
    standin.requests.clear()

    async def restored(c: Container) -> Any:
        await forget_records(c)
        async with c.tts_sync() as tts:
            report = (await tts.sync_all()).as_dict()
        return report, await state(c)

    report, (records, _pending, _events) = within(settings, restored)
    assert len(report["registered"]) == 2
    assert report["waiting"] == {}
    assert (records[FIRST].end_device_id, records[FIRST].status) == ("meter-kitchen", "registered")
    assert standin.devices("is") == {"meter-kitchen", SECOND_ID}

    async def delete(c: Container) -> Any:
        await device_service.delete_device(
            c.uow(), scope=OPERATOR, serial=FIRST, actor="tests", now=c.now()
        )
        await settle(c)
        return await state(c)

    records, _pending, events = within(settings, delete)
    assert standin.devices("is") == standin.devices("js") == {SECOND_ID}
    assert [e.serial for e in kinds(events, "lorawan.removed")] == [FIRST]


def test_a_restored_database_finds_its_own_end_devices(database_url: str, standin: StandIn) -> None:
    settings = settings_for(database_url, standin)

    async def work(c: Container) -> Any:
        await import_meters(c)
        await settle(c)
        await forget_records(c)  # the backup predates the registrations
        async with c.tts_sync() as tts:
            report = (await tts.sync_all()).as_dict()
        return report, await state(c)

    report, (records, _pending, events) = within(settings, work)
    assert len(report["registered"]) == 2
    assert report["waiting"] == {}
    assert {r.status for r in records.values()} == {"registered"}
    assert kinds(events, "lorawan.conflict") == []
    assert [r.method for r in standin.requests if r.component == "is"][-3:] == [
        "POST",
        "GET",
        "PUT",
    ]  # 409: read the mark, then update its own


def test_end_devices_registered_before_the_mark_are_still_provisionds(
    database_url: str, standin: StandIn
) -> None:
    settings = settings_for(database_url, standin)

    def strip_marks() -> None:  # what provisiond wrote before the mark: the serial only
        for device_id in (FIRST_ID, SECOND_ID):
            identity = standin.end_device(device_id)
            if identity is not None:
                identity["attributes"].pop("provisiond-device-id")
                standin.stores["is"][("kanarra-meters", device_id)] = identity

    async def register(c: Container) -> None:
        await import_meters(c)
        await settle(c)
        await rewrite_records(c, origin="legacy")  # as migration 0012 leaves them

    within(settings, register)
    strip_marks()

    async def delete_then_sync(c: Container) -> Any:
        await device_service.delete_device(
            c.uow(), scope=OPERATOR, serial=SECOND, actor="tests", now=c.now()
        )
        await settle(c)
        async with c.tts_sync() as tts:
            marked = (await tts.sync_all()).as_dict()
        return marked, await state(c), await device_id_of(c, FIRST)

    marked, (records, _pending, events), owner = within(settings, delete_then_sync)
    assert standin.devices("is") == standin.devices("js") == {FIRST_ID}  # removed: its own
    assert [e.serial for e in kinds(events, "lorawan.removed")] == [SECOND]
    assert marked["registered"] == [str(records[FIRST].device_id)]  # registered again
    assert records[FIRST].origin == "created"
    first = standin.end_device(FIRST_ID)
    assert first is not None
    assert first["attributes"] == {"provisiond-device-id": owner, "provisiond-serial": FIRST}

    # a legacy record whose end device has been replaced by someone else's since
    standin.forget(FIRST_ID)
    standin.plant(FIRST_ID, dev_eui=FIRST, join_eui=JOIN_EUI)

    async def replaced(c: Container) -> Any:
        await rewrite_records(c, origin="legacy")
        async with c.tts_sync() as tts:
            return (await tts.sync_all()).as_dict()

    report = within(settings, replaced)
    assert list(report["waiting"]) == [str(records[FIRST].device_id)]
    assert standin.end_device(FIRST_ID, "js")["root_keys"]["app_key"]["key"] != APP_KEY  # type: ignore[index]


def test_adoption_is_refused_when_there_is_nothing_to_adopt_or_it_cannot_be_this_device(
    database_url: str, standin: StandIn
) -> None:
    settings = settings_for(database_url, standin)
    standin.plant("spare-7", dev_eui=SECOND, join_eui=JOIN_EUI, application="kanarra-spare")

    async def refusal(c: Container, serial: str = FIRST) -> ProvisiondError:
        before = (len(standin.requests), await state(c))
        with pytest.raises(ProvisiondError) as err:
            await adopt(c, serial)
        writes = [r for r in standin.requests[before[0] :] if r.method != "GET"]
        assert writes == []  # nothing changed in The Things Stack …
        assert await state(c) == before[1]  # … nor here: no record, no event
        return err.value

    async def work(c: Container) -> list[tuple[type[ProvisiondError], str]]:
        refused = [await refusal(c, "NO-SUCH-DEVICE")]
        await import_meters(c)
        await settle(c)  # the second waits: spare-7 holds its DevEUI in another application
        refused.append(await refusal(c))  # provisiond registered it: its own already
        standin.forget(FIRST_ID)
        refused.append(await refusal(c))  # gone: nothing there
        standin.plant(FIRST_ID, dev_eui=FIRST, join_eui="70B3D57ED0000099")
        refused.append(await refusal(c))  # another radio's EUIs under its ID
        standin.forget(FIRST_ID)
        standin.plant(
            FIRST_ID,
            dev_eui=FIRST,
            join_eui=JOIN_EUI,
            attributes={f"tag-{n}": "x" for n in range(10)},
        )
        refused.append(await refusal(c))  # no room for the mark
        refused.append(await refusal(c, SECOND))  # in another application
        standin.fail("is", 503, method="GET")
        refused.append(await refusal(c))  # The Things Stack does not answer
        admin = await directory.create_user(
            c.uow(),
            scope=OPERATOR,
            spec=UserSpec(
                "ops@kanarra.example",
                password="correct horse battery",
                role="admin",
                group="Kanarra",
            ),
            actor="tests",
            now=c.now(),
        )
        await release_device(c.uow(), user=admin, serial=FIRST, now=c.now())
        await settle(c)
        refused.append(await refusal(c))  # released: provisiond registers it no more
        return [(type(e), e.detail) for e in refused]

    refused = within(settings, work)
    assert [kind for kind, _ in refused] == [
        DeviceNotFound,
        NothingToAdopt,
        NothingToAdopt,
        AdoptionRefused,
        AdoptionRefused,
        AdoptionRefused,
        TtsUnavailable,
        InvalidTransition,
    ]
    details = [detail for _, detail in refused]
    assert (
        f"end device {FIRST_ID} in application kanarra-meters is provisiond's already" in details[1]
    )
    assert f"has no end device {FIRST_ID} in application kanarra-meters to adopt" in details[2]
    assert "JoinEUI 70B3D57ED0000099" in details[3]
    assert "10 attributes" in details[4]
    assert "spare-7, is in application kanarra-spare" in details[5]
    assert "503" in details[6]
    assert "is not claimed" in details[7]
