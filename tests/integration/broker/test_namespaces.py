"""Two provisiond registries (two databases, two containers) on ONE real broker: each keeps
its own accounts in its own namespace (``broker__namespace``), and neither's ``broker sync``
touches the other's accounts, roles or file lines — every device of both still connects."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from provisiond.bootstrap import Container
from provisiond.domain.profiles import ProfileSpec
from provisiond.domain.scope import Scope
from provisiond.services.broker_keeper import broker_status
from provisiond.services.credentials import revoke_credentials
from provisiond.services.profiles import create_profile
from provisiond.settings import Settings, load_settings
from tests.integration.broker.test_emqx_sync import online
from tests.integration.broker.test_emqx_sync import settings_for as emqx_settings
from tests.integration.broker.test_no_secret_on_the_broker import provisioned
from tests.support.broker_accounts import REFUSED, connect, make_device, name, settle
from tests.support.containers import within
from tests.support.emqx import EmqxStandIn
from tests.support.mosquitto import Broker, Device

OPERATOR = Scope.operator()


def dynsec_settings(database_url: str, broker: Broker, namespace: str | None) -> Settings:
    extra = {} if namespace is None else {"namespace": namespace}
    return load_settings(
        database_url=database_url,
        log_level="warning",
        broker={"kind": "mosquitto-dynsec", "url": broker.url, "timeout_seconds": 5, **extra},
    )


def files_settings(database_url: str, broker: Broker, namespace: str | None) -> Settings:
    extra = {} if namespace is None else {"namespace": namespace}
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


def second_database(sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "second.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


async def provision(c: Container, prefix: str) -> list[Any]:
    made = [await make_device(c, f"{prefix}-{i}") for i in range(3)]
    await settle(c)
    return [issued for _, issued in made]


async def sync(c: Container) -> dict[str, Any]:
    async with c.broker_sync() as s:
        return (await s.reconcile()).as_dict()


def connects(broker: Broker, token: str, *, tries: int = 1) -> bool:
    for attempt in range(tries):  # mosquitto-files: SIGHUP is read asynchronously
        rc, device = connect(broker, name(token), token)
        device.close()
        if rc == 0:
            return True
        if attempt + 1 < tries:
            Device.pause(0.1)
    return False


def test_two_registries_keep_their_accounts_on_one_dynsec_broker(
    sqlite_url: str, postgres_url: str, broker: Broker
) -> None:
    first = dynsec_settings(sqlite_url, broker, None)  # today's names: an existing deployment
    second = dynsec_settings(postgres_url, broker, "plant-b")
    tokens_a = within(first, lambda c: provision(c, "NS-A"))
    tokens_b = within(second, lambda c: provision(c, "NS-B"))

    report_a = within(first, sync)
    report_b = within(second, sync)
    again_a = within(first, sync)

    assert (report_a["deleted"], report_a["roles_deleted"]) == (0, 0), report_a
    assert (report_b["deleted"], report_b["roles_deleted"]) == (0, 0), report_b
    assert (again_a["deleted"], again_a["roles_deleted"]) == (0, 0), again_a
    for token in [*tokens_a, *tokens_b]:
        assert connects(broker, token.secret), token.serial
    saved = broker.saved()
    groups = {g["groupname"]: len(g["clients"]) for g in saved["groups"]}
    assert groups["provisiond-devices"] == 3
    assert groups["provisiond-plant-b-devices"] == 3
    roles = [r["rolename"] for r in saved["roles"]]
    assert sum(r.startswith("provisiond-device-") for r in roles) == 3
    assert sum(r.startswith("provisiond-plant-b-device-") for r in roles) == 3


def test_two_registries_keep_their_accounts_in_one_pair_of_files(
    sqlite_url: str, sqlite_template: Path, tmp_path: Path, files_broker: Broker
) -> None:
    broker = files_broker
    first = files_settings(sqlite_url, broker, None)
    second = files_settings(second_database(sqlite_template, tmp_path), broker, "plant-b")
    tokens_a = within(first, lambda c: provision(c, "NF-A"))
    tokens_b = within(second, lambda c: provision(c, "NF-B"))

    report_a = within(first, sync)
    report_b = within(second, sync)
    again_a = within(first, sync)

    assert report_a["deleted"] == 0, report_a
    assert report_b["deleted"] == 0, report_b
    assert again_a["deleted"] == 0, again_a
    for token in [*tokens_a, *tokens_b]:
        assert connects(broker, token.secret, tries=50), token.serial
    password_text = broker.password_file.read_text()
    assert password_text.startswith(f"# the operator's accounts\n{broker.admin}:$7$")
    for token in [*tokens_a, *tokens_b]:
        assert password_text.count(f"\n{name(token.secret)}:$7$") == 1


def test_a_changed_namespace_moves_the_registrys_own_accounts(
    database_url: str, broker: Broker
) -> None:
    before = dynsec_settings(database_url, broker, None)
    after = dynsec_settings(database_url, broker, "moved")
    tokens = within(before, lambda c: provision(c, "NS-M"))

    report = within(after, sync)
    moved = (report["updated"], report["roles_created"], report["roles_deleted"])
    assert moved == (3, 3, 3), report
    assert report["deleted"] == 0, report
    assert report["errors"] == []
    again = within(after, sync)
    assert (again["created"], again["updated"], again["deleted"]) == (0, 0, 0), again
    assert (again["roles_created"], again["roles_deleted"]) == (0, 0), again
    for token in tokens:
        assert connects(broker, token.secret), token.serial
    saved = broker.saved()
    groups = {g["groupname"]: len(g["clients"]) for g in saved["groups"]}
    assert groups["provisiond-moved-devices"] == 3
    assert groups.get("provisiond-devices", 0) == 0
    roles = [r["rolename"] for r in saved["roles"]]
    assert not [r for r in roles if r.startswith("provisiond-device-")]


async def chosen_name(c: Container, serial: str, password: str) -> None:
    profile = await create_profile(
        c.uow(),
        scope=OPERATOR,
        spec=ProfileSpec("meters", credentials=["mqtt-basic"]),
        actor="tests",
        now=c.now(),
    )
    await provisioned(
        c,
        profile.profile.key,
        profile.secret,
        deviceName=serial,
        credentialsType="MQTT_BASIC",
        clientId=serial.lower(),
        username="shared-meter",
        password=password,
    )
    await settle(c)


def test_a_user_name_another_registry_holds_is_left_alone(
    sqlite_url: str, postgres_url: str, broker: Broker
) -> None:
    first = dynsec_settings(sqlite_url, broker, None)
    second = dynsec_settings(postgres_url, broker, "plant-b")
    within(first, lambda c: chosen_name(c, "METER-A", "first-password-123"))
    within(second, lambda c: chosen_name(c, "METER-B", "second-password-456"))

    async def waiting(c: Container) -> list[str]:
        return [p["error"] for p in (await broker_status(c.uow()))["pending"]]

    (why,) = within(second, waiting)
    assert "another registry" in why
    report = within(second, sync)
    assert any("another registry" in e for e in report["errors"]), report
    assert within(first, sync)["deleted"] == 0
    rc, device = connect(broker, "shared-meter", "first-password-123", "meter-a")
    device.close()
    assert rc == 0
    rc, device = connect(broker, "shared-meter", "second-password-456", "meter-b")
    device.close()
    assert rc in REFUSED


def test_two_registries_on_one_emqx_end_only_their_own_sessions(
    sqlite_url: str, postgres_url: str, emqx: EmqxStandIn
) -> None:
    """EMQX needs no namespace: a registry ends only sessions of names its own database
    recorded."""
    first = emqx_settings(sqlite_url, emqx)
    second = emqx_settings(postgres_url, emqx)

    async def setup(c: Container, prefix: str) -> list[str]:
        return [(await make_device(c, f"{prefix}-{i}"))[1].secret for i in range(2)]

    tokens_a = within(first, lambda c: setup(c, "NE-A"))
    tokens_b = within(second, lambda c: setup(c, "NE-B"))
    for token in [*tokens_a, *tokens_b]:
        online(emqx, f"c-{name(token)}", name(token))

    async def revoke_one(c: Container) -> None:
        await revoke_credentials(c.uow(), scope=OPERATOR, serial="NE-A-0", actor="t", now=c.now())

    within(first, sync)
    within(second, sync)
    within(first, revoke_one)
    report_a = within(first, sync)
    report_b = within(second, sync)
    assert (report_a["deleted"], report_b["deleted"]) == (1, 0)
    left = {s.username for s in emqx.sessions.values()}
    assert left == {name(t) for t in [tokens_a[1], *tokens_b]}
