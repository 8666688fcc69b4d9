"""`provisiond serve` with broker__kind=mosquitto-files: devices that provision themselves
over HTTP get their accounts in Mosquitto's files, and Mosquitto accepts them, with nothing
but serve's own background loop driving."""

from __future__ import annotations

import httpx
import pytest

from provisiond.integrations.mosquitto_files import protocol as mosquitto_files
from provisiond.settings import Settings, load_settings
from tests.integration.web.conftest import Server
from tests.integration.web.test_integrations_serve import wait_until
from tests.integration.web.test_provisioning import make_profile, provision
from tests.support.broker_accounts import name
from tests.support.mosquitto import Broker, Device


@pytest.fixture
def server_settings(database_url: str, files_broker: Broker) -> Settings:
    return load_settings(
        database_url=database_url,
        log_level="warning",
        broker={
            "kind": "mosquitto-files",
            "password_file": str(files_broker.password_file),
            "acl_file": str(files_broker.acl_file),
            "pid_file": str(files_broker.pid_file),
        },
    )


def test_self_provisioned_devices_get_their_account_in_the_files(
    server: Server, api: httpx.Client, files_broker: Broker
) -> None:
    broker = files_broker
    key, secret = make_profile(api, name="files", credentials=["mqtt-basic", "access-token"])
    answers = [
        provision(
            server,
            key,
            secret,
            deviceName=f"FILES-{i}",
            credentialsType="MQTT_BASIC" if i % 2 else "ACCESS_TOKEN",
        )
        for i in range(20)
    ]
    assert {a["status"] for a in answers} == {"SUCCESS"}

    def connects(username: str, password: str) -> bool:
        device = Device(broker.port, username, password)
        try:
            return device.connect() == 0
        finally:
            device.close()

    def written() -> mosquitto_files.Files:
        return mosquitto_files.parse(broker.password_file.read_text(), broker.acl_file.read_text())

    wait_until(lambda: len(written().accounts) == 20)
    files = written()
    token = answers[-2]["credentialsValue"]
    wait_until(lambda: connects(name(token), token))  # Mosquitto reloads after the SIGHUP
    basic = answers[1]["credentialsValue"]
    assert connects(basic["userName"], basic["password"])
    assert not connects(basic["userName"], "not its password")
    shown = api.get("/api/v1/devices/FILES-1").json()
    assert files.accounts[basic["userName"]].topics == (f"devices/{shown['id']}/#",)
