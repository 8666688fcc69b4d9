"""Broker account names, against a real Mosquitto, on both backends: an existing
deployment whose accounts are named by tokens is moved to the new names by `broker sync`;
two credentials that want one user name never give the broker two accounts of it — the one
issued first holds the name, the other device waits with the reason and gets the name once
it is free — and nobody else is disturbed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from provisiond.bootstrap import Container
from provisiond.domain.profiles import ProfileSpec
from provisiond.domain.scope import Scope
from provisiond.services import devices as device_service
from provisiond.services.broker_keeper import RETRY_MAX
from provisiond.services.credentials import revoke_credentials
from provisiond.services.profiles import create_profile
from provisiond.services.provisioning import provision
from provisiond.settings import Settings
from tests.integration.broker.test_no_secret_on_the_broker import (
    dynsec_settings,
    files_settings,
    provisioned,
)
from tests.support.broker_accounts import REFUSED, connect, make_device, name, settle
from tests.support.containers import within
from tests.support.mosquitto import Broker, Device

OPERATOR = Scope.operator()


def connects(
    broker: Broker, username: str, password: str, client_id: str = "", *, wait: bool = False
) -> int:
    """The CONNACK code; ``wait``: until Mosquitto has read its files again (at most 10 s)."""
    for _ in range(100 if wait else 1):
        rc, device = connect(broker, username, password, client_id)
        device.close()
        if rc == 0 or not wait:
            return rc
        Device.pause(0.1)
    return rc


async def sync(c: Container, dry_run: bool = False) -> dict[str, Any]:
    async with c.broker_sync() as s:
        return (await s.reconcile(dry_run=dry_run)).as_dict()


def names_on(broker: Broker) -> set[str]:
    if broker.files:
        from provisiond.integrations.mosquitto_files import protocol as mosquitto_files

        return set(
            mosquitto_files.parse(
                broker.password_file.read_text(), broker.acl_file.read_text()
            ).accounts
        )
    (group,) = [g for g in broker.saved()["groups"] if g["groupname"] == "provisiond-devices"]
    return {c["username"] for c in group["clients"]}


def moved_to_the_new_names(old: Settings, new: Settings, broker: Broker) -> None:
    async def setup(c: Container) -> list[str]:
        tokens = [(await make_device(c, f"MIG-{i}"))[1].secret for i in range(3)]
        assert await settle(c) == 3
        return tokens

    tokens = within(old, setup)
    assert names_on(broker) == set(tokens)  # the old way: the tokens are the user names
    for token in tokens:
        assert connects(broker, token, token, wait=broker.files) == 0

    dry = within(new, lambda c: sync(c, True))
    report = within(new, sync)
    assert (dry["created"], dry["deleted"]) == (report["created"], report["deleted"]) == (3, 3)
    assert report["errors"] == []
    assert names_on(broker) == {name(t) for t in tokens}
    again = within(new, sync)
    assert (again["created"], again["updated"], again["deleted"]) == (0, 0, 0)
    for token in tokens:
        assert connects(broker, name(token), token, wait=broker.files) == 0
        assert connects(broker, token, token) in REFUSED

    async def rotate_one(c: Container) -> int:  # the incremental path goes on from there
        await revoke_credentials(
            c.uow(), scope=OPERATOR, serial="MIG-0", actor="tests", now=c.now()
        )
        return await settle(c)

    within(new, rotate_one)
    assert names_on(broker) == {name(t) for t in tokens[1:]}


def test_sync_moves_dynsec_accounts_to_the_new_names(database_url: str, broker: Broker) -> None:
    moved_to_the_new_names(
        dynsec_settings(database_url, broker, token_as_username=True),
        dynsec_settings(database_url, broker),
        broker,
    )


def test_sync_moves_file_accounts_to_the_new_names(database_url: str, files_broker: Broker) -> None:
    moved_to_the_new_names(
        files_settings(database_url, files_broker, token_as_username=True),
        files_settings(database_url, files_broker),
        files_broker,
    )


CHOSEN = "a token the device chose for itself 02"


async def colliding_fleet(c: Container) -> dict[str, Any]:
    """Two collisions, each made the only way there is: by a device choosing its MQTT user
    name (or its token) — a third refused at once — and a bystander."""
    profile = await create_profile(
        c.uow(),
        scope=OPERATOR,
        spec=ProfileSpec("mixed", credentials=["access-token", "mqtt-basic"]),
        actor="tests",
        now=c.now(),
    )
    key, secret = profile.profile.key, profile.secret
    made: dict[str, Any] = {}
    # 1. a token provisiond issued; later someone chooses its public half as MQTT user name
    _, made["issued"] = await make_device(c, "COL-A")
    await provisioned(
        c,
        key,
        secret,
        deviceName="COL-B",
        credentialsType="MQTT_BASIC",
        clientId="col-b",
        username=name(made["issued"].secret),
        password="the squatter's password 1",
    )
    # 2. a device chose its token (named by its serial); an MQTT user name equal to that
    #    serial is refused when it is chosen: no collision is made
    await provisioned(
        c, key, secret, deviceName="COL-C", credentialsType="ACCESS_TOKEN", token=CHOSEN
    )
    made["refused"] = (
        await provision(
            c.provision_writer,
            c.limiter,
            body={
                "provisionDeviceKey": key,
                "provisionDeviceSecret": secret,
                "deviceName": "COL-D",
                "credentialsType": "MQTT_BASIC",
                "clientId": "col-d",
                "username": "COL-C",
                "password": "another password 12",
            },
            source="127.0.0.1",
            policy=c.provision_policy,
            now=c.now(),
        )
    ).body
    # 3. an MQTT user name first; later a device whose serial it is chooses its token
    await provisioned(
        c,
        key,
        secret,
        deviceName="COL-E",
        credentialsType="MQTT_BASIC",
        clientId="col-e",
        username="COL-F",
        password="the early password 1",
    )
    await provisioned(
        c, key, secret, deviceName="COL-F", credentialsType="ACCESS_TOKEN", token=CHOSEN + "-f"
    )
    _, made["bystander"] = await make_device(c, "COL-G")
    made["done"] = await settle(c)
    async with c.uow().read() as uow:
        made["pending"] = await uow.broker.pending.listed()
        serials = {
            d: (await uow.devices.find_by_id(d)).serial  # type: ignore[union-attr]
            for d, _, _, _ in made["pending"]
        }
    made["waiting"] = {serials[d]: error for d, _, _, error in made["pending"]}
    return made


def test_a_user_name_two_credentials_want_goes_to_the_first(
    database_url: str, broker: Broker
) -> None:
    settings = dynsec_settings(database_url, broker)
    made = within(settings, colliding_fleet)
    issued = made["issued"]
    assert made["refused"] == {
        "status": "FAILURE",
        "errorMsg": "this MQTT user name is in use by another device",
    }
    assert made["done"] == 4  # A, C, E and the bystander G
    assert set(made["waiting"]) == {"COL-B", "COL-F"}
    for serial, error in made["waiting"].items():
        assert "is held by credential" in error, serial
        assert "issued first" in error
    assert CHOSEN not in str(made["waiting"])
    clients = broker.saved()["clients"]
    usernames = [c["username"] for c in clients]
    assert len(usernames) == len(set(usernames))
    # the holders connect; the later claimants' passwords open nothing
    assert connects(broker, name(issued.secret), issued.secret) == 0
    assert connects(broker, name(issued.secret), "the squatter's password 1", "col-b") in REFUSED
    assert connects(broker, "COL-C", CHOSEN) == 0
    assert connects(broker, "COL-F", "the early password 1", "col-e") == 0
    assert connects(broker, "COL-F", CHOSEN + "-f") in REFUSED
    bystander = made["bystander"]
    assert connects(broker, name(bystander.secret), bystander.secret) == 0

    # a reconciliation from scratch picks the same holders and says who waits
    report = within(settings, sync)
    assert report["created"] == 0
    assert report["updated"] == 0
    assert len([e for e in report["errors"] if "a device waits" in e]) == 2

    # the holder of the name COL-F goes: the waiting device gets it at its next attempt
    async def free(c: Container) -> int:
        await device_service.delete_device(
            c.uow(), scope=OPERATOR, serial="COL-E", actor="tests", now=c.now()
        )
        await settle(c)
        later = c.now() + RETRY_MAX + timedelta(seconds=1)
        c.clock = lambda: later
        return await settle(c)

    assert within(settings, free) == 1  # the two retried: COL-F has its name now
    assert connects(broker, "COL-F", "the early password 1", "col-e") in REFUSED
    assert connects(broker, "COL-F", CHOSEN + "-f") == 0


def test_collisions_in_the_files(database_url: str, files_broker: Broker) -> None:
    broker = files_broker
    made = within(files_settings(database_url, broker), colliding_fleet)
    assert set(made["waiting"]) == {"COL-B", "COL-F"}
    issued = made["issued"]
    assert connects(broker, name(issued.secret), issued.secret, wait=True) == 0
    assert connects(broker, name(issued.secret), "the squatter's password 1") in REFUSED
    assert connects(broker, "COL-F", "the early password 1", wait=True) == 0
    password_lines = broker.password_file.read_text().splitlines()
    usernames = [line.partition(":")[0] for line in password_lines if ":" in line]
    assert len(usernames) == len(set(usernames))
