"""Serials cannot be enumerated through the pages by timing, and lookups are throttled.

A signed-in user asking for a device of another customer and for a serial that does not
exist gets the same 404 page; it must also take the same time, or the difference sorts
serials into "exists elsewhere" and "does not exist" (someone did, for 18 serials, from 720
requests). The timing test asks the real server, over HTTP on loopback, for both in
interleaved pairs and requires that the two distributions cannot be told apart.
"""

from __future__ import annotations

import random
import re

import httpx
import pytest

from provisiond.settings import Settings, load_settings
from tests.integration.web.conftest import Server
from tests.integration.web.test_pages import PASSWORD, signed_in
from tests.support.logs import captured
from tests.support.timing import compare, paired_timings

FOREIGN = "ACME-00000001"  # exists, in another customer's subtree
MISSING = "ACME-00000002"  # does not exist; the same length
OWN = "RIVAL-0000001"  # the signed-in user's own
PAIRS = 300
WARM_UP = 30
# A sample tells the two apart when its paired differences are significant at ALPHA (the
# chance of that with no difference at all) and their median exceeds TOLERANCE (a residue of
# a few microseconds, a row the database filters out, is not an answer). The old code
# differed by 560 us on the device page and release (p < 0.001 in every sample), and by
# 30-60 us on the label URL and the start of a claim. A second sample is taken only when the
# first differs: the test fails when both do (by chance: ALPHA squared).
ALPHA = 0.001
TOLERANCE = 20e-6
SAMPLES = 2


@pytest.fixture
def server_settings(database_url: str, request: pytest.FixtureRequest) -> Settings:
    lookups = getattr(request, "param", 100_000)  # device lookups that find nothing, a minute
    return load_settings(
        database_url=database_url,
        log_level="warning",
        sessions__login_rate_per_minute=1000,
        claims__rate_per_minute=100_000,
        claims__device_lookup_rate_per_minute=lookups,
    )


@pytest.fixture
def customers(api: httpx.Client) -> None:
    for path in ("Acme/Plant", "Rival"):
        assert api.post("/api/v1/groups", json={"path": path}).status_code == 201
    assert (
        api.post(
            "/api/v1/users",
            json={
                "email": "eve@rival.example",
                "password": PASSWORD,
                "role": "admin",
                "group": "Rival",
            },
        ).status_code
        == 201
    )
    assert (
        api.post(
            "/api/v1/users",
            json={
                "email": "bob@rival.example",
                "password": PASSWORD,
                "role": "installer",
                "group": "Rival",
            },
        ).status_code
        == 201
    )
    r = api.post(
        "/api/v1/devices",
        json={
            "serial": FOREIGN,
            "group": "Acme/Plant",
            "name": "boiler",
            "tags": {"site": "north", "floor": "2"},
        },
    )
    assert r.status_code == 201, r.text
    assert api.post("/api/v1/devices", json={"serial": OWN, "group": "Rival"}).status_code == 201


def without_wait(page: bytes) -> bytes:
    """A refusal's page without the wait it names (``try again in 20 s``, ``1 min 5 s``)."""
    return re.sub(rb"try again in (\d+ min ?)?(\d+ s)?", b"try again in (a while)", page)


@pytest.mark.slow
@pytest.mark.parametrize("server_settings", [3], indirect=True)
def test_device_lookups_that_find_nothing_are_throttled_per_user(
    server: Server, customers: None
) -> None:
    with captured("provisiond.security") as log:
        eve = signed_in(server, "eve@rival.example")
        # 3 a minute: a missing serial and another customer's device cost one each
        assert [
            eve.get(f"/devices/{s}").status_code for s in (MISSING, FOREIGN, "ACME-00000003")
        ] == [404] * 3
        slow = eve.get(f"/devices/{FOREIGN}")
        assert slow.status_code == 429
        assert "Slow down" in slow.text
        assert int(slow.headers["retry-after"]) >= 1
        # alike, as the 404s (but for the wait, a second shorter when a second has passed)
        assert without_wait(eve.get(f"/devices/{MISSING}").content) == without_wait(slow.content)
        # a release of a serial that finds nothing is a lookup too
        assert eve.post(f"/devices/{MISSING}/release").status_code == 429
        # her own devices still open; the limit is hers, not her colleague's
        assert eve.get(f"/devices/{OWN}").status_code == 200
        bob = signed_in(server, "bob@rival.example")
        assert bob.get(f"/devices/{MISSING}").status_code == 404
    throttled = log.of("throttled", "lookup-user")
    assert len(throttled) == 1  # once per run of refusals
    assert MISSING not in log.text()
    assert FOREIGN not in log.text()


ROUTES = {
    "device page": lambda b, serial: b.http.get(f"/devices/{serial}"),
    "label URL": lambda b, serial: b.http.get(f"/d/{serial}"),
    "release question": lambda b, serial: b.http.get(f"/devices/{serial}/release"),
    "release": lambda b, serial: b.http.post(
        f"/devices/{serial}/release", data={"csrf": b.csrf, "confirm": "yes"}
    ),
    "start claim": lambda b, serial: b.http.post(
        "/provision", data={"csrf": b.csrf, "serial": serial, "target": "me"}
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("route", list(ROUTES))
def test_another_customers_device_answers_like_a_missing_serial(
    server: Server, customers: None, route: str
) -> None:
    eve = signed_in(server, "eve@rival.example")
    send = ROUTES[route]
    foreign = send(eve, FOREIGN)
    missing = send(eve, MISSING)
    assert foreign.status_code == missing.status_code == 404
    assert foreign.content == missing.content

    def ask(serial: str) -> None:
        r = send(eve, serial)
        assert r.status_code == 404

    rng = random.Random(20)  # noqa: S311 (the order of requests, not a secret)
    paired_timings(lambda: ask(FOREIGN), lambda: ask(MISSING), WARM_UP, rng)
    results = []
    for _ in range(SAMPLES):
        a, b = paired_timings(lambda: ask(FOREIGN), lambda: ask(MISSING), PAIRS, rng)
        results.append(compare(a, b, rng))
        print(route, results[-1].describe())  # noqa: T201 (shown with -s)
        if not results[-1].differs(ALPHA, TOLERANCE):
            break  # this sample could not tell them apart
    else:
        pytest.fail(
            f"{route}: a device of another customer answers differently from a "
            "missing serial in every sample:\n" + "\n".join(r.describe() for r in results)
        )
