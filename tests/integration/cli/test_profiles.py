"""Provisioning profiles from the CLI, on SQLite and PostgreSQL, and the key and secret
check that devices go through."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from sqlalchemy import text

from provisiond.bootstrap import open_container
from provisiond.domain.profiles import ProfileSpec
from provisiond.domain.scope import Scope
from provisiond.errors import ProfileExists
from provisiond.services import profiles
from provisiond.settings import load_settings
from tests.integration.cli.test_cli import Cli
from tests.integration.store.test_concurrency import race

OPERATOR = Scope.operator()

GENERATED = re.compile(r"[A-Za-z0-9]{20}")


def authenticate(url: str, key: str, secret: str) -> str | None:
    async def main() -> str | None:
        async with open_container(load_settings(database_url=url)) as c:
            found = await profiles.authenticate_profile(c.uow(), key=key, secret=secret)
            return found.name if found else None

    return asyncio.run(main())


def stored(url: str, sql: str) -> list[tuple[object, ...]]:
    async def main() -> list[tuple[object, ...]]:
        async with (
            open_container(load_settings(database_url=url)) as c,
            c.database.engine.connect() as conn,
        ):
            return [tuple(r) for r in await conn.execute(text(sql))]

    return asyncio.run(main())


@pytest.fixture
def cli(database_url: str) -> Cli:
    c = Cli(database_url)
    c("groups", "create", "Kanarra/Gateways")
    c("models", "add", "UNO-2483G")
    return c


def test_create_prints_key_and_secret_once_and_stores_a_hash(cli: Cli) -> None:
    made = cli(
        "profiles",
        "create",
        "gateways",
        "--group",
        "Kanarra/Gateways",
        "--model",
        "uno-2483g",
        "--credentials",
        "mqtt-basic,access-token",
        "--credentials",
        "x509",
    )
    lines = made.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["provisionDeviceKey", "provisionDeviceSecret"]
    key, secret = (line.split()[1] for line in lines)
    assert GENERATED.fullmatch(key)
    assert GENERATED.fullmatch(secret)
    assert key != secret
    assert "shown once" in made.stderr

    shown = cli.json("profiles", "show", "gateways")
    assert isinstance(shown, dict)
    assert {
        k: shown[k] for k in ("name", "key", "strategy", "group", "model", "credentials", "enabled")
    } == {
        "name": "gateways",
        "key": key,
        "strategy": "allow-create",
        "group": "Kanarra/Gateways",
        "model": "UNO-2483G",
        "credentials": ["mqtt-basic", "access-token", "x509"],
        "enabled": True,
    }
    everything = (
        json.dumps(cli.json("profiles", "list")) + cli("profiles", "show", "gateways").stdout
    )
    assert secret not in everything
    rows = stored(cli.url, "SELECT secret_hash FROM provision_profiles")
    assert secret not in str(rows)
    assert authenticate(cli.url, key, secret) == "gateways"
    events = stored(cli.url, "SELECT type, data FROM events WHERE type LIKE 'profile.%'")
    assert [e[0] for e in events] == ["profile.created"]
    assert secret not in str(events)


def test_given_key_and_secret_and_every_bad_input(cli: Cli) -> None:
    cli(
        "profiles",
        "create",
        "line-2",
        "--strategy",
        "pre-provisioned",
        "--key",
        "factory-line-2-key",
        "--secret-stdin",
        input="line-2-secret-value\n",
    )
    assert authenticate(cli.url, "factory-line-2-key", "line-2-secret-value") == "line-2"

    bad = cli(
        "profiles",
        "create",
        "bad name",
        "--strategy",
        "sometimes",
        "--key",
        "short",
        "--credentials",
        "lorawan",
        "--rate-limit",
        "0",
        "--json",
        code=2,
    )
    doc = json.loads(bad.stdout)
    assert doc["code"] == "invalid-input"
    assert doc["detail"] == "5 problems; the profile was not created"
    assert [e["field"] for e in doc["errors"]] == [
        "name",
        "strategy",
        "key",
        "credentials",
        "rate_per_minute",
    ]
    same = cli(
        "profiles",
        "create",
        "x-profile",
        "--key",
        "same-value-1",
        "--secret",
        "same-value-1",
        code=2,
    )
    assert "secret: must differ from the key" in same.stderr

    taken_name = cli("profiles", "create", "line-2", code=5)
    assert taken_name.stderr == "error[profile-exists]: a profile named 'line-2' already exists\n"
    taken_key = cli("profiles", "create", "other", "--key", "factory-line-2-key", code=5)
    assert "another profile has this provision key" in taken_key.stderr
    assert cli("profiles", "create", "g", "--group", "Nowhere", code=4).stderr.startswith(
        "error[group-not-found]"
    )
    assert cli("profiles", "create", "m", "--model", "NOPE", code=4).stderr.startswith(
        "error[model-not-found]"
    )
    assert cli("profiles", "show", "missing", code=4).stderr == (
        "error[profile-not-found]: no profile 'missing'\n"
    )
    names = cli.json("profiles", "list")
    assert isinstance(names, list)
    assert [p["name"] for p in names] == ["line-2"]


def test_disable_enable_and_rotate(cli: Cli) -> None:
    out = cli.json("profiles", "create", "gw")
    assert isinstance(out, dict)
    key, old = out["key"], out["secret"]
    assert cli("profiles", "disable", "gw").stderr == "profile gw is disabled\n"
    assert authenticate(cli.url, key, old) is None  # a disabled profile provisions nothing
    cli("profiles", "disable", "gw")  # idempotent
    cli("profiles", "enable", "gw")
    assert authenticate(cli.url, key, old) == "gw"

    rotated = cli.json("profiles", "rotate-secret", "gw")
    assert isinstance(rotated, dict)
    new = rotated["secret"]
    assert GENERATED.fullmatch(new)
    assert new != old
    assert authenticate(cli.url, key, old) is None
    assert authenticate(cli.url, key, new) == "gw"
    assert authenticate(cli.url, "no-such-key", new) is None
    assert authenticate(cli.url, key, new + "x") is None
    types = [
        r[0]
        for r in stored(cli.url, "SELECT type FROM events WHERE type LIKE 'profile.%' ORDER BY id")
    ]
    assert types == [
        "profile.created",
        "profile.disabled",
        "profile.enabled",
        "profile.secret-rotated",
    ]


def test_a_profile_holds_its_group_and_model(cli: Cli) -> None:
    cli("profiles", "create", "gw", "--group", "Kanarra/Gateways", "--model", "UNO-2483G")
    assert "1 profiles" in cli("groups", "delete", "Kanarra/Gateways", code=5).stderr
    assert "provisioning profiles" in cli("models", "delete", "UNO-2483G", code=5).stderr


def test_the_same_key_created_twice_at_once(database_url: str) -> None:
    async def work(c: object, i: int) -> object:
        return await profiles.create_profile(
            c.uow(),
            scope=OPERATOR,
            spec=ProfileSpec(f"p{i}", key="contested-key-1"),
            actor="t",  # type: ignore[attr-defined]
            now=c.now(),
        )  # type: ignore[attr-defined]

    results = race(database_url, work, n=3)
    assert sum(not isinstance(r, Exception) for r in results) == 1, results
    assert all(isinstance(r, ProfileExists) for r in results if isinstance(r, Exception)), [
        repr(r) for r in results
    ]
    assert len(stored(database_url, "SELECT id FROM provision_profiles")) == 1
