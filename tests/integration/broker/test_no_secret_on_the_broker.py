"""The attack: someone reads the broker's side — its saved configuration, its account list,
its log — and finds a device's secret there. A fleet goes through every provisioning path
with a real Mosquitto in each of provisiond's modes (the dynamic security plugin; the
password and ACL files), every device connects, and then nothing on the broker's side holds
a device's token or password: user names are not secrets, the secret is only the password,
which the broker keeps hashed. On both backends.

With ``broker__token_as_username`` (ThingsBoard's convention, for firmware that can send
nothing else) the token is the user name again, as documented, and those devices connect."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from provisiond.bootstrap import Container
from provisiond.domain.credentials import CredentialType
from provisiond.domain.profiles import ProfileSpec
from provisiond.domain.scope import Scope
from provisiond.services.credentials import rotate_credentials
from provisiond.services.import_formats import ImportFormat, read_import
from provisiond.services.profiles import create_profile
from provisiond.services.provisioning import provision
from provisiond.services.registration import ImportOptions, SecretRow, register_devices
from provisiond.settings import Settings, load_settings
from tests.conftest import need
from tests.integration.broker.test_dynsec import admin_run
from tests.support.broker_accounts import REFUSED, connect, make_device, settle
from tests.support.containers import within
from tests.support.mosquitto import Broker, Device, available, dynsec_broker, files_broker

OPERATOR = Scope.operator()

CHOSEN_TOKEN = "a token the device chose for itself 01"
CHOSEN_PASSWORD = "a password the device chose 0001"


@dataclass(frozen=True)
class Login:
    """What a device sends to the broker, and what of it is secret."""

    serial: str
    username: str
    password: str
    client_id: str = ""
    token: str | None = None  # an access token: also its HTTP credential

    @property
    def secrets(self) -> set[str]:
        out = {self.password}
        if self.token is not None:
            out.add(self.token)
            out.update(p for p in self.token.split(".")[1:] if p)  # the verifier alone
        return out


def token_login(serial: str, token: str) -> Login:
    """The default rule: a token provisiond issued connects as its public half (the part
    before the dot); a token the device chose has none, and connects as the serial."""
    selector, dot, _ = token.partition(".")
    return Login(serial, selector if dot else serial, token, token=token)


class Sink:
    def __init__(self) -> None:
        self.rows: list[SecretRow] = []

    def add_rows(self, rows: Sequence[SecretRow]) -> None:
        self.rows.extend(rows)

    def prepare(self) -> None:
        pass

    def commit(self) -> None:
        pass

    def discard(self) -> None:
        self.rows.clear()


async def provisioned(c: Container, key: str, secret: str, **body: Any) -> dict[str, Any]:
    answer = await provision(
        c.provision_writer,
        c.limiter,
        body={"provisionDeviceKey": key, "provisionDeviceSecret": secret, **body},
        source="127.0.0.1",
        policy=c.provision_policy,
        now=c.now(),
    )
    assert answer.succeeded, answer.body
    return answer.body


async def run_fleet(c: Container) -> list[Login]:
    """Every way a device gets MQTT credentials; the accounts made; how each connects."""
    logins: list[Login] = []
    sink = Sink()
    rows = "serial\n" + "".join(f"FLT-I{i:02d}\n" for i in range(8))
    await register_devices(
        c.uow(),
        scope=OPERATOR,
        items=read_import(io.BytesIO(rows.encode()), ImportFormat.CSV),
        options=ImportOptions(broker_sealer=c.broker_sealer),
        sink=sink,
        actor="tests",
        now=c.now(),
    )
    logins += [token_login(serial, token) for serial, _, _, token in sink.rows]
    _, created = await make_device(c, "FLT-C1")
    logins.append(token_login("FLT-C1", created.secret))
    await make_device(c, "FLT-C2")
    basic = await rotate_credentials(
        c.uow(),
        scope=OPERATOR,
        serial="FLT-C2",
        kind=CredentialType.MQTT_BASIC,
        actor="tests",
        now=c.now(),
        sealer=c.broker_sealer,
    )
    assert basic.username is not None
    assert basic.client_id is not None
    logins.append(Login("FLT-C2", basic.username, basic.secret, basic.client_id))

    profile = await create_profile(
        c.uow(),
        scope=OPERATOR,
        spec=ProfileSpec("fleet", credentials=["access-token", "mqtt-basic"]),
        actor="tests",
        now=c.now(),
    )
    key, secret = profile.profile.key, profile.secret
    issued = await provisioned(c, key, secret, deviceName="FLT-P1")
    logins.append(token_login("FLT-P1", issued["credentialsValue"]))
    await provisioned(
        c, key, secret, deviceName="FLT-P2", credentialsType="ACCESS_TOKEN", token=CHOSEN_TOKEN
    )
    logins.append(token_login("FLT-P2", CHOSEN_TOKEN))
    generated = (
        await provisioned(c, key, secret, deviceName="FLT-P3", credentialsType="MQTT_BASIC")
    )["credentialsValue"]
    logins.append(
        Login("FLT-P3", generated["userName"], generated["password"], generated["clientId"])
    )
    await provisioned(
        c,
        key,
        secret,
        deviceName="FLT-P4",
        credentialsType="MQTT_BASIC",
        clientId="flt-p4",
        username="site7-meter",
        password=CHOSEN_PASSWORD,
    )
    logins.append(Login("FLT-P4", "site7-meter", CHOSEN_PASSWORD, "flt-p4"))
    assert await settle(c) == len(logins)
    return logins


def connects(
    broker: Broker, login: Login, *, username: str | None = None, wait: bool = False
) -> int:
    """The CONNACK code of the device's connection; ``wait``: until Mosquitto has read its
    files again (SIGHUP is asynchronous), at most 10 s."""
    for _ in range(100 if wait else 1):
        rc, device = connect(broker, username or login.username, login.password, login.client_id)
        device.close()
        if rc == 0 or not wait:
            return rc
        Device.pause(0.1)
    return rc


def leaked(logins: list[Login], places: dict[str, str]) -> list[str]:
    """Every (secret, place) where a device's secret appears."""
    secrets = {s for login in logins for s in login.secrets}
    return sorted(
        f"{s!r} in {where}" for where, text in places.items() for s in secrets if s in text
    )


