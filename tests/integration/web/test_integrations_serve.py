"""`provisiond serve` runs the integrations by itself: a device registered over the API gets
its Mosquitto account, and the group's webhook hears of it, with nothing else driving."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from provisiond.settings import Settings, load_settings
from tests.integration.web.conftest import Server
from tests.integration.web.test_provisioning import make_profile, provision
from tests.support.broker_accounts import name
from tests.support.mosquitto import Broker, Device
from tests.support.receiver import Receiver, receiver


@pytest.fixture
def hook_receiver() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


@pytest.fixture
def server_settings(database_url: str, broker: Broker) -> Settings:
    return load_settings(
        database_url=database_url,
        log_level="warning",
        broker={"kind": "mosquitto-dynsec", "url": broker.url, "timeout_seconds": 5},
        webhooks__allow_networks=["127.0.0.1"],
    )  # the receiver's


def wait_until(check: object, timeout: float = 30) -> None:
    """Poll a condition (the background loops run on their own schedule)."""
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("the condition did not become true")
        time.sleep(0.05)


def test_serve_makes_broker_accounts_and_delivers_webhooks(
    api: httpx.Client, broker: Broker, hook_receiver: Receiver
) -> None:
    assert api.post("/api/v1/groups", json={"path": "Org/Site"}).status_code == 201
    hook = api.post(
        "/api/v1/webhooks",
        json={"group": "Org", "url": hook_receiver.url, "events": ["device.registered"]},
    )
    assert hook.status_code == 201, hook.text
    assert hook.json()["secret"].startswith("whsec_")
    created = api.post("/api/v1/devices", json={"serial": "SRV-1", "group": "Org/Site"})
    assert created.status_code == 201
    token = created.json()["credential"]["secret"]

    (request,) = hook_receiver.wait_for(1)
    assert json.loads(request.body)["device"]["serial"] == "SRV-1"

    def connected() -> bool:
        device = Device(broker.port, name(token), token)
        try:
            return device.connect() == 0
        finally:
            device.close()

    wait_until(connected)
    deliveries = f"/api/v1/webhooks/{hook.json()['id']}/deliveries"
    # the receiver answers before the deliverer records the attempt
    wait_until(lambda: api.get(deliveries).json()[0]["status"] != "pending")
    log = api.get(deliveries).json()
    assert [(d["status"], d["last_status_code"]) for d in log] == [("delivered", 200)]
    shown = api.get(f"/api/v1/webhooks/{hook.json()['id']}").json()
    assert shown["deliveries"] == {"delivered": 1}
    assert "secret" not in shown


def test_self_provisioned_devices_get_their_broker_account(
    server: Server, api: httpx.Client, broker: Broker
) -> None:
    key, secret = make_profile(api, name="gw", credentials=["mqtt-basic", "access-token"])
    basic = provision(server, key, secret, deviceName="SELF-1", credentialsType="MQTT_BASIC")
    token = provision(server, key, secret, deviceName="SELF-2", credentialsType="ACCESS_TOKEN")
    assert basic["status"] == token["status"] == "SUCCESS"
    creds = basic["credentialsValue"]

    def connects(username: str, password: str, client_id: str = "") -> bool:
        device = Device(broker.port, username, password, client_id)
        try:
            return device.connect() == 0
        finally:
            device.close()

    wait_until(lambda: connects(creds["userName"], creds["password"], creds["clientId"]))
    wait_until(lambda: connects(name(token["credentialsValue"]), token["credentialsValue"]))
    assert not connects(creds["userName"], creds["password"], "another-client")
    shown = api.get("/api/v1/devices/SELF-1").json()
    device = Device(broker.port, creds["userName"], creds["password"], creds["clientId"])
    try:
        assert device.connect() == 0
        assert device.subscribe(f"devices/{shown['id']}/config") < 0x80
    finally:
        device.close()
