"""`provisiond broker sync` and the incremental path with EMQX (``broker__emqx_api_url``),
against the stand-in for EMQX 5's REST API over real HTTP, on both backends: provisiond
records every active credential's user name and ends the sessions of the names no longer
active; a refused API key and an absent API are clear reasons, retried with backoff."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from provisiond.bootstrap import Container
from provisiond.domain.scope import Scope
from provisiond.errors import BrokerUnavailable
from provisiond.integrations.emqx.api import EmqxApi
from provisiond.services import devices as device_service
from provisiond.services.broker_keeper import RETRY_MAX
from provisiond.services.credentials import revoke_credentials
from provisiond.settings import Settings, load_settings
from tests.support.broker_accounts import make_device, name, settle
from tests.support.containers import within
from tests.support.emqx import EmqxStandIn, Session

OPERATOR = Scope.operator()


def settings_for(database_url: str, emqx: EmqxStandIn, **extra: Any) -> Settings:
    return load_settings(
        database_url=database_url,
        log_level="warning",
        broker={
            "kind": "emqx",
            "emqx_api_url": emqx.url,
            "emqx_api_key": emqx.key,
            "emqx_api_secret": emqx.secret,
            "timeout_seconds": 2,
            **extra,
        },
    )


def online(emqx: EmqxStandIn, clientid: str, username: str) -> None:
    """A session EMQX holds (opened through its hook earlier)."""
    with emqx.lock:
        emqx.sessions[clientid] = Session(clientid, username, datetime.now(UTC))


async def sync(c: Container, dry_run: bool = False) -> dict[str, Any]:
    async with c.broker_sync() as s:
        return (await s.reconcile(dry_run=dry_run)).as_dict()


def test_sync_ends_the_sessions_of_names_no_longer_active(
    database_url: str, emqx: EmqxStandIn
) -> None:
    settings = settings_for(database_url, emqx)

    async def setup(c: Container) -> list[str]:
        return [(await make_device(c, f"EX-{i}"))[1].secret for i in range(3)]

    tokens = within(settings, setup)
    first = within(settings, sync)  # start-up: every active name recorded
    assert (first["accounts"], first["deleted"], first["errors"]) == (3, 0, [])
    for i, token in enumerate(tokens):
        online(emqx, f"c-{i}", name(token))
    online(emqx, "c-0-second", name(tokens[0]))  # one name, two sessions
    online(emqx, "operator", "dashboard-admin")  # not a device's

    async def behind_its_back(c: Container) -> None:  # no background loop running
        await revoke_credentials(c.uow(), scope=OPERATOR, serial="EX-0", actor="tests", now=c.now())
        await device_service.delete_device(
            c.uow(), scope=OPERATOR, serial="EX-1", actor="tests", now=c.now()
        )

    within(settings, behind_its_back)
    dry = within(settings, lambda c: sync(c, True))
    assert (dry["dry_run"], dry["deleted"]) == (True, 2)
    assert len(emqx.sessions) == 5
    report = within(settings, sync)
    assert (report["accounts"], report["deleted"], report["errors"]) == (1, 2, [])
    assert set(emqx.sessions) == {"c-2", "operator"}
    assert ("DELETE", "/api/v5/clients/c-0-second") in emqx.api_calls
    again = within(settings, sync)
    assert (again["deleted"], again["errors"]) == (0, [])


def test_the_incremental_path_waits_for_emqx_and_catches_up(
    database_url: str, emqx: EmqxStandIn
) -> None:
    settings = settings_for(database_url, emqx)

    async def setup(c: Container) -> str:
        _, issued = await make_device(c, "EX-W")
        assert await settle(c) == 1  # its name is recorded
        return str(issued.secret)

    token = within(settings, setup)
    online(emqx, "c-w", name(token))
    emqx.stop()

    async def revoke(c: Container) -> Any:
        await revoke_credentials(c.uow(), scope=OPERATOR, serial="EX-W", actor="tests", now=c.now())
        assert await settle(c) == 0
        async with c.uow().read() as uow:
            return await uow.broker.pending.listed()

    ((_, attempts, next_at, error),) = within(settings, revoke)
    assert attempts == 1
    assert next_at is not None
    assert error == f"cannot reach EMQX's API at {emqx.url}: ConnectError"
    assert "c-w" in emqx.sessions
    emqx.start()

    async def later(c: Container) -> int:
        assert await settle(c) == 0  # backing off: not yet
        c.clock = lambda: next_at + timedelta(seconds=1)
        return await settle(c)

    assert within(settings, later) == 1
    assert "c-w" not in emqx.sessions


def test_a_refused_api_key_is_a_clear_reason(database_url: str, emqx: EmqxStandIn) -> None:
    wrong = EmqxApi(emqx.url, emqx.key, "not the secret", timeout=2)
    with pytest.raises(
        BrokerUnavailable,
        match=r"refused provisiond \(HTTP 401 "
        r"BAD_API_KEY_OR_SECRET.*emqx_api_secret",
    ):
        asyncio.run(_kick(wrong, "someone"))
    settings = settings_for(database_url, emqx)

    async def setup(c: Container) -> None:
        await make_device(c, "EX-K")
        await settle(c)
        await revoke_credentials(c.uow(), scope=OPERATOR, serial="EX-K", actor="tests", now=c.now())

    within(settings, setup)
    refused = load_settings(
        database_url=database_url,
        log_level="warning",
        broker={
            "kind": "emqx",
            "emqx_api_url": emqx.url,
            "emqx_api_key": emqx.key,
            "emqx_api_secret": "not the secret",
        },
    )

    async def attempt(c: Container) -> Any:
        await settle(c)
        async with c.uow().read() as uow:
            return await uow.broker.pending.listed()

    ((_, _, _, error),) = within(refused, attempt)
    assert "HTTP 401 BAD_API_KEY_OR_SECRET" in error

    async def fixed(c: Container) -> int:
        c.clock = lambda: datetime.now(UTC) + RETRY_MAX
        return await settle(c)

    assert within(settings, fixed) == 1


async def _kick(api: EmqxApi, username: str) -> int:
    try:
        return await api.kick_username(username)
    finally:
        await api.close()


def test_the_api_settings_go_together(sqlite_url: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(
        ValidationError, match="needs broker__emqx_api_key and broker__emqx_api_secret"
    ):
        load_settings(
            database_url=sqlite_url, broker={"kind": "emqx", "emqx_api_url": "http://emqx:18083"}
        )
    with pytest.raises(ValidationError, match="are for broker__kind=emqx"):
        load_settings(
            database_url=sqlite_url,
            broker={
                "kind": "none",
                "emqx_api_url": "http://emqx:18083",
                "emqx_api_key": "k",
                "emqx_api_secret": "s",
            },
        )
    with pytest.raises(ValidationError, match="without credentials"):
        load_settings(
            database_url=sqlite_url,
            broker={
                "kind": "emqx",
                "emqx_api_url": "http://k:s@emqx:18083",
                "emqx_api_key": "k",
                "emqx_api_secret": "s",
            },
        )


def test_a_credential_revoked_before_any_round_still_has_its_sessions_ended(
    database_url: str, emqx: EmqxStandIn
) -> None:
    """The hook records a credential's user name at its first connection, so a device that
    connects and is revoked before the background round ever saw its credential is still
    kicked."""
    from provisiond.services.mqtt_auth import Asker, Verdict, authenticate

    settings = settings_for(database_url, emqx)

    async def work(c: Container) -> Any:
        _, issued = await make_device(c, "EX-FAST")  # no round runs: nothing recorded
        verdict, _ = await authenticate(
            c.uow(),
            asker=Asker(name(issued.secret), "c-fast"),
            password=issued.secret,
            now=c.now(),
            keep_name=c.broker_name_keeper,
        )
        assert verdict is Verdict.ALLOW
        online(emqx, "c-fast", name(issued.secret))
        await revoke_credentials(
            c.uow(), scope=OPERATOR, serial="EX-FAST", actor="tests", now=c.now()
        )
        return await settle(c)

    assert within(settings, work) == 1
    assert "c-fast" not in emqx.sessions
