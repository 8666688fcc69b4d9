"""Revocation that bites on EMQX: a real provisiond server (its hooks and its background
loops) and a stand-in for EMQX 5 built from its published API (tests/support/emqx.py), over
real HTTP, on both backends. Devices connect through the stand-in, which asks provisiond's
hook; revoking or rotating a credential, or deleting a device, ends that device's sessions
through EMQX's REST API — and nobody else's; while EMQX's API is away the device waits in
``pending_work`` with the reason and its sessions end when the API is back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from provisiond.bootstrap import open_container
from provisiond.settings import Settings, load_settings
from tests.integration.web.conftest import Server
from tests.support.broker_accounts import name
from tests.support.emqx import EmqxStandIn


@pytest.fixture
def server_settings(database_url: str, emqx: EmqxStandIn) -> Settings:
    return load_settings(
        database_url=database_url,
        log_level="warning",
        broker={
            "kind": "emqx",
            "emqx_api_url": emqx.url,
            "emqx_api_key": emqx.key,
            "emqx_api_secret": emqx.secret,
            "timeout_seconds": 2,
        },
    )


@pytest.fixture
def online(server: Server, emqx: EmqxStandIn) -> EmqxStandIn:
    emqx.hook_url = server.url
    return emqx


def wait_until(check: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def pending(server: Server) -> list[tuple[Any, ...]]:
    async def main() -> list[tuple[Any, ...]]:
        async with open_container(server.settings) as c, c.uow().read() as uow:
            return list(await uow.broker.pending.listed())

    return asyncio.run(main())


def token_of(api: httpx.Client, serial: str) -> str:
    created = api.post("/api/v1/devices", json={"serial": serial})
    assert created.status_code == 201, created.text
    secret: str = created.json()["credential"]["secret"]
    return secret


def test_revoke_rotate_and_delete_end_that_devices_sessions(
    online: EmqxStandIn, api: httpx.Client, server: Server
) -> None:
    emqx = online
    tokens = {serial: token_of(api, serial) for serial in ("EM-R", "EM-T", "EM-D", "EM-X")}
    basic = api.post(
        "/api/v1/devices/EM-X/credentials/rotate", params={"type": "mqtt-basic"}
    ).json()
    tokens.pop("EM-X")
    bystander = token_of(api, "EM-BY")
    for serial, token in tokens.items():
        assert emqx.connect(f"c-{serial}", name(token), token) == "allow"
    assert emqx.connect(basic["client_id"], basic["username"], basic["password"]) == "allow"
    assert emqx.connect("c-by", name(bystander), bystander) == "allow"

    assert api.post("/api/v1/devices/EM-R/credentials/revoke").status_code == 200
    wait_until(lambda: not emqx.online("c-EM-R"))
    assert emqx.connect("c-EM-R", name(tokens["EM-R"]), tokens["EM-R"]) == "deny"

    rotated = api.post("/api/v1/devices/EM-T/credentials/rotate").json()
    wait_until(lambda: not emqx.online("c-EM-T"))
    assert emqx.connect("c-EM-T", name(rotated["secret"]), rotated["secret"]) == "allow"

    # MQTT basic keeps its client id: the old session goes, the new one with the new
    # credential stays
    again = api.post("/api/v1/devices/EM-X/credentials/rotate").json()
    assert again["client_id"] == basic["client_id"]
    wait_until(lambda: not emqx.online(basic["client_id"]))
    assert emqx.connect(basic["client_id"], again["username"], again["password"]) == "allow"

    assert api.delete("/api/v1/devices/EM-D").status_code in (200, 204)
    wait_until(lambda: not emqx.online("c-EM-D"))

    # nobody else was disturbed: the bystander and the rotated devices are still online
    wait_until(lambda: not pending(server))
    assert emqx.online("c-by")
    assert emqx.online("c-EM-T")
    assert emqx.username_of(basic["client_id"]) == again["username"]


def test_sessions_end_once_emqx_is_back(
    online: EmqxStandIn, api: httpx.Client, server: Server
) -> None:
    emqx = online
    token = token_of(api, "EM-AWAY")
    assert emqx.connect("c-away", name(token), token) == "allow"
    emqx.stop()  # the REST API goes; the session stays
    assert api.post("/api/v1/devices/EM-AWAY/credentials/revoke").status_code == 200

    def waiting() -> bool:
        rows = pending(server)
        return bool(rows) and rows[0][3] is not None

    wait_until(waiting)
    ((_, attempts, _, error),) = pending(server)
    assert attempts >= 1  # and retried with backoff (1 s, 2 s, … at most 10 minutes)
    assert f"cannot reach EMQX's API at {emqx.url}" in error
    assert emqx.online("c-away")
    emqx.start()
    wait_until(lambda: not emqx.online("c-away"))  # retried with backoff, then done
    wait_until(lambda: not pending(server))
