"""Broker accounts in Mosquitto's password and ACL files (broker__kind=mosquitto-files),
against a real Mosquitto reloaded by SIGHUP, on both backends: devices connect with what
provisiond issued and stay under their prefix, lose access when revoked, rotated or
deleted; the operator's part of each file is kept; reconciliation repairs files that
drifted; a failed reload is retried; writers on the same files take turns."""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from provisiond.bootstrap import Container
from provisiond.domain.credentials import CredentialType
from provisiond.domain.scope import Scope
from provisiond.integrations.mosquitto_files import protocol as mosquitto_files
from provisiond.integrations.mosquitto_files.files import MosquittoFiles
from provisiond.integrations.mosquitto_files.protocol import Entry, Files
from provisiond.services import devices as device_service
from provisiond.services.credentials import revoke_credentials, rotate_credentials
from provisiond.settings import Settings, load_settings
from tests.support.broker_accounts import REFUSED, connect, make_device, name, settle
from tests.support.containers import within
from tests.support.mosquitto import Broker, Device

OPERATOR = Scope.operator()


def settings_for(database_url: str, broker: Broker, **extra: Any) -> Settings:
    return load_settings(
        database_url=database_url,
        log_level="warning",
        broker={
            "kind": "mosquitto-files",
            "password_file": str(broker.password_file),
            "acl_file": str(broker.acl_file),
            "pid_file": str(broker.pid_file),
            "reload_interval_seconds": 0,
            **extra,
        },
    )


def operator_part_kept(broker: Broker) -> None:
    assert broker.password_file.read_text().startswith(
        f"# the operator's accounts\n{broker.admin}:$7$"
    )
    assert broker.acl_file.read_text().startswith(
        f"# the operator's rules\nuser {broker.admin}\ntopic readwrite #\n"
    )


def reloaded(broker: Broker, username: str, password: str, *, accepted: bool) -> int:
    """The CONNACK code once Mosquitto has read the files again: SIGHUP is asynchronous,
    so connect until it is accepted (or refused) as wanted, at most 10 s; the last code."""
    for _ in range(100):
        rc, device = connect(broker, username, password)
        device.close()
        if (rc == 0) == accepted:
            return rc
        Device.pause(0.1)
    return rc


def test_a_token_device_connects_and_stays_under_its_prefix(
    database_url: str, files_broker: Broker
) -> None:
    broker = files_broker
    settings = settings_for(database_url, broker)

    async def work(c: Container) -> tuple[Any, Any]:
        a = await make_device(c, "MF-A")
        b = await make_device(c, "MF-B")
        assert await settle(c) == 2
        return a, b

    (dev_a, issued_a), (dev_b, _) = within(settings, work)
    operator_part_kept(broker)
    assert reloaded(broker, name(issued_a.secret), issued_a.secret, accepted=True) == 0
    rc, device = connect(broker, name(issued_a.secret), issued_a.secret)
    watcher = Device(broker.port, broker.admin, broker.password)
    assert watcher.connect() == 0  # the operator's own account still works
    assert watcher.subscribe("devices/#") < 0x80
    try:
        assert rc == 0
        assert device.subscribe(f"devices/{dev_a.id}/commands") < 0x80
        device.publish(f"devices/{dev_b.id}/telemetry", b"not mine")
        device.publish(f"other/{dev_a.id}", b"not under the prefix")
        device.publish(f"devices/{dev_a.id}/telemetry", b"mine")
        # one connection's messages arrive in order: had a refused one gone through, the
        # watcher would have seen it first
        assert watcher.message() == (f"devices/{dev_a.id}/telemetry", b"mine")
        # and another device's topic never reaches it, though Mosquitto's ACL file
        # refuses at delivery, not at subscription
        device.subscribe(f"devices/{dev_b.id}/#")
        watcher.publish(f"devices/{dev_b.id}/commands", b"for B")
        watcher.publish(f"devices/{dev_a.id}/commands", b"for A")
        assert device.message() == (f"devices/{dev_a.id}/commands", b"for A")
    finally:
        device.close()
        watcher.close()
    rc, device = connect(broker, name(issued_a.secret), "wrong")
    device.close()
    assert rc in REFUSED


