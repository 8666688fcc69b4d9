"""The broker stops while devices provision: provisioning goes on, and once the broker is
back `provisiond serve` gives every device its account by itself."""

from __future__ import annotations

import time

import httpx
import pytest

from provisiond.settings import Settings, load_settings
from tests.integration.web.conftest import Server, api, server  # noqa: F401
from tests.integration.web.test_provisioning import make_profile, provision, sql
from tests.support.broker_accounts import name
from tests.support.mosquitto import Broker, Device

pytestmark = pytest.mark.slow  # a fault

DEVICES = 20


@pytest.fixture
def server_settings(sqlite_url: str, broker: Broker) -> Settings:
    return load_settings(
        database_url=sqlite_url,
        log_level="warning",
        broker={
            "kind": "mosquitto-dynsec",
            "url": broker.url,
            "timeout_seconds": 2,
            "sync_interval_seconds": 1,
        },
    )


def connects(broker: Broker, token: str) -> bool:
    device = Device(broker.port, name(token), token)
    try:
        return device.connect() == 0
    finally:
        device.close()


def test_provisioning_goes_on_without_the_broker_and_accounts_catch_up(
    server: Server,  # noqa: F811
    api: httpx.Client,  # noqa: F811
    broker: Broker,
) -> None:
    key, secret = make_profile(api, rate_per_minute=100_000)
    first = provision(server, key, secret, deviceName="BRK-000")
    assert first["status"] == "SUCCESS"
    deadline = time.monotonic() + 30
    while not connects(broker, first["credentialsValue"]):  # the broker loop's own pace
        assert time.monotonic() < deadline
        time.sleep(0.1)

    broker.stop()
    tokens = {}
    for n in range(1, DEVICES + 1):
        answer = provision(server, key, secret, deviceName=f"BRK-{n:03d}")
        assert answer["status"] == "SUCCESS", answer  # the broker is not in the way
        tokens[f"BRK-{n:03d}"] = answer["credentialsValue"]
    # the accounts wait in the database (queued from the outbox), not in memory
    deadline = time.monotonic() + 30
    query = (
        "SELECT d.serial FROM pending_work p JOIN devices d ON d.id = p.device_id "
        "WHERE p.kind = 'broker'"
    )
    while not set(tokens) <= {serial for (serial,) in sql(server, query)}:
        assert time.monotonic() < deadline, sql(server, query)
        time.sleep(0.1)
    broker.start()

    waiting = dict(tokens)
    deadline = time.monotonic() + 120
    while waiting:  # retried with backoff: they arrive within a few of its steps
        assert time.monotonic() < deadline, f"no account yet for {sorted(waiting)}"
        for serial, token in list(waiting.items()):
            if connects(broker, token):
                del waiting[serial]
        time.sleep(0.2)
    assert connects(broker, first["credentialsValue"])  # the one from before still works
