"""A storm against two `provisiond serve` instances on one PostgreSQL, and one of them is
killed (SIGKILL) in the middle of it. Every request either completed or failed cleanly;
clients that retry (on the other instance, with their device's retry key) finish; no device
is lost or made twice, no credential is issued twice or left working beside another, and no
claim completes twice."""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from provisiond.settings import load_settings
from tests.integration.web.conftest import Server, make_token
from tests.integration.web.test_pages import PASSWORD, Browser
from tests.support.processes import Instance

pytestmark = [pytest.mark.postgres, pytest.mark.slow]  # a fault
DEVICES = 400  # provisioning themselves
CLAIMED = 30  # imported devices, each wanted by two people at once
WORKERS = 8


@pytest.fixture
def instances(postgres_url: str) -> Iterator[tuple[Instance, Instance]]:
    env = {
        "PROVISIOND_CLAIMS__RATE_PER_MINUTE": "100000",
        "PROVISIOND_SESSIONS__LOGIN_RATE_PER_MINUTE": "100000",
        "PROVISIOND_LOG_LEVEL": "warning",
    }
    a, b = Instance(postgres_url, env=env), Instance(postgres_url, env=env)
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()


def sql(url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
        return [tuple(row) for row in conn.execute(query).fetchall()]


class Retrying:
    """A client that goes to its first instance, and to the other when that one fails."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self.clients = [httpx.Client(base_url=u, timeout=30) for u in urls]
        self.failures: list[str] = []

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        for attempt in itertools.count():
            client = self.clients[attempt % 2]
            try:
                r = client.post(path, json=body)
            except httpx.TransportError as err:  # the instance died under the request
                self.failures.append(type(err).__name__)
                continue
            if r.status_code == 503:  # failed cleanly: retry
                self.failures.append("503")
                continue
            return r
        raise AssertionError("unreachable")

    def close(self) -> None:
        for c in self.clients:
            c.close()


def test_a_storm_survives_an_instance_killed_in_the_middle(
    instances: tuple[Instance, Instance], postgres_url: str
) -> None:
    a, b = instances
    token = make_token(load_settings(database_url=postgres_url))
    with httpx.Client(
        base_url=b.url, headers={"Authorization": f"Bearer {token}"}, timeout=60
    ) as api:
        assert api.post("/api/v1/groups", json={"path": "Org"}).status_code == 201
        profile = api.post(
            "/api/v1/profiles",
            json={
                "name": "gw",
                "rate_per_minute": 1_000_000,
                "source_rate_per_minute": 1_000_000,
                "reprovision": "with-proof",
            },
        ).json()
        rows = "serial\n" + "".join(f"CLM-{n:03d}\n" for n in range(CLAIMED))
        assert (
            api.post(
                "/api/v1/devices/import", content=rows, headers={"Content-Type": "text/csv"}
            ).status_code
            == 201
        )
        people = [f"p{n}@org.example" for n in range(2 * CLAIMED)]
        for email in people:
            assert (
                api.post(
                    "/api/v1/users",
                    json={
                        "email": email,
                        "password": PASSWORD,
                        "role": "installer",
                        "group": "Org",
                    },
                ).status_code
                == 201
            )

    answers: dict[str, dict[str, Any]] = {}
    claims: dict[str, int] = {}
    finished: dict[str, int] = {}
    progress = threading.Semaphore(0)
    start = threading.Barrier(WORKERS + 1 + 2 * CLAIMED // 10)
    failures: list[str] = []

    def provisioner(w: int) -> None:
        client = Retrying([a.url, b.url] if w % 2 else [b.url, a.url])
        start.wait()
        for n in range(w, DEVICES, WORKERS):
            serial = f"STM-{n:04d}"
            r = client.post(
                "/api/v1/provision",
                {
                    "provisionDeviceKey": profile["key"],
                    "provisionDeviceSecret": profile["secret"],
                    "deviceName": serial,
                    "retryKey": f"retry-key-of-{serial}-{w:02d}-kept-by-it",
                },
            )
            assert r.status_code == 200, r.text
            answers[serial] = r.json()
            progress.release()
        failures.extend(client.failures)
        client.close()

    def signed_in_at(email: str, n: int) -> Browser | None:
        person = Browser(Server(a.url if n % 2 else b.url, "", None))  # type: ignore[arg-type]
        return person if person.sign_in(email).status_code == 303 else None

    def finish(email: str, n: int, claim_path: str, serial: str) -> int:
        """Name the device and place it (at Org, the one site): 303, or 409 when a finish
        whose answer was lost with A had finished it."""
        for attempt in itertools.count():
            try:
                person = signed_in_at(email, n + attempt)
                if person is None:
                    continue
                page = person.get(claim_path)
                site = re.search(r'<option value="([0-9a-f-]{36})"', page.text)
                if page.status_code == 503 or site is None:
                    continue
                r = person.post(f"{claim_path}/finish", {"name": serial, "group": site.group(1)})
            except httpx.TransportError:
                failures.append("finish transport")
                continue
            if r.status_code != 503:
                return r.status_code
        raise AssertionError("unreachable")

    def claimer(group: int) -> None:
        start.wait()
        for email in people[group * 10 : (group + 1) * 10]:
            n = people.index(email)
            serial = f"CLM-{n % CLAIMED:03d}"
            for attempt in itertools.count():
                try:
                    person = signed_in_at(email, n + attempt)
                    if person is None:
                        continue
                    r = person.post("/provision", {"serial": serial, "target": "me"})
                except httpx.TransportError:
                    failures.append("claim transport")
                    continue
                if r.status_code == 503:
                    continue
                claims[email] = r.status_code
                if r.status_code == 303:  # the claim is theirs: no proof, name and place it
                    finished[email] = finish(email, n + attempt, r.headers["location"], serial)
                break

    threads = [threading.Thread(target=provisioner, args=(w,)) for w in range(WORKERS)]
    threads += [threading.Thread(target=claimer, args=(g,)) for g in range(2 * CLAIMED // 10)]
    for t in threads:
        t.start()
    start.wait()
    for _ in range(DEVICES // 4):  # a quarter of the devices are answered: kill A
        assert progress.acquire(timeout=120)
    a.kill()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads)

    # every device finished, once
    assert len(answers) == DEVICES
    assert all(x["status"] == "SUCCESS" for x in answers.values()), answers
    url = postgres_url
    assert sql(url, "SELECT count(*) FROM devices WHERE serial LIKE 'STM-%'") == [(DEVICES,)]
    # no credential issued twice, and exactly one working credential per device: the one
    # its answer holds (a retry with its retry key got the answer A committed, never sent)
    values = [x["credentialsValue"] for x in answers.values()]
    assert len(set(values)) == DEVICES
    per_device = sql(
        url,
        "SELECT d.serial, count(*) FROM credentials c JOIN devices d ON "
        "d.id = c.device_id WHERE c.revoked_at IS NULL AND d.serial LIKE "
        "'STM-%' GROUP BY d.serial",
    )
    assert sorted(per_device) == [(f"STM-{n:04d}", 1) for n in range(DEVICES)]
    with httpx.Client(base_url=b.url, timeout=30) as device:
        for serial, x in answers.items():
            r = device.post(f"/api/v1/{x['credentialsValue']}/claim/button")
            assert r.status_code == 200, (serial, r.text)  # the answered credential works
    # claims: each device went to exactly one of the two people who wanted it, once
    assert len(claims) == 2 * CLAIMED
    owners = sql(
        url,
        "SELECT d.serial, u.email FROM devices d JOIN users u ON "
        "u.id = d.owner_user_id WHERE d.serial LIKE 'CLM-%'",
    )
    assert len(owners) == CLAIMED
    for serial, email in owners:
        n = int(serial.split("-")[1])
        assert email in (people[n], people[n + CLAIMED])
    claimed = sql(
        url,
        "SELECT serial, count(*) FROM events WHERE type = 'device.claimed' "
        "AND serial LIKE 'CLM-%' GROUP BY serial",
    )
    assert sorted(claimed) == [(f"CLM-{n:03d}", 1) for n in range(CLAIMED)]
    winners = {email for _, email in owners}
    for email, status in claims.items():
        # the winner saw 303, or (its answer lost with A) 409 "claimed already";
        # the other person 409 (claimed, or being claimed) — never two winners
        assert status == 303 or status == 409, (email, status)
        if status == 303:
            assert email in winners
    # each winner's finish claimed the device (303), or had, its answer lost with A (409)
    assert all(status in (303, 409) for status in finished.values()), finished
    assert failures, "A was killed while requests were in flight: some had to be retried"
