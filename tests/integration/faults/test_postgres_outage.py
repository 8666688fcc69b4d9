"""PostgreSQL goes away for ten seconds under a running `provisiond serve`: requests fail
fast with 503 and Retry-After, nothing is half-written, and the service recovers by itself
when the database returns."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from tests.support.postgres import Cluster, throwaway_cluster
from tests.support.processes import Instance
from tests.support.processes import provisiond as run_cli

pytestmark = [pytest.mark.postgres, pytest.mark.slow]  # a fault
OUTAGE_SECONDS = 10  # the fault's length, not a wait for something to happen


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with throwaway_cluster() as started:
        if started is None:
            pytest.skip("no PostgreSQL binaries (initdb) to start a cluster of our own")
        yield started


def provisiond(url: str, *args: str) -> str:
    done = run_cli(url, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def count(url: str, query: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(query).fetchone()
        assert row is not None
        return int(row[0])


def test_requests_fail_fast_during_an_outage_and_the_service_recovers(cluster: Cluster) -> None:
    url = cluster.url.rpartition("/")[0] + "/provisiond"
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute("CREATE DATABASE provisiond")
    provisiond(url, "db", "upgrade")
    token = json.loads(provisiond(url, "tokens", "create", "ops", "--json"))["secret"]
    instance = Instance(url)
    api = httpx.Client(
        base_url=instance.url, timeout=15, headers={"Authorization": f"Bearer {token}"}
    )
    try:
        profile = api.post("/api/v1/profiles", json={"name": "gw"}).json()
        body = {"provisionDeviceKey": profile["key"], "provisionDeviceSecret": profile["secret"]}
        answers: list[tuple[str, int, dict[str, object]]] = []
        stop = threading.Event()

        def devices_arrive() -> None:  # a device a while, all through the outage
            with httpx.Client(base_url=instance.url, timeout=15) as client:
                n = 0
                while not stop.is_set():
                    serial = f"OUT-{n:04d}"
                    r = client.post("/api/v1/provision", json={**body, "deviceName": serial})
                    answers.append((serial, r.status_code, dict(r.headers) | r.json()))
                    n += 1
                    stop.wait(0.05)

        arriving = threading.Thread(target=devices_arrive)
        arriving.start()
        while len(answers) < 5:
            time.sleep(0.05)
        cluster.stop()
        down_at = len(answers)
        during = {
            "readyz": api.get("/readyz"),
            "list": api.get("/api/v1/devices"),
            "create": api.post("/api/v1/devices", json={"serial": "DURING-1"}),
        }
        time.sleep(OUTAGE_SECONDS)
        outage = answers[down_at:]
        cluster.start()
        deadline = time.monotonic() + 60
        while api.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "the service did not recover"
            time.sleep(0.2)
        recovered_at = len(answers)
        while len(answers) < recovered_at + 5:
            time.sleep(0.05)
        stop.set()
        arriving.join(30)
    finally:
        api.close()
        instance.stop()

    # during the outage: 503 with Retry-After, fast (each within the client's timeout)
    for name, r in during.items():
        assert r.status_code == 503, (name, r.text)
        assert int(r.headers["retry-after"]) >= 1, name
        assert r.json()["code"] == "unavailable", name
        assert "database" in r.json()["detail"], name
    refused = [a for a in outage if a[1] == 503]
    assert len(refused) >= 10, outage  # devices kept arriving, and were refused cleanly
    assert all(int(a[2]["retry-after"]) >= 1 for a in refused)
    # after: provisioning works again without a restart
    assert all(a[1] == 200 and a[2]["status"] == "SUCCESS" for a in answers[recovered_at:])
    # nothing half-written: exactly the devices that were answered SUCCESS exist, each with
    # one working credential; DURING-1 (refused) does not
    succeeded = {s for s, status, a in answers if status == 200 and a["status"] == "SUCCESS"}
    assert count(url, "SELECT count(*) FROM devices") == len(succeeded)
    assert count(url, "SELECT count(*) FROM devices WHERE serial = 'DURING-1'") == 0
    assert count(url, "SELECT count(*) FROM credentials WHERE revoked_at IS NULL") == len(succeeded)