def dynsec_settings(database_url: str, broker: Broker, **extra: Any) -> Settings:
    return load_settings(
        database_url=database_url,
        log_level="warning",
        broker={"kind": "mosquitto-dynsec", "url": broker.url, "timeout_seconds": 5, **extra},
    )


def files_settings(database_url: str, broker: Broker, **extra: Any) -> Settings:
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


@pytest.fixture
def verbose_broker(tmp_path: Any) -> Any:
    need(available(), "no mosquitto with the dynamic security plugin")
    with dynsec_broker(tmp_path / "mosquitto", verbose=True) as b:
        yield b


@pytest.fixture
def verbose_files_broker(tmp_path: Any) -> Any:
    need(available(), "no mosquitto")
    with files_broker(tmp_path / "mosquitto-files", verbose=True) as b:
        yield b


@pytest.mark.slow  # a fleet through every provisioning path, each login tried twice
def test_the_dynsec_broker_holds_no_device_secret(
    database_url: str, verbose_broker: Broker
) -> None:
    broker = verbose_broker
    logins = within(dynsec_settings(database_url, broker), run_fleet)
    (listed,) = asyncio_run_list(broker)
    saved = (broker.directory / "dynamic-security.json").read_text()
    assert not leaked(logins, {"dynamic-security.json": saved, "listClients": listed})
    for login in logins:
        assert connects(broker, login) == 0, login.serial
        for secret in login.secrets:  # the secret is not a user name
            assert connects(broker, login, username=secret) in REFUSED, login.serial
    names = {c["username"] for c in json.loads(saved)["clients"]}
    assert {login.username for login in logins} <= names
    log = broker.log.read_text()
    assert "New client connected" in log  # the log does record connections
    assert not leaked(logins, {"mosquitto.log": log})


@pytest.mark.slow  # a fleet through every provisioning path, each login tried twice
def test_the_files_broker_holds_no_device_secret(
    database_url: str, verbose_files_broker: Broker
) -> None:
    broker = verbose_files_broker
    logins = within(files_settings(database_url, broker), run_fleet)
    places = {
        "password file": broker.password_file.read_text(),
        "ACL file": broker.acl_file.read_text(),
    }
    assert not leaked(logins, places)
    for login in logins:
        assert connects(broker, login, wait=True) == 0, login.serial
        for secret in login.secrets:
            assert connects(broker, login, username=secret) in REFUSED, login.serial
    log = broker.log.read_text()
    assert "New client connected" in log
    assert not leaked(logins, {"mosquitto.log": log})


def asyncio_run_list(broker: Broker) -> tuple[str]:
    import asyncio

    from provisiond.integrations.mosquitto_dynsec import protocol as dynsec

    (answer,) = asyncio.run(admin_run(broker, [dynsec.list_clients()]))
    assert answer.ok, answer.error
    return (json.dumps(answer.data),)


@pytest.mark.parametrize("kind", ["mosquitto-dynsec", "mosquitto-files"])
def test_token_as_username_is_an_explicit_opt_in(sqlite_url: str, tmp_path: Any, kind: str) -> None:
    """ThingsBoard's convention for firmware that can send nothing else: the token is the
    user name (and, Mosquitto wanting one, the password)."""
    need(available(), "no mosquitto with the dynamic security plugin")
    files = kind == "mosquitto-files"
    make = files_broker if files else dynsec_broker
    with make(tmp_path / kind) as broker:
        settings = (files_settings if files else dynsec_settings)(
            sqlite_url, broker, token_as_username=True
        )

        async def work(c: Container) -> Any:
            made = await make_device(c, "TB-1")
            assert await settle(c) == 1
            return made

        _, issued = within(settings, work)
        login = Login("TB-1", issued.secret, issued.secret, token=issued.secret)
        assert connects(broker, login, wait=files) == 0
        assert connects(broker, login, username=issued.secret.partition(".")[0]) in REFUSED
