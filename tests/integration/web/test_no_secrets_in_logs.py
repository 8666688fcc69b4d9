"""No secret reaches a log line. A `provisiond serve` process logs at debug level, as JSON,
to a file, while everything that issues or takes a secret is driven through it: an operator
token, a profile, an import with claim codes, self-provisioning over HTTP and MQTT, a signed
registration token, a rotation, a sign-in, a claim proven by its code, a webhook, broker
accounts, and wrong guesses of each kind. Then the log (and the CLI's) is searched for every
secret that was issued or tried."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from tb_device_mqtt import TBDeviceMqttClient

from tests.integration.web.conftest import Server, free_port
from tests.integration.web.test_integrations_serve import wait_until
from tests.integration.web.test_pages import Browser
from tests.support.broker_accounts import name
from tests.support.mosquitto import Broker, Device
from tests.support.processes import Instance
from tests.support.receiver import Receiver, receiver

PASSWORD = "correct horse battery staple"


@pytest.fixture
def hook_receiver() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


def cli(env: dict[str, str], log: Path, *args: str) -> str:
    with log.open("ab") as stderr:
        done = subprocess.run(
            [sys.executable, "-m", "provisiond", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            check=True,
        )
    return done.stdout.decode()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # tb-mqtt-client's paho API
def test_no_secret_issued_or_guessed_appears_in_the_logs(
    tmp_path: Path, sqlite_url: str, broker: Broker, hook_receiver: Receiver
) -> None:
    log = tmp_path / "provisiond.log"
    mqtt_port = free_port()
    env = {
        **os.environ,
        "PROVISIOND_DATABASE_URL": sqlite_url,
        "PROVISIOND_LOG_LEVEL": "debug",
        "PROVISIOND_LOG_FORMAT": "json",
        "PROVISIOND_BROKER__KIND": "mosquitto-dynsec",
        "PROVISIOND_BROKER__URL": broker.url,
        "PROVISIOND_BROKER__SYNC_INTERVAL_SECONDS": "1",
        "PROVISIOND_WEBHOOKS__ALLOW_NETWORKS": '["127.0.0.1"]',  # the receiver's
        "PROVISIOND_DEVICE_KEY_PASSPHRASE": "a passphrase of the tests 1",
    }
    secrets: set[str] = {broker.password, "a passphrase of the tests 1", PASSWORD}

    operator = cli(env, log, "tokens", "create", "ops", "--json")
    token = json.loads(operator)["secret"]
    secrets.add(token)
    instance = Instance(
        sqlite_url,
        log=log,
        env={
            **{k: v for k, v in env.items() if k.startswith("PROVISIOND_")},
            "PROVISIOND_PROVISIONING__MQTT_ENABLED": "true",
            "PROVISIOND_PROVISIONING__MQTT_PORT": str(mqtt_port),
        },
    )
    server = Server(instance.url, token, None)  # type: ignore[arg-type]
    try:
        with server.client() as api:
            assert api.post("/api/v1/groups", json={"path": "Org/Site"}).status_code == 201
            assert (
                api.post(
                    "/api/v1/users",
                    json={
                        "email": "tech@org.example",
                        "password": PASSWORD,
                        "role": "installer",
                        "group": "Org",
                    },
                ).status_code
                == 201
            )
            hook = api.post(
                "/api/v1/webhooks",
                json={"group": "Org", "url": hook_receiver.url, "events": ["claim.proven"]},
            ).json()
            secrets.add(hook["secret"])
            profile = api.post(
                "/api/v1/profiles",
                json={
                    "name": "gw",
                    "claim_proof": "code",
                    "credentials": ["access-token", "mqtt-basic"],
                },
            ).json()
            secrets.add(profile["secret"])
            imported = api.post(
                "/api/v1/devices/import",
                content="serial\nLOG-1\nLOG-2\n",
                params={"profile": "gw"},
                headers={"Content-Type": "text/csv"},
            )
            assert imported.status_code == 201, imported.text
            rows = list(csv.DictReader(io.StringIO(imported.text)))
            secrets.update(r["secret"] for r in rows)
            created = api.post("/api/v1/devices", json={"serial": "LOG-3"}).json()
            secrets.add(created["credential"]["secret"])
            rotated = api.post(
                "/api/v1/devices/LOG-3/credentials/rotate", params={"type": "mqtt-basic"}
            ).json()
            secrets.add(rotated["password"])

            # self-provisioning: HTTP (token, then MQTT basic), MQTT, a registration token
            url = instance.url + "/api/v1/provision"
            basic = {
                "provisionDeviceKey": profile["key"],
                "provisionDeviceSecret": profile["secret"],
            }
            http_answer = httpx.post(url, json={**basic, "deviceName": "SELF-1"}).json()
            secrets.add(http_answer["credentialsValue"])
            chosen = httpx.post(
                url,
                json={
                    **basic,
                    "deviceName": "SELF-2",
                    "credentialsType": "MQTT_BASIC",
                    "clientId": "self-2",
                    "username": "self-2",
                    "password": "a chosen MQTT password",
                },
            ).json()
            assert chosen["status"] == "SUCCESS", chosen
            secrets.add("a chosen MQTT password")
            mqtt_answer = TBDeviceMqttClient.provision(
                "127.0.0.1", profile["key"], profile["secret"], port=mqtt_port, device_name="self-3"
            )
            secrets.add(mqtt_answer["credentialsValue"])
            key = hashlib.sha256(profile["secret"].encode()).digest()
            jwt_token = jwt.encode(
                {"serial": "JWT-1", "exp": int(time.time()) + 300, "jti": str(uuid.uuid4())},
                key,
                algorithm="HS256",
                headers={"kid": profile["key"]},
            )
            registered = httpx.post(instance.url + "/api/v1/register", json={"token": jwt_token})
            assert registered.status_code == 201, registered.text
            secrets.update([jwt_token, registered.json()["token"]])

            # wrong guesses are logged as refused, without what was guessed
            guesses = ["guessed-provision-secret", "guessed password 123", "ZZZZ-ZZZZ-ZZZY"]
            secrets.update(guesses)
            assert (
                httpx.post(
                    url,
                    json={
                        "provisionDeviceKey": profile["key"],
                        "provisionDeviceSecret": guesses[0],
                    },
                ).json()["status"]
                == "NOT_FOUND"
            )
            tech = Browser(server)
            assert tech.sign_in("tech@org.example", guesses[1]).status_code == 401
            assert tech.sign_in("tech@org.example", PASSWORD).status_code == 303
            secrets.add(tech.http.cookies["provisiond_session"])
            secrets.add(tech.csrf)

            # a claim proven by its code: a wrong one, then the right one
            claim_path = tech.post("/provision", {"serial": "LOG-1", "target": "group"}).headers[
                "location"
            ]
            assert tech.post(f"{claim_path}/proof", {"code": guesses[2]}).status_code == 422
            code = next(
                r["secret"]
                for r in rows
                if r["serial"] == "LOG-1" and r["credential_type"] != "access-token"
            )
            assert tech.post(f"{claim_path}/proof", {"code": code}).status_code == 303

            # the integrations ran: the broker account works, the webhook was delivered
            def account_works() -> bool:
                device = Device(
                    broker.port,
                    name(http_answer["credentialsValue"]),
                    http_answer["credentialsValue"],
                )
                try:
                    return device.connect() == 0
                finally:
                    device.close()

            wait_until(account_works)
            hook_receiver.wait_for(1)
    finally:
        instance.stop()

    lines = log.read_text().splitlines()
    served = [json.loads(line) for line in lines]  # with log_format=json, every line is
    assert {line["logger"] for line in served} >= {
        "provisiond",
        "uvicorn.error",
        "provisiond.http",
        "provisiond.security",
    }
    # the log is a real one: requests, refusals and the integrations' work are in it
    messages = "\n".join(str(line.get("message")) for line in served)
    assert "POST /api/v1/provision 200" in messages
    assert "refused sign-in: wrong password" in messages
    assert "refused provisioning" in messages
    assert "connected to the broker's dynamic security API" in messages
    secrets = {s for s in secrets if s}
    parts = {p for s in secrets for p in s.split(".") if len(p) >= 12}  # tokens' halves
    leaked = sorted(s for s in secrets | parts if s in log.read_text())
    assert not leaked, f"secrets in the log: {leaked}"
