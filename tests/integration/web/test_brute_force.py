"""Guessing is throttled and logged: serials, claim codes, provisioning secrets, passwords.

Each guess that fails is logged (``refused``, logger ``provisiond.security``) by who made it,
never by what was guessed; each limit logs its first refusal (``throttled``) and then stays
quiet until it lets a request through again, so an attacker cannot flood the log.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from provisiond.settings import Settings, load_settings
from tests.integration.web.conftest import Server
from tests.integration.web.test_pages import Browser, fleet, signed_in
from tests.integration.web.test_provisioning import URL, make_profile
from tests.support.logs import Records, captured

__all__ = ["fleet"]  # a fixture these tests use


@pytest.fixture
def server_settings(sqlite_url: str) -> Settings:
    return load_settings(
        database_url=sqlite_url,
        log_level="warning",
        claims__rate_per_minute=4,
        claims__code_attempts_per_minute=3,
        sessions__login_rate_per_minute=5,
        sessions__login_failures_before_lockout=3,
        provisioning__unknown_source_rate_per_minute=4,
    )


@pytest.fixture
def security_log() -> Iterator[Records]:
    with captured("provisiond.security") as records:
        yield records


def test_password_guessing_locks_the_account_then_throttles_the_address(
    server: Server, fleet: dict[str, str], security_log: Records
) -> None:
    guesses = [f"guess number {n}" for n in range(7)]
    statuses = [Browser(server).sign_in("tech@kanarra.example", g).status_code for g in guesses]
    # 3 wrong passwords lock the account (still 401: a locked account looks the same),
    # the address's 5 a minute are spent by the 5th, then 429 with Retry-After
    assert statuses == [401] * 5 + [429] * 2
    refused = security_log.of("refused", "sign-in")
    assert [r.__dict__["reason"] for r in refused] == ["wrong password"] * 3 + [
        "account locked"
    ] * 2
    assert all(r.__dict__["user"] == "tech@kanarra.example" for r in refused)
    throttled = security_log.of("throttled", "sign-in")
    assert len(throttled) == 1  # once per run of refusals, however many follow
    assert throttled[0].__dict__["subject"] == "127.0.0.1"
    r = Browser(server).sign_in("nobody@kanarra.example", "secret!")
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) >= 1
    assert not any(g in security_log.text() for g in [*guesses, "secret!"])


def test_serial_enumeration_by_claims_and_label_urls_is_throttled(
    server: Server, fleet: dict[str, str], security_log: Records
) -> None:
    tech = signed_in(server, "tech@kanarra.example")
    # a label URL tells an unclaimed device from a missing one: it costs a claim attempt
    assert tech.get("/d/PLAIN-1").status_code == 200
    assert tech.get("/d/NOPE-1").status_code == 404
    assert tech.post("/provision", {"serial": "NOPE-2", "target": "me"}).status_code == 404
    assert tech.get("/d/NOPE-3").status_code == 404
    # 4 a minute: the next lookup of an unknown serial, or of a real one, waits
    assert tech.get("/d/PLAIN-2").status_code == 429
    assert tech.post("/provision", {"serial": "PLAIN-2", "target": "me"}).status_code == 429
    refused = security_log.of("refused", "claim")
    assert [r.__dict__["serial"] for r in refused] == ["NOPE-1", "NOPE-2", "NOPE-3"]
    assert {r.__dict__["user"] for r in refused} == {"tech@kanarra.example"}
    throttled = security_log.of("throttled", "claim-user")
    assert len(throttled) == 1


def test_claim_code_guessing_is_throttled_per_user(
    server: Server, fleet: dict[str, str], security_log: Records
) -> None:
    with httpx.Client(base_url=server.url) as device:  # the device opens its window
        opened = device.post(f"/api/v1/{fleet['SEC-1']}/claim", json={"secretKey": "secret!"})
        assert opened.status_code == 200
    tech = signed_in(server, "tech@kanarra.example")
    claim_path = tech.post("/provision", {"serial": "SEC-1", "target": "me"}).headers["location"]
    guesses = ["tulip", "rose", "daisy", "poppy"]
    statuses = [tech.post(f"{claim_path}/proof", {"code": g}).status_code for g in guesses]
    assert statuses == [422, 422, 422, 429]  # 3 a minute (WRONG_PROOFS_MAX is 5)
    assert "too many codes tried" in tech.post(f"{claim_path}/proof", {"code": "lily"}).text
    refused = security_log.of("refused", "claim-proof")
    assert len(refused) == 3
    assert {r.__dict__["serial"] for r in refused} == {"SEC-1"}
    assert len(security_log.of("throttled", "claim-proof")) == 1
    assert not any(g in security_log.text() for g in [*guesses, "lily"])


def test_provisioning_secret_guessing_is_throttled_per_address(
    server: Server, api: httpx.Client, security_log: Records
) -> None:
    key, secret = make_profile(api)
    guesses = [f"guess-{n}-of-the-secret" for n in range(6)]
    answers = [
        httpx.post(
            server.url + URL,
            json={"provisionDeviceKey": key, "provisionDeviceSecret": g, "deviceName": "G1"},
        )
        for g in guesses
    ]
    assert [a.status_code for a in answers] == [200] * 4 + [429] * 2
    assert [a.json()["status"] for a in answers[:4]] == ["NOT_FOUND"] * 4
    assert all(int(a.headers["retry-after"]) >= 1 for a in answers[4:])
    refused = security_log.of("refused", "provisioning")
    assert len(refused) == 4
    assert {r.__dict__["source"] for r in refused} == {"127.0.0.1"}
    assert len(security_log.of("throttled", "unknown")) == 1
    assert not any(g in security_log.text() for g in [*guesses, secret])
    # the guessing address is slowed, not locked out: the right secret still provisions
    right = httpx.post(
        server.url + URL,
        json={"provisionDeviceKey": key, "provisionDeviceSecret": secret, "deviceName": "G1"},
    )
    assert right.json()["status"] == "SUCCESS"


def test_registration_token_guessing_is_throttled_per_address(
    server: Server, security_log: Records
) -> None:
    answers = [
        httpx.post(server.url + "/api/v1/register", json={"token": f"forged.{n}.jwt"})
        for n in range(6)
    ]
    assert [a.status_code for a in answers[:4]] == [answers[0].status_code] * 4
    assert answers[0].json()["code"] == "registration-refused"
    assert [a.status_code for a in answers[4:]] == [429, 429]
    assert all(int(a.headers["retry-after"]) >= 1 for a in answers[4:])
    assert len(security_log.of("refused", "registration")) == 4
    assert len(security_log.of("throttled", "registration-refused")) == 1
