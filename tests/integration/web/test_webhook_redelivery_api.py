"""Redelivery through the API against a real server on loopback (its own deliverer running):
a delivery that gave up against a receiver answering 500 goes out again, signed, once the
receiver answers 200 and a group admin asks; another customer's admin gets not-found."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from provisiond.domain.webhooks import verify
from provisiond.settings import Settings, load_settings
from tests.integration.web.conftest import Server
from tests.support.receiver import Receiver, receiver


@pytest.fixture
def server_settings(database_url: str) -> Settings:
    """The receiver is on loopback (allowed); a delivery gives up after its first attempt."""
    return load_settings(
        database_url=database_url,
        log_level="warning",
        webhooks__allow_networks=["127.0.0.0/8"],
        webhooks__max_attempts=1,
    )


@pytest.fixture
def flaky() -> Iterator[Receiver]:
    with receiver() as r:
        r.answer = lambda _n: 500
        yield r


def token(api: httpx.Client, name: str, group: str) -> str:
    r = api.post("/api/v1/tokens", json={"name": name, "group": group, "role": "admin"})
    assert r.status_code == 201, r.text
    return str(r.json()["secret"])


def wait_for_status(client: httpx.Client, hook: str, status: str) -> dict[str, object]:
    """The webhook's only delivery, once the server's deliverer has given it ``status``."""
    deadline = time.monotonic() + 30
    while True:
        log = client.get(f"/api/v1/webhooks/{hook}/deliveries").json()
        if log and log[0]["status"] == status:
            return dict(log[0])
        assert time.monotonic() < deadline, log
        time.sleep(0.05)


def test_a_group_admin_resends_what_gave_up_and_another_customer_cannot(
    server: Server, api: httpx.Client, flaky: Receiver
) -> None:
    for path in ("Org/West/Anaheim", "Org/East"):
        assert api.post("/api/v1/groups", json={"path": path}).status_code == 201
    made = api.post("/api/v1/webhooks", json={"group": "Org/West", "url": flaky.url})
    assert made.status_code == 201, made.text
    hook, secret = made.json()["id"], made.json()["secret"]
    west = server.client(token(api, "west", "Org/West"))
    east = server.client(token(api, "east", "Org/East"))
    r = api.post("/api/v1/devices", json={"serial": "RA-1", "group": "Org/West/Anaheim"})
    assert r.status_code == 201, r.text
    flaky.wait_for(1)
    gave_up = wait_for_status(west, hook, "failed")

    # the attacker: another customer's admin
    stolen = east.post(f"/api/v1/webhooks/deliveries/{gave_up['id']}/redeliver")
    absent = east.post("/api/v1/webhooks/deliveries/999999/redeliver")
    assert stolen.status_code == absent.status_code == 404
    assert stolen.json()["code"] == absent.json()["code"] == "delivery-not-found"
    assert east.post("/api/v1/webhooks/redeliver", json={"webhook_id": hook}).status_code == 404
    assert east.post("/api/v1/webhooks/redeliver", json={}).json() == {"queued": 0}
    assert wait_for_status(west, hook, "failed")["attempts"] == 1

    flaky.answer = lambda _n: 200
    r = west.post(f"/api/v1/webhooks/deliveries/{gave_up['id']}/redeliver")
    assert r.status_code == 200, r.text
    assert r.json() == {"queued": 1}
    assert west.post("/api/v1/webhooks/redeliver", json={"webhook_id": hook}).json() == {
        "queued": 0
    }  # nothing failed any more: pending or delivered, never queued twice
    first, resent = flaky.wait_for(2)
    assert resent.body == first.body
    assert resent.headers["x-provisiond-delivery"] == str(gave_up["id"])
    assert verify(
        secret, resent.headers["x-provisiond-signature"], resent.body, now=int(time.time())
    )
    assert wait_for_status(west, hook, "delivered")["last_status_code"] == 200
    again = west.post(f"/api/v1/webhooks/deliveries/{gave_up['id']}/redeliver")
    assert (again.status_code, again.json()["code"]) == (409, "delivery-delivered")
    bad = west.post("/api/v1/webhooks/redeliver", json={"since": "yesterday"})
    assert bad.status_code == 422
    events = west.get("/api/v1/events", params={"kind": "webhook.redelivered"}).json()
    assert [e["data"]["delivery_id"] for e in events["items"]] == [gave_up["id"]]
    assert len(flaky.requests) == 2
