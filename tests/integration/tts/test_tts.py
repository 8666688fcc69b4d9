"""The Things Stack, against a local stand-in of its end device registries built from its
published API definition (no server of theirs runs here), on both backends: exact bodies
and field masks, idempotent repeats, retries, roll-back of half-registered devices,
release, deletion and swapped hardware."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, TypeVar

import pytest

from provisiond.bootstrap import Container
from provisiond.domain.profiles import ProfileSpec
from provisiond.domain.scope import Scope
from provisiond.domain.users import UserSpec
from provisiond.services import devices as device_service
from provisiond.services import directory
from provisiond.services.claims.ownership import release_device
from provisiond.services.credentials import replace_lorawan_keys
from provisiond.services.profiles import create_profile
from tests.integration.tts.conftest import APP_KEY, import_meters, settings_for, settle
from tests.support.containers import within
from tests.support.tts_standin import StandIn

OPERATOR = Scope.operator()

T = TypeVar("T")


def test_claimed_devices_are_registered_with_the_exact_calls(
    database_url: str, standin: StandIn
) -> None:
    settings = settings_for(database_url, standin, supports_class_c=True)

    async def work(c: Container) -> tuple[int, dict[str, str]]:
        await import_meters(c)  # claimed for a group at import
        handled = await settle(c)
        async with c.uow().read() as uow:
            return handled, {
                r.dev_eui: str(r.device_id) for r in (await uow.tts.records()).values()
            }

    handled, device_ids = within(settings, work)
    assert handled == 2
    assert (
        standin.devices("is")
        == standin.devices("js")
        == standin.devices("ns")
        == standin.devices("as")
        == {"eui-0018b20000000101", "eui-0018b20000000102"}
    )
    calls = [
        r
        for r in standin.requests
        if "0018b20000000101" in r.path
        or (r.body and r.body["end_device"]["ids"]["device_id"] == "eui-0018b20000000101")
    ]
    ids = {
        "device_id": "eui-0018b20000000101",
        "application_ids": {"application_id": "kanarra-meters"},
        "dev_eui": "0018B20000000101",
        "join_eui": "70B3D57ED0000010",
    }
    host = standin.url.removeprefix("http://")
    assert [(r.method, r.path) for r in calls] == [
        ("POST", "/api/v3/applications/kanarra-meters/devices"),
        ("PUT", "/api/v3/js/applications/kanarra-meters/devices/eui-0018b20000000101"),
        ("PUT", "/api/v3/ns/applications/kanarra-meters/devices/eui-0018b20000000101"),
        ("PUT", "/api/v3/as/applications/kanarra-meters/devices/eui-0018b20000000101"),
    ]
    assert calls[0].body == {
        "end_device": {
            "ids": ids,
            "name": "0018B20000000101",
            "attributes": {
                "provisiond-device-id": device_ids["0018B20000000101"],
                "provisiond-serial": "0018B20000000101",
            },
            "network_server_address": host,
            "application_server_address": host,
            "join_server_address": host,
        }
    }
    assert calls[1].body == {
        "end_device": {
            "ids": ids,
            "network_server_address": host,
            "application_server_address": host,
            "root_keys": {"app_key": {"key": APP_KEY}},
        },
        "field_mask": {
            "paths": [
                "application_server_address",
                "ids.application_ids",
                "ids.dev_eui",
                "ids.device_id",
                "ids.join_eui",
                "network_server_address",
                "root_keys.app_key.key",
            ]
        },
    }
    assert calls[2].body == {
        "end_device": {
            "ids": ids,
            "frequency_plan_id": "EU_863_870_TTN",
            "lorawan_version": "MAC_V1_0_3",
            "lorawan_phy_version": "RP001_V1_0_3_REV_A",
            "supports_join": True,
            "supports_class_b": False,
            "supports_class_c": True,
        },
        "field_mask": {
            "paths": [
                "frequency_plan_id",
                "ids.application_ids",
                "ids.dev_eui",
                "ids.device_id",
                "ids.join_eui",
                "lorawan_phy_version",
                "lorawan_version",
                "supports_class_b",
                "supports_class_c",
                "supports_join",
            ]
        },
    }
    assert calls[3].body == {
        "end_device": {"ids": ids},
        "field_mask": {
            "paths": ["ids.application_ids", "ids.dev_eui", "ids.device_id", "ids.join_eui"]
        },
    }
    assert {r.method for r in standin.requests} == {"POST", "PUT"}

    async def again(c: Container) -> tuple[dict[str, Any], list[str]]:
        async with c.tts_sync() as tts:
            report = (await tts.sync_all()).as_dict()
        async with c.uow().read() as uow:
            events = [e.type.value for e in await uow.events.latest(10)]
        return report, events

    before = len(standin.requests)
    report, events = within(settings, again)
    assert report == {
        "registered": [],
        "removed": [],
        "failed": {},
        "retrying": {},
        "waiting": {},
        "skipped": {},
    }
    assert len(standin.requests) == before  # in step: nothing to call
    assert events.count("lorawan.registered") == 2


def test_a_profile_sets_the_network_and_an_existing_record_is_updated(
    database_url: str, standin: StandIn
) -> None:
    settings = settings_for(database_url, standin)

    async def work(c: Container) -> None:
        await create_profile(
            c.uow(),
            scope=OPERATOR,
            spec=ProfileSpec(
                "meters",
                lorawan={
                    "application_id": "kanarra-spare",
                    "frequency_plan_id": "US_902_928_FSB_2",
                    "lorawan_version": "MAC_V1_0_4",
                    "lorawan_phy_version": "RP002_V1_0_3",
                    "supports_class_b": True,
                },
            ),
            actor="tests",
            now=c.now(),
        )
        await import_meters(c, profile="meters")
        await settle(c)

    within(settings, work)
    ns = next(r for r in standin.requests if r.component == "ns").body["end_device"]
    assert (
        ns["frequency_plan_id"],
        ns["lorawan_version"],
        ns["lorawan_phy_version"],
        ns["supports_class_b"],
        ns["supports_class_c"],
    ) == ("US_902_928_FSB_2", "MAC_V1_0_4", "RP002_V1_0_3", True, False)
    assert all("/applications/kanarra-spare/" in r.path for r in standin.requests)

    # registering again after the Identity Server record exists: 409, then an update
    standin.stores["js"].clear()
    standin.requests.clear()

    async def resync(c: Container) -> dict[str, Any]:
        async with c.uow() as uow:
            from provisiond.store.schema import tts_devices

            await uow._conn.execute(tts_devices.delete())  # type: ignore[union-attr]
            await uow.commit()
        async with c.tts_sync() as tts:
            return (await tts.sync_all()).as_dict()

    report = within(settings, resync)
    assert len(report["registered"]) == 2
    updates = [r for r in standin.requests if r.component == "is" and r.method == "PUT"]
    assert len(updates) == 2
    assert updates[0].body["field_mask"] == {
        "paths": [
            "application_server_address",
            "attributes",
            "join_server_address",
            "name",
            "network_server_address",
        ]
    }


def test_release_and_delete_remove_the_end_device(database_url: str, standin: StandIn) -> None:
    settings = settings_for(database_url, standin)

    async def work(c: Container) -> Any:
        await import_meters(c)
        await settle(c)
        await device_service.delete_device(
            c.uow(), scope=OPERATOR, serial="0018B20000000102", actor="tests", now=c.now()
        )
        await settle(c)
        async with c.uow().read() as uow:
            return await uow.tts.records(), [e.type.value for e in await uow.events.latest(5)]

    records, events = within(settings, work)
    assert standin.devices("is") == standin.devices("js") == {"eui-0018b20000000101"}
    assert [r.end_device_id for r in records.values()] == ["eui-0018b20000000101"]
    assert "lorawan.removed" in events

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
        await release_device(c.uow(), user=admin, serial="0018B20000000101", now=c.now())
        await settle(c)
        async with c.uow().read() as uow:
            return await uow.tts.records()

    assert within(settings, release) == {}
    assert standin.devices("is") == standin.devices("ns") == set()
    deletes = [(r.component, r.method) for r in standin.requests if r.method == "DELETE"]
    assert (
        deletes == [("as", "DELETE"), ("ns", "DELETE"), ("js", "DELETE"), ("is", "DELETE")] * 2
    )  # deleted, then released


def test_transient_failures_are_retried_with_backoff(database_url: str, standin: StandIn) -> None:
    settings = settings_for(database_url, standin)
    standin.fail("ns", 503)  # the first device's Network Server call: try again later
    clock: dict[str, Any] = {}

    async def work(c: Container) -> Any:
        clock["now"] = c.now()
        c.clock = lambda: clock["now"]
        await import_meters(c)
        handled = await settle(c)
        async with c.uow().read() as uow:
            pending = await uow.tts.pending.listed()
        early = await settle(c)  # backing off: not yet
        clock["now"] += timedelta(seconds=2)
        later = await settle(c)
        async with c.uow().read() as uow:
            records = await uow.tts.records()
        return handled, pending, early, later, records

    handled, pending, early, later, records = within(settings, work)
    assert handled == 1
    assert len(pending) == 1
    assert pending[0][1] == 1
    assert "503" in (pending[0][3] or "")
    assert (early, later) == (0, 1)
    assert sorted(r.status for r in records.values()) == ["registered", "registered"]
    assert (
        standin.devices("ns")
        == standin.devices("as")
        == {"eui-0018b20000000101", "eui-0018b20000000102"}
    )
    # the retry met the Identity Server record of the first attempt: 409, a look at its
    # mark (provisiond's), then an update
    retried = [r for r in standin.requests if r.component == "is"]
    assert [r.method for r in retried] == ["POST", "POST", "POST", "GET", "PUT"]


def test_permanent_refusals_roll_back_and_are_visible(database_url: str, standin: StandIn) -> None:
    settings = settings_for(database_url, standin)
    standin.fail("js", 403, 403)  # the API key lacks the right to write keys

    async def work(c: Container) -> Any:
        await import_meters(c)
        await settle(c)
        async with c.uow().read() as uow:
            records = await uow.tts.records()
            failed = [e for e in await uow.events.latest(10) if e.type.value == "lorawan.failed"]
            pending = await uow.tts.pending.listed()
        return records, failed, pending

    records, failed, pending = within(settings, work)
    assert standin.devices("is") == set()  # rolled back: nothing half-registered
    assert sorted(r.status for r in records.values()) == ["failed", "failed"]
    assert all("403" in (r.last_error or "") for r in records.values())
    assert len(failed) == 2
    assert "403" in failed[0].data["error"]
    assert pending == []  # not retried until something changes (or lorawan sync)

    async def sync(c: Container) -> dict[str, Any]:
        async with c.tts_sync() as tts:
            return (await tts.sync_all()).as_dict()

    assert len(within(settings, sync)["registered"]) == 2  # the right was granted meanwhile


def test_another_customers_admin_cannot_swap_a_radios_keys(
    database_url: str, standin: StandIn
) -> None:
    """Replacing LoRaWAN keys is scoped in the service: an admin of another customer is told
    the serial does not exist, a viewer of the device's own site is refused, and the device
    keeps its one credential either way."""
    from provisiond.domain.users import Role
    from provisiond.errors import DeviceNotFound, Forbidden

    settings = settings_for(database_url, standin)

    async def swap(c: Container, scope: Scope) -> None:
        await replace_lorawan_keys(
            c.uow(),
            scope=scope,
            serial="0018B20000000101",
            dev_eui="0018B20000000999",
            join_eui="70B3D57ED0000010",
            app_key="000102030405060708090a0b0c0d0e0f",
            actor="tests",
            now=c.now(),
            sealer=c.sealer,
        )

    async def work(c: Container) -> Any:
        await import_meters(c)
        outcomes = []
        for scope in (Scope(Role.ADMIN, "Acme"), Scope(Role.VIEWER, "Kanarra/Meters")):
            try:
                await swap(c, scope)
            except (DeviceNotFound, Forbidden) as err:
                outcomes.append(type(err))
        _device, creds, _events = await device_service.get_device_detail(
            c.uow(), scope=OPERATOR, serial="0018B20000000101"
        )
        return outcomes, creds

    outcomes, creds = within(settings, work)
    assert outcomes == [DeviceNotFound, Forbidden]
    assert [c.revoked_at is None for c in creds] == [True]


def test_a_swapped_radio_replaces_the_end_device_and_keeps_the_history(
    database_url: str, standin: StandIn
) -> None:
    settings = settings_for(database_url, standin)

    async def work(c: Container) -> Any:
        await import_meters(c)
        await settle(c)
        await replace_lorawan_keys(
            c.uow(),
            scope=OPERATOR,
            serial="0018B20000000101",
            dev_eui="00-18-B2-00-00-00-09-99",
            join_eui="70B3D57ED0000010",
            app_key="000102030405060708090a0b0c0d0e0f",
            actor="tests",
            now=c.now(),
            sealer=c.sealer,
        )
        await settle(c)
        _device, creds, events = await device_service.get_device_detail(
            c.uow(), scope=OPERATOR, serial="0018B20000000101"
        )
        return creds, [e.type.value for e in events]

    creds, events = within(settings, work)
    assert standin.devices("is") == {"eui-0018b20000000999", "eui-0018b20000000102"}
    assert (
        standin.end_device("eui-0018b20000000999", "js")["root_keys"]["app_key"]["key"]
        == "000102030405060708090A0B0C0D0E0F"
    )
    assert [c.revoked_at is None for c in creds] == [False, True]
    assert events.count("lorawan.registered") == 2
    assert "lorawan.removed" in events

    async def bad(c: Container) -> None:
        await replace_lorawan_keys(
            c.uow(),
            scope=OPERATOR,
            serial="0018B20000000101",
            dev_eui="XYZ",
            join_eui="70B3D57ED0000010",
            app_key="00",
            actor="tests",
            now=c.now(),
            sealer=c.sealer,
        )

    from provisiond.errors import InvalidInput

    with pytest.raises(InvalidInput) as err:
        within(settings, bad)
    assert [p.field for p in err.value.problems] == ["dev_eui", "app_key"]


def test_missing_network_settings_fail_clearly(database_url: str, standin: StandIn) -> None:
    settings = settings_for(database_url, standin, frequency_plan_id=None)

    async def work(c: Container) -> Any:
        await import_meters(c)
        async with c.tts_sync() as tts:
            return (await tts.sync_all()).as_dict()

    report = within(settings, work)
    assert len(report["failed"]) == 2
    assert all("no frequency_plan_id" in e for e in report["failed"].values())
    assert standin.requests == []
