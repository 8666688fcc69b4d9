"""What the tests of The Things Stack share: the stand-in, settings pointing at it, a
claimed pair of imported meters, and running the queue until it is empty."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest

from provisiond.bootstrap import Container
from provisiond.domain.scope import Scope
from provisiond.services import directory
from provisiond.services.lorawan_import import register_lorawan
from provisiond.services.outbox import Dispatcher
from provisiond.settings import Settings, load_settings
from tests.support.containers import NullSink
from tests.support.tts_standin import StandIn, tts_standin

OPERATOR = Scope.operator()

APP_KEY = "2B7E151628AED2A6ABF7158809CF4F3C"
JOIN_EUI = "70B3D57ED0000010"
ROWS = (
    "Device EUI, Join EUI, Application Key\n"
    f"0018B20000000101, {JOIN_EUI}, {APP_KEY}\n"
    f"0018B20000000102, {JOIN_EUI}, 000102030405060708090A0B0C0D0E0F\n"
)


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with tts_standin({"kanarra-meters", "kanarra-spare"}) as s:
        yield s


def settings_for(
    database_url: str, standin: StandIn, *, passphrase: str | None = None, **tts: Any
) -> Settings:
    return load_settings(
        database_url=database_url,
        log_level="warning",
        device_key_passphrase=passphrase,
        tts={
            "url": standin.url,
            "api_key": standin.api_key,
            "application_id": "kanarra-meters",
            "frequency_plan_id": "EU_863_870_TTN",
            "timeout_seconds": 5,
            **tts,
        },
    )


async def settle(c: Container) -> int:
    """Hand the queued events to the queue of The Things Stack and work it off."""
    dispatcher = Dispatcher(c.uow, work=["tts"])
    while await dispatcher.dispatch():
        pass
    handled = 0
    async with c.tts_sync() as tts:
        while n := await tts.apply_pending():
            handled += n
    return handled


async def import_meters(
    c: Container, group: str | None = "Kanarra/Meters", profile: str | None = None, rows: str = ROWS
) -> None:
    await directory.create_group(
        c.uow(), scope=OPERATOR, path="Kanarra/Meters", actor="tests", now=c.now()
    )
    await register_lorawan(
        c.uow(),
        stream=io.BytesIO(rows.encode()),
        sealer=c.sealer,
        sink=NullSink(),
        actor="tests",
        now=c.now(),
        group=group,
        profile=profile,
        source="meters.csv",
    )
