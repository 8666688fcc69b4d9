"""Two `provisiond serve` processes on one PostgreSQL behave as one service for claiming: a
claim started on A and proven through B completes, and the event raised on B reaches the
page connected to A (LISTEN/NOTIFY)."""

from __future__ import annotations

import csv
import io
import queue
import threading
from collections.abc import Iterator

import httpx
import pytest

from provisiond.settings import load_settings
from tests.integration.web.conftest import Server, make_token
from tests.integration.web.test_pages import PASSWORD, Browser, read_events
from tests.support.processes import Instance

pytestmark = [pytest.mark.postgres, pytest.mark.slow]  # two server processes racing


@pytest.fixture
def instances(postgres_url: str) -> Iterator[tuple[Server, Server]]:
    settings = load_settings(database_url=postgres_url, log_level="warning")
    token = make_token(settings)
    env = {
        "PROVISIOND_CLAIMS__RATE_PER_MINUTE": "1000",
        "PROVISIOND_SESSIONS__LOGIN_RATE_PER_MINUTE": "1000",
        "PROVISIOND_LOG_LEVEL": "warning",
    }
    started = [Instance(postgres_url, env=env) for _ in range(2)]
    try:
        yield tuple(Server(i.url, token, settings) for i in started)  # type: ignore[misc]
    finally:
        for instance in started:
            instance.stop()


def test_a_claim_started_on_one_instance_is_proven_through_the_other(
    instances: tuple[Server, Server],
) -> None:
    a, b = instances
    with a.client() as api:
        assert api.post("/api/v1/groups", json={"path": "Kanarra/West"}).status_code == 201
        assert (
            api.post(
                "/api/v1/users",
                json={
                    "email": "tech@kanarra.example",
                    "password": PASSWORD,
                    "role": "installer",
                    "group": "Kanarra",
                },
            ).status_code
            == 201
        )
        assert (
            api.post(
                "/api/v1/profiles",
                json={"name": "p-button", "claim_proof": "button", "claim_window": 120},
            ).status_code
            == 201
        )
        made = api.post(
            "/api/v1/devices/import",
            content="serial\nBTN-9\n",
            params={"profile": "p-button"},
            headers={"Content-Type": "text/csv"},
        )
        assert made.status_code == 201, made.text
        device_token = next(csv.DictReader(io.StringIO(made.text)))["secret"]

    tech = Browser(a)
    assert tech.sign_in("tech@kanarra.example").status_code == 303
    started = tech.post("/provision", {"serial": "BTN-9", "target": "me"})
    assert started.status_code == 303
    claim_path = started.headers["location"]
    events: queue.Queue[tuple[str, dict[str, object]]] = queue.Queue()
    ready = threading.Event()
    threading.Thread(
        target=read_events, args=(a, tech, claim_path, events, ready), daemon=True
    ).start()
    assert ready.wait(10)
    assert events.get(timeout=5)[1]["status"] == "open"

    pressed = httpx.post(f"{b.url}/api/v1/{device_token}/claim/button", timeout=30)
    assert pressed.json()["proven"] is True  # B saw A's claim: one database
    assert events.get(timeout=10)[0] == "proven"  # and A's page heard it from B

    assert tech.post(f"{claim_path}/cancel").status_code == 303  # end the stream
    assert events.get(timeout=10)[0] == "cancelled"
    tech.http.close()


def _race(
    a: Server, b: Server, key: str, secret: str, names: list[str]
) -> dict[tuple[str, str], dict[str, object]]:
    """Each name sent to both instances at once (four clients each); every answer."""
    answers: dict[tuple[str, str], dict[str, object]] = {}
    barrier = threading.Barrier(8)

    def worker(server: Server, lane: int) -> None:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            barrier.wait()
            for name in names[lane::4]:
                r = client.post(
                    "/api/v1/provision",
                    json={
                        "provisionDeviceKey": key,
                        "provisionDeviceSecret": secret,
                        "deviceName": name,
                    },
                )
                answers[(server.url, name)] = r.json()

    threads = [
        threading.Thread(target=worker, args=(server, lane))
        for lane in range(4)
        for server in (a, b)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert len(answers) == 2 * len(names)
    return answers


@pytest.mark.parametrize("strategy", ["allow-create", "pre-provisioned"])
def test_the_same_names_on_two_instances_at_once_succeed_once_each(
    instances: tuple[Server, Server], strategy: str
) -> None:
    """A factory mistake (two devices sharing a name), or an attacker racing the real
    device: each name arrives on both instances at the same instant. Exactly one SUCCESS per
    name, one device, one credential; the other hears ThingsBoard's FAILURE."""
    a, b = instances
    names = [f"RACE-{n:03d}" for n in range(200)]
    with a.client() as api:
        made = api.post(
            "/api/v1/profiles",
            json={
                "name": "race",
                "strategy": strategy,
                "rate_per_minute": 100000,
                "source_rate_per_minute": 100000,
            },
        )
        assert made.status_code == 201, made.text
        if strategy == "pre-provisioned":
            imported = api.post(
                "/api/v1/devices/import",
                params={"profile": "race"},
                content="serial\n" + "\n".join(names) + "\n",
                headers={"Content-Type": "text/csv"},
            )
            assert imported.status_code == 201, imported.text
    key, secret = made.json()["key"], made.json()["secret"]
    answers = _race(a, b, key, secret, names)
    for name in names:
        pair = [answers[(server.url, name)] for server in (a, b)]
        statuses = sorted(str(p["status"]) for p in pair)
        assert statuses == ["FAILURE", "SUCCESS"], (name, pair)
        assert {"status": "FAILURE", "errorMsg": "Failed to provision device!"} in pair
    with a.client() as api:
        listed = api.get("/api/v1/devices", params={"limit": 500}).json()["items"]
        assert sorted(d["serial"] for d in listed) == names
        for name in names:  # one credential works, and it is the winner's
            detail = api.get(f"/api/v1/devices/{name}").json()
            active = [c for c in detail["credentials"] if c["revoked_at"] is None]
            assert len(active) == 1, name
            assert len(detail["credentials"]) == (1 if strategy == "allow-create" else 2)
