"""Rate limits of the pages: claim starts per user and per address, sign-in per address."""

from __future__ import annotations

import httpx
import pytest

from provisiond.settings import Settings, load_settings
from tests.integration.web.conftest import Server
from tests.integration.web.test_pages import PASSWORD, Browser


@pytest.fixture
def server_settings(sqlite_url: str) -> Settings:
    return load_settings(
        database_url=sqlite_url,
        log_level="warning",
        claims__rate_per_minute=3,
        sessions__login_rate_per_minute=4,
    )


def test_claim_starts_and_sign_ins_are_rate_limited(server: Server, api: httpx.Client) -> None:
    assert api.post("/api/v1/groups", json={"path": "Kanarra"}).status_code == 201
    for email in ("a@kanarra.example", "b@kanarra.example"):
        assert (
            api.post(
                "/api/v1/users",
                json={
                    "email": email,
                    "password": PASSWORD,
                    "role": "installer",
                    "group": "Kanarra",
                },
            ).status_code
            == 201
        )
    a = Browser(server)
    assert a.sign_in("a@kanarra.example").status_code == 303
    statuses = [
        a.post("/provision", {"serial": f"NOPE-{n}", "target": "me"}).status_code for n in range(4)
    ]
    assert statuses == [404, 404, 404, 429]  # guessing serials is throttled too
    # the address's budget is spent as well: another user from it waits
    b = Browser(server)
    assert b.sign_in("b@kanarra.example").status_code == 303
    r = b.post("/provision", {"serial": "NOPE-9", "target": "me"})
    assert r.status_code == 429
    assert "too many claim attempts" in r.text
    # sign-in: 4 per minute from one address (two were used above)
    attempts = [
        Browser(server).sign_in("a@kanarra.example", "wrong wrong").status_code for _ in range(3)
    ]
    assert attempts == [401, 401, 429]
