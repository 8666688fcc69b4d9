"""What the broker-account tests share: settling the queues, making devices, connecting."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from provisiond.bootstrap import Container
from provisiond.domain.device import DeviceSpec
from provisiond.domain.scope import Scope
from provisiond.services import devices as device_service
from provisiond.services.outbox import Dispatcher
from tests.support.mosquitto import Broker, Device

OPERATOR = Scope.operator()

REFUSED = {0x86, 0x87}  # bad user name or password, not authorised


async def settle(c: Container) -> int:
    """Run the outbox and the broker's queue until both are empty; devices brought in step."""
    dispatcher = Dispatcher(c.uow, work=["broker"])
    while await dispatcher.dispatch():
        pass
    done = 0
    async with c.broker_sync() as sync:
        while n := await sync.apply_pending():
            done += n
    return done


def name(token: str) -> str:
    """The MQTT user name of a token provisiond issued: its public half (before the dot)."""
    return token.partition(".")[0]


def make_device(c: Container, serial: str) -> Awaitable[Any]:
    return device_service.create_device(
        c.uow(),
        scope=OPERATOR,
        spec=DeviceSpec(serial),
        actor="tests",
        now=c.now(),
        sealer=c.broker_sealer,
    )


def connect(
    broker: Broker, username: str, password: str | None, client_id: str = ""
) -> tuple[Any, Device]:
    device = Device(broker.port, username, password, client_id)
    return device.connect(), device