def test_revoke_rotate_and_delete_take_the_account_away(
    database_url: str, files_broker: Broker
) -> None:
    broker = files_broker
    settings = settings_for(database_url, broker)

    async def first(c: Container) -> Any:
        _, a = await make_device(c, "MF-R1")
        _, b = await make_device(c, "MF-R2")
        _, d = await make_device(c, "MF-R3")
        await settle(c)
        return a, b, d

    a, b, d = within(settings, first)
    for issued in (a, b, d):
        assert reloaded(broker, name(issued.secret), issued.secret, accepted=True) == 0
    rc, online = connect(broker, name(a.secret), a.secret)  # connected when it is revoked
    assert rc == 0

    async def change(c: Container) -> Any:
        await revoke_credentials(
            c.uow(), scope=OPERATOR, serial="MF-R1", actor="tests", now=c.now()
        )
        rotated = await rotate_credentials(
            c.uow(),
            scope=OPERATOR,
            serial="MF-R2",
            kind=CredentialType.MQTT_BASIC,
            actor="tests",
            now=c.now(),
            sealer=c.broker_sealer,
        )
        await device_service.delete_device(
            c.uow(), scope=OPERATOR, serial="MF-R3", actor="tests", now=c.now()
        )
        await settle(c)
        async with c.uow().read() as uow:
            return rotated, await uow.broker.count()

    rotated, recorded = within(settings, change)
    online.wait("disconnect")  # Mosquitto drops it when it reads the files again
    online.close()
    assert reloaded(broker, name(a.secret), a.secret, accepted=False) in REFUSED
    for issued in (b, d):
        rc, device = connect(broker, name(issued.secret), issued.secret)
        device.close()
        assert rc in REFUSED, issued.serial
    assert rotated.username is not None
    assert reloaded(broker, rotated.username, rotated.secret, accepted=True) == 0
    assert recorded == 1
    files = mosquitto_files.parse(broker.password_file.read_text(), broker.acl_file.read_text())
    assert list(files.accounts) == [rotated.username]
    operator_part_kept(broker)


def test_sync_repairs_files_that_drifted_and_is_idempotent(
    database_url: str, files_broker: Broker
) -> None:
    broker = files_broker
    settings = settings_for(database_url, broker)

    async def setup(c: Container) -> Any:
        made = [await make_device(c, f"MF-S{i}") for i in range(4)]
        await settle(c)
        return made

    made = within(settings, setup)
    (_, t0), (_, t1), (d2, t2), (_, t3) = made
    files = mosquitto_files.parse(broker.password_file.read_text(), broker.acl_file.read_text())
    del files.accounts[name(t0.secret)]  # lost
    files.accounts[name(t1.secret)] = Entry(
        name(t1.secret),
        mosquitto_files.hash_password("old"),
        files.accounts[name(t1.secret)].topics,
    )  # outdated password
    files.accounts[name(t2.secret)] = Entry(
        name(t2.secret), files.accounts[name(t2.secret)].hashed, ("#",)
    )  # rules widened by hand
    files.accounts["stray"] = Entry("stray", mosquitto_files.hash_password("pw"), ("#",))
    password_text, acl_text = mosquitto_files.render(files)
    broker.password_file.write_text(password_text)
    broker.acl_file.write_text(acl_text)

    async def drift_in_registry(c: Container) -> None:
        await device_service.delete_device(
            c.uow(), scope=OPERATOR, serial="MF-S3", actor="tests", now=c.now()
        )

    within(settings, drift_in_registry)

    async def sync(c: Container, dry_run: bool = False) -> dict[str, Any]:
        async with c.broker_sync() as s:
            return (await s.reconcile(dry_run=dry_run)).as_dict()

    before = broker.password_file.read_text(), broker.acl_file.read_text()
    dry = within(settings, lambda c: sync(c, True))
    assert (broker.password_file.read_text(), broker.acl_file.read_text()) == before
    report = within(settings, sync)
    summary = {k: report[k] for k in ("accounts", "created", "updated", "deleted", "errors")}
    assert summary == {"accounts": 3, "created": 1, "updated": 2, "deleted": 2, "errors": []}
    assert {k: dry[k] for k in ("created", "updated", "deleted")} == {
        k: report[k] for k in ("created", "updated", "deleted")
    }
    after = broker.password_file.read_text(), broker.acl_file.read_text()
    again = within(settings, sync)
    assert (again["created"], again["updated"], again["deleted"]) == (0, 0, 0)
    assert (broker.password_file.read_text(), broker.acl_file.read_text()) == after
    operator_part_kept(broker)

    for token in (t0, t1, t2):
        assert reloaded(broker, name(token.secret), token.secret, accepted=True) == 0
    rc, device = connect(broker, name(t3.secret), t3.secret)
    device.close()
    assert rc in REFUSED
    rc, device = connect(broker, "stray", "pw")
    device.close()
    assert rc in REFUSED
    assert mosquitto_files.parse(*after).accounts[name(t2.secret)].topics == (f"devices/{d2.id}/#",)


def test_a_user_name_the_files_cannot_hold_is_reported_and_others_go_on(
    database_url: str, files_broker: Broker
) -> None:
    """A device may bring its own MQTT user name; one with a ':' cannot be a line of the
    password file: that device waits with the reason, the others get their accounts."""
    broker = files_broker
    settings = settings_for(database_url, broker)

    async def work(c: Container) -> Any:
        bad, _ = await make_device(c, "MF-U1")
        rotated = await rotate_credentials(
            c.uow(),
            scope=OPERATOR,
            serial="MF-U1",
            kind=CredentialType.MQTT_BASIC,
            actor="tests",
            now=c.now(),
            sealer=c.broker_sealer,
        )
        async with c.database.engine.begin() as conn:  # as if the device had chosen it
            await conn.execute(
                text("UPDATE credentials SET lookup = 'site:7' WHERE lookup = :name"),
                {"name": rotated.username},
            )
        _, good = await make_device(c, "MF-U2")
        done = await settle(c)
        async with c.uow().read() as uow:
            return bad, good, done, await uow.broker.pending.listed()

    bad, good, done, pending = within(settings, work)
    assert done == 1
    ((device_id, _, _, error),) = pending
    assert device_id == bad.id
    assert error == "the user name contains ':', which Mosquitto's password file cannot hold"
    assert reloaded(broker, name(good.secret), good.secret, accepted=True) == 0
    assert "site:7" not in broker.password_file.read_text()


