"""Which address a request comes from, as `provisiond serve` sees it: the peer, unless the
peer is a proxy named in ``trusted_proxies`` (then X-Forwarded-For, read from the right).

What is counted is what each per-address limit throttles and what the security log names,
so a client that could choose its address would escape every such limit.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import Instance

LIMITS = {
    "PROVISIOND_SESSIONS__LOGIN_RATE_PER_MINUTE": "3",
    "PROVISIOND_PROVISIONING__UNKNOWN_SOURCE_RATE_PER_MINUTE": "3",
    "PROVISIOND_LOG_LEVEL": "warning",
}


def sign_in(url: str, email: str, headers: dict[str, str]) -> int:
    """A failed sign-in (no such user) from one browser; its status."""
    with httpx.Client(base_url=url, timeout=30, headers=headers) as browser:
        page = browser.get("/login")
        token = page.cookies["provisiond_login"]
        return browser.post(
            "/login", data={"email": email, "password": "guess", "login_csrf": token}
        ).status_code


@pytest.fixture
def direct(sqlite_url: str, tmp_path: Path) -> Iterator[Instance]:
    """`provisiond serve` reached directly: no trusted proxy (the default)."""
    instance = Instance(sqlite_url, env=LIMITS, log=tmp_path / "serve.log")
    yield instance
    instance.stop()


@pytest.fixture
def proxied(sqlite_url: str, tmp_path: Path) -> Iterator[Instance]:
    """`provisiond serve` behind a proxy on this host (the test plays it): 127.0.0.1 is
    trusted."""
    env = {**LIMITS, "PROVISIOND_TRUSTED_PROXIES": "127.0.0.1/32, ::1"}
    instance = Instance(sqlite_url, env=env, log=tmp_path / "serve.log")
    yield instance
    instance.stop()


def test_a_forged_forwarded_for_does_not_change_the_counted_address(direct: Instance) -> None:
    # every attempt claims another address, in each header a proxy might send
    forged = [{"X-Forwarded-For": f"198.51.100.{n}"} for n in range(1, 4)] + [
        {"Forwarded": "for=198.51.100.9"},
        {"X-Real-IP": "198.51.100.10"},
    ]
    statuses = [sign_in(direct.url, "nobody@example.com", h) for h in forged]
    assert statuses == [401, 401, 401, 429, 429]  # one address: 127.0.0.1, 3 a minute
    guesses = [
        httpx.post(
            f"{direct.url}/api/v1/provision",
            timeout=30,
            json={"provisionDeviceKey": "k", "provisionDeviceSecret": "s", "deviceName": "D1"},
            headers={"X-Forwarded-For": f"203.0.113.{n}"},
        )
        for n in range(1, 5)
    ]
    assert [g.status_code for g in guesses] == [200, 200, 200, 429]
    direct.stop()
    assert direct.log is not None
    log = direct.log.read_text()
    assert "address=127.0.0.1" in log
    assert "source=127.0.0.1" in log
    assert "198.51.100" not in log
    assert "203.0.113" not in log


def test_clients_behind_a_trusted_proxy_are_counted_apart(proxied: Instance) -> None:
    a = {"X-Forwarded-For": "192.0.2.10"}
    # b put a forged address in front; the proxy appended the one it saw (read from the right)
    b = {"X-Forwarded-For": "192.0.2.10, 192.0.2.20"}
    assert [sign_in(proxied.url, "nobody@example.com", a) for _ in range(4)] == [401, 401, 401, 429]
    assert [sign_in(proxied.url, "nobody@example.com", b) for _ in range(4)] == [401, 401, 401, 429]
    # the proxy itself (no header) is a client of its own; Forwarded and X-Real-IP are ignored
    assert sign_in(proxied.url, "nobody@example.com", {"X-Real-IP": "192.0.2.10"}) == 401
    assert sign_in(proxied.url, "nobody@example.com", {"Forwarded": "for=192.0.2.30"}) == 401
    proxied.stop()
    assert proxied.log is not None
    log = proxied.log.read_text()
    assert log.count("address=192.0.2.10)") == 3
    assert log.count("address=192.0.2.20)") == 3
    assert log.count("address=127.0.0.1)") == 2
    assert "192.0.2.30" not in log


def test_a_proxied_request_is_not_a_loopback_hook_caller(sqlite_url: str, tmp_path: Path) -> None:
    """The EMQX hooks answer loopback callers without a secret. Behind a proxy on the same
    host every request reaches provisiond from loopback: a request that a proxy forwarded
    is not the local broker, whether or not the proxy is trusted."""
    env = {**LIMITS, "PROVISIOND_BROKER__KIND": "emqx"}
    instance = Instance(sqlite_url, env=env, log=tmp_path / "serve.log")
    try:
        hook = f"{instance.url}/hooks/emqx/authn"
        body = {"clientid": "c", "username": "u", "password": "p"}
        assert httpx.post(hook, json=body, timeout=30).status_code == 200
        for header in (
            {"X-Forwarded-For": "127.0.0.1"},
            {"Forwarded": "for=127.0.0.1"},
            {"X-Real-IP": "127.0.0.1"},
        ):
            assert httpx.post(hook, json=body, headers=header, timeout=30).status_code == 403
    finally:
        instance.stop()
