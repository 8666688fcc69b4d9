"""Devices that speak only MQTT prove possession through the user's broker: a claim button
press published to Mosquitto proves the open claim on the claimer's live page; a
ThingsBoard-style claim request opens a device window; malformed messages are counted and
dropped. Real Mosquitto, real server, on both backends."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from provisiond.settings import Settings, load_settings
from tests.integration.web.conftest import Server
from tests.integration.web.test_pages import fleet, read_events, signed_in  # noqa: F401
from tests.support.broker_accounts import name
from tests.support.mosquitto import Broker, Device


@pytest.fixture
def server_settings(database_url: str, broker: Broker) -> Settings:
    return load_settings(
        database_url=database_url,
        log_level="warning",
        claims__rate_per_minute=1000,
        sessions__login_rate_per_minute=1000,
        broker={"kind": "mosquitto-dynsec", "url": broker.url, "timeout_seconds": 5},
    )


def wait_until(check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("the condition did not become true")
        time.sleep(0.05)


def online(broker: Broker, token: str) -> Device:
    """The device, connected once the background loops have made its account."""
    holder: dict[str, Device] = {}

    def attempt() -> bool:
        device = Device(broker.port, name(token), token)
        if device.connect() == 0:
            holder["d"] = device
            return True
        device.close()
        return False

    wait_until(attempt)
    return holder["d"]


def test_an_mqtt_button_press_proves_the_claim(
    server: Server,
    fleet: dict[str, str],  # noqa: F811
    api: httpx.Client,
    broker: Broker,
) -> None:
    subscriber = server.app.state.container.device_events
    assert subscriber is not None
    wait_until(subscriber.subscribed.is_set)
    btn = api.get("/api/v1/devices/BTN-1").json()
    device = online(broker, fleet["BTN-1"])
    try:
        tech = signed_in(server, "tech@kanarra.example")
        r = tech.post("/provision", {"serial": "BTN-1", "target": "me"})
        assert r.status_code == 303
        claim_path = r.headers["location"]
        events: queue.Queue[tuple[str, dict[str, object]]] = queue.Queue()
        ready = threading.Event()
        threading.Thread(
            target=read_events, args=(server, tech, claim_path, events, ready), daemon=True
        ).start()
        assert ready.wait(10)
        assert events.get(timeout=5)[1]["status"] == "open"

        # noise first: a malformed claim request and a topic that is no event
        device.publish(f"devices/{btn['id']}/claim", b"\xff not json")
        device.publish(f"devices/{btn['id']}/claim/button", b"")
        assert events.get(timeout=10)[0] == "proven"
        wait_until(lambda: subscriber.counts["handled"] >= 1)
        assert subscriber.counts["malformed"] == 1
        assert tech.post(f"{claim_path}/cancel").status_code == 303  # ends the event stream
        assert events.get(timeout=10)[0] == "cancelled"
    finally:
        device.close()


def test_an_mqtt_claim_request_opens_a_device_window(
    server: Server,
    fleet: dict[str, str],  # noqa: F811
    api: httpx.Client,
    broker: Broker,
) -> None:
    subscriber = server.app.state.container.device_events
    wait_until(subscriber.subscribed.is_set)
    sec = api.get("/api/v1/devices/SEC-1").json()
    device = online(broker, fleet["SEC-1"])
    try:
        device.publish(
            f"devices/{sec['id']}/claim", b'{"secretKey": "s3cret-from-mqtt", "durationMs": 60000}'
        )
        device.publish(f"devices/{sec['id']}/claim", b'{"secretKey": "", "durationMs": 5}')
        # durationMs is optional, as in ThingsBoard: the profile's claim window (120 s)
        device.publish(f"devices/{sec['id']}/claim", b'{"secretKey": "no-duration"}')

        def opened() -> bool:
            timeline = api.get("/api/v1/devices/SEC-1").json()["events"]
            return sum(e["type"] == "claim.window-opened" for e in timeline) == 2

        wait_until(opened)
        wait_until(lambda: subscriber.counts["refused"] >= 1)
    finally:
        device.close()
    # another device cannot speak for SEC-1: the broker refuses the topic
    other = online(broker, fleet["PLAIN-1"])
    try:
        handled = subscriber.counts["handled"]
        other.publish(f"devices/{sec['id']}/claim/button", b"")
        other.publish(
            f"devices/{api.get('/api/v1/devices/PLAIN-1').json()['id']}/claim",
            b'{"secretKey": "plain-secret", "durationMs": 60000}',
        )
        wait_until(lambda: subscriber.counts["handled"] >= handled + 1)
        # had the refused publish gone through, it would have been handled first
        assert subscriber.counts["handled"] == handled + 1
    finally:
        other.close()


def test_the_subscriber_reconnects_after_the_broker_restarts(
    server: Server,
    fleet: dict[str, str],  # noqa: F811
    api: httpx.Client,
    broker: Broker,
) -> None:
    subscriber = server.app.state.container.device_events
    wait_until(subscriber.subscribed.is_set)
    device = online(broker, fleet["PLAIN-2"])  # its account exists before the restart
    device.close()
    broker.restart()
    wait_until(lambda: subscriber.counts["connections"] >= 2)
    plain = api.get("/api/v1/devices/PLAIN-2").json()
    device = online(broker, fleet["PLAIN-2"])
    try:
        malformed = subscriber.counts["malformed"]
        device.publish(f"devices/{plain['id']}/claim", b"[1, 2]")
        wait_until(lambda: subscriber.counts["malformed"] == malformed + 1)
    finally:
        device.close()