def test_a_failed_reload_is_retried_until_mosquitto_reads_the_files(
    database_url: str, files_broker: Broker, tmp_path: Path
) -> None:
    broker = files_broker
    missing = tmp_path / "nowhere.pid"
    settings = settings_for(database_url, broker, pid_file=str(missing))

    async def first(c: Container) -> Any:
        made = await make_device(c, "MF-F1")
        assert await settle(c) == 0
        async with c.uow().read() as uow:
            return made, await uow.broker.pending.listed()

    (_, issued), pending = within(settings, first)
    ((_, attempts, next_at, error),) = pending
    assert attempts == 1
    assert error is not None
    assert "could not be told to read them" in error
    assert str(missing) in error
    # the files were written: only the reload is owed
    assert name(issued.secret) in broker.password_file.read_text()
    assert next_at is not None
    os.link(broker.pid_file, missing)

    async def later(c: Container) -> int:
        c.clock = lambda: next_at + timedelta(seconds=1)
        return await settle(c)

    assert within(settings_for(database_url, broker, pid_file=str(missing)), later) == 1
    assert reloaded(broker, name(issued.secret), issued.secret, accepted=True) == 0


def test_writers_of_the_same_files_take_turns(tmp_path: Path) -> None:
    """Two processes' worth of writers (each its own MosquittoFiles, as `serve` and
    `provisiond broker sync` would be), 4 threads each adding 100 accounts one change at a
    time: every account is in the files, nothing lost to a concurrent write."""
    passwords, acl = tmp_path / "passwords", tmp_path / "acl"
    passwords.write_text("admin:$7$101$x$y\n")
    writers = [MosquittoFiles(passwords, acl, reload_command="true") for _ in range(2)]

    def adder(name: str) -> Any:
        def edit(files: Files) -> tuple[bool, None]:
            files.accounts[name] = Entry(name, "$7$101$c2FsdA==$aGFzaA==", (f"d/{name}/#",))
            return True, None

        return edit

    async def writer(files: MosquittoFiles, prefix: str) -> None:
        for i in range(100):
            await files.change(adder(f"{prefix}-{i}"))

    async def main() -> None:
        await asyncio.gather(
            *(writer(w, f"w{n}-{t}") for n, w in enumerate(writers) for t in range(2))
        )

    asyncio.run(main())
    files = mosquitto_files.parse(passwords.read_text(), acl.read_text())
    assert len(files.accounts) == 400
    assert files.password_head == "admin:$7$101$x$y\n"
    assert all(e.topics == (f"d/{e.username}/#",) for e in files.accounts.values())


def test_the_files_kind_needs_its_files_and_a_way_to_reload(
    sqlite_url: str, tmp_path: Path
) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="needs broker__password_file and broker__acl_file"):
        load_settings(database_url=sqlite_url, broker={"kind": "mosquitto-files"})
    with pytest.raises(ValidationError, match=r"broker__pid_file .* or broker__reload_command"):
        load_settings(
            database_url=sqlite_url,
            broker={
                "kind": "mosquitto-files",
                "password_file": str(tmp_path / "p"),
                "acl_file": str(tmp_path / "a"),
            },
        )


def test_a_reload_command_that_fails_is_reported_with_its_output(tmp_path: Path) -> None:
    from provisiond.errors import BrokerUnavailable

    script = tmp_path / "reload"
    script.write_text("#!/bin/sh\necho 'mosquitto.service not loaded' >&2\nexit 5\n")
    script.chmod(0o755)
    files = MosquittoFiles(
        tmp_path / "passwords", tmp_path / "acl", reload_command=f"{script} --now"
    )

    def add(f: Files) -> tuple[bool, None]:
        f.accounts["tok"] = Entry("tok", mosquitto_files.hash_password("pw"), ("d/1/#",))
        return True, None

    with pytest.raises(
        BrokerUnavailable,
        match=r"the reload command exited 5: "
        r"mosquitto.service not loaded",
    ):
        asyncio.run(files.change(add))
    assert "tok:$7$101$" in (tmp_path / "passwords").read_text()  # written; reload owed
    assert (tmp_path / "passwords").stat().st_mode & 0o777 == 0o640
    missing = MosquittoFiles(
        tmp_path / "passwords", tmp_path / "acl", reload_command=str(tmp_path / "no-such-command")
    )
    with pytest.raises(BrokerUnavailable, match="the reload command failed"):
        asyncio.run(missing.change(lambda _: (False, None), reload=True))
