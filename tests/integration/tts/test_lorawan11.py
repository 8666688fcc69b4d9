"""LoRaWAN 1.1 end devices get their NwkKey as well as their AppKey on the Join Server; the
NwkKey comes from the import file (sealed like the AppKey) or a key replacement, and a 1.1
device without one is refused with the reason, never registered half. On both backends."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from provisiond.bootstrap import Container
from provisiond.domain.profiles import ProfileSpec
from provisiond.domain.scope import Scope
from provisiond.errors import ImportInvalid, InvalidInput
from provisiond.services.credentials import replace_lorawan_keys
from provisiond.services.profiles import create_profile
from provisiond.services.sealing import Sealer
from provisiond.store.schema import credentials
from tests.integration.tts.conftest import APP_KEY, JOIN_EUI, import_meters, settings_for, settle
from tests.integration.tts.test_ownership import FIRST, FIRST_ID, SECOND, SECOND_ID, state
from tests.support.containers import within
from tests.support.tts_standin import StandIn

OPERATOR = Scope.operator()

PASSPHRASE = "correct horse battery staple"
NWK_KEY = "F0E1D2C3B4A5968778695A4B3C2D1E0F"
ROWS_1_1 = (
    "Device EUI, Join EUI, Application Key, Network Key\n"
    f"{FIRST}, {JOIN_EUI}, {APP_KEY}, f0e1d2c3 b4a59687 78695a4b 3c2d1e0f\n"
    f"{SECOND}, {JOIN_EUI}, 000102030405060708090A0B0C0D0E0F,\n"
)


async def profile(c: Container, version: str, phy: str) -> None:
    await create_profile(
        c.uow(),
        scope=OPERATOR,
        spec=ProfileSpec(
            "meters", lorawan={"lorawan_version": version, "lorawan_phy_version": phy}
        ),
        actor="tests",
        now=c.now(),
    )


async def sealed_nwk_keys(c: Container) -> dict[str, str | None]:
    async with c.uow().read() as uow:
        rows = await uow._conn.execute(  # type: ignore[union-attr]
            select(credentials.c.lookup, credentials.c.nwk_key_sealed).where(
                credentials.c.type == "lorawan", credentials.c.revoked_at.is_(None)
            )
        )
        return {r.lookup: r.nwk_key_sealed for r in rows}


def test_a_1_1_device_gets_its_nwk_key_and_one_without_is_refused(
    database_url: str, standin: StandIn
) -> None:
    settings = settings_for(database_url, standin, passphrase=PASSPHRASE)

    async def work(c: Container) -> Any:
        await profile(c, "MAC_V1_1", "RP001_V1_1_REV_B")
        await import_meters(c, profile="meters", rows=ROWS_1_1)
        await settle(c)
        return await sealed_nwk_keys(c), await state(c)

    sealed, (records, pending, events) = within(settings, work)
    js = next(r for r in standin.requests if r.component == "js")
    assert js.body["end_device"]["root_keys"] == {
        "app_key": {"key": APP_KEY},
        "nwk_key": {"key": NWK_KEY},
    }
    assert "root_keys.nwk_key.key" in js.body["field_mask"]["paths"]
    assert "root_keys.app_key.key" in js.body["field_mask"]["paths"]
    assert records[FIRST].status == "registered"
    # sealed at rest like the AppKey; a copy of the database does not show it
    assert sealed[SECOND] is None
    assert (sealed[FIRST] or "").startswith("aesgcm1:")
    assert NWK_KEY not in (sealed[FIRST] or "")
    assert Sealer(PASSPHRASE, production=True).unseal(sealed[FIRST] or "") == NWK_KEY
    # the second is a 1.1 device without a NwkKey: refused before any call, with the reason
    assert records[SECOND].status == "failed"
    assert "LoRaWAN 1.1 (MAC_V1_1) needs the device's NwkKey" in (records[SECOND].last_error or "")
    assert [
        r
        for r in standin.requests
        if SECOND_ID in r.path or (r.body and r.body["end_device"]["ids"]["device_id"] == SECOND_ID)
    ] == []
    assert pending == []
    assert [e.serial for e in events if e.type.value == "lorawan.failed"] == [SECOND]

    async def give_key(c: Container) -> Any:
        await replace_lorawan_keys(
            c.uow(),
            scope=OPERATOR,
            serial=SECOND,
            dev_eui="0018B20000000199",
            join_eui=JOIN_EUI,
            app_key=APP_KEY,
            nwk_key="00112233445566778899AABBCCDDEEFF",
            actor="tests",
            now=c.now(),
            sealer=c.sealer,
        )
        await settle(c)
        return await state(c)

    records, _pending, _events = within(settings, give_key)
    assert records["0018B20000000199"].status == "registered"
    keys = standin.end_device("eui-0018b20000000199", "js")
    assert keys is not None
    assert keys["root_keys"]["nwk_key"] == {"key": "00112233445566778899AABBCCDDEEFF"}
    assert standin.devices("is") == {FIRST_ID, "eui-0018b20000000199"}


def test_a_1_0_device_gets_no_nwk_key_even_when_the_file_has_one(
    database_url: str, standin: StandIn
) -> None:
    settings = settings_for(database_url, standin)

    async def work(c: Container) -> None:
        await profile(c, "MAC_V1_0_4", "RP002_V1_0_3")
        await import_meters(c, profile="meters", rows=ROWS_1_1)
        await settle(c)

    within(settings, work)
    calls = [r for r in standin.requests if r.component == "js"]
    assert len(calls) == 2
    assert all(set(r.body["end_device"]["root_keys"]) == {"app_key"} for r in calls)


def test_a_bad_network_key_is_named_and_nothing_is_imported(
    database_url: str, standin: StandIn
) -> None:
    settings = settings_for(database_url, standin)
    rows = (
        f"Device EUI, Join EUI, Application Key, NwkKey\n{FIRST}, {JOIN_EUI}, {APP_KEY}, F0E1D2C3\n"
    )

    async def work(c: Container) -> Any:
        with pytest.raises(ImportInvalid) as err:
            await import_meters(c, rows=rows)
        with pytest.raises(InvalidInput) as replaced:
            await replace_lorawan_keys(
                c.uow(),
                scope=OPERATOR,
                serial="NOPE",
                dev_eui=FIRST,
                join_eui=JOIN_EUI,
                app_key=APP_KEY,
                nwk_key="XYZ",
                actor="tests",
                now=c.now(),
                sealer=c.sealer,
            )
        return err.value, replaced.value, await sealed_nwk_keys(c)

    err, replaced, sealed = within(settings, work)
    assert [(p.line, p.field) for p in err.problems] == [(2, "Network Key")]
    assert "32 hexadecimal digits" in err.problems[0].message
    assert [p.field for p in replaced.problems] == ["nwk_key"]
    assert sealed == {}
