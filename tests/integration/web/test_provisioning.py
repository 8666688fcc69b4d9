"""Device self-provisioning over HTTP (ThingsBoard's contract), on SQLite and PostgreSQL,
against a real server on loopback."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from provisiond.bootstrap import open_container
from provisiond.services import devices
from provisiond.settings import Settings, load_settings
from tests.integration.web.conftest import Server

URL = "/api/v1/provision"
FAILED = {"status": "FAILURE", "errorMsg": "Failed to provision device!"}  # ThingsBoard's


@pytest.fixture
def server_settings(database_url: str) -> Settings:
    return load_settings(
        database_url=database_url,
        log_level="warning",
        provisioning__unknown_source_rate_per_minute=6,
    )


def make_profile(api: httpx.Client, **body: Any) -> tuple[str, str]:
    r = api.post("/api/v1/profiles", json={"name": body.pop("name", "gw"), **body})
    assert r.status_code == 201, r.text
    return r.json()["key"], r.json()["secret"]


def provision(server: Server, key: str, secret: str, **extra: Any) -> dict[str, Any]:
    r = httpx.post(
        server.url + URL, json={"provisionDeviceKey": key, "provisionDeviceSecret": secret, **extra}
    )
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    if answer["status"] != "SUCCESS":
        assert answer["errorMsg"]
    return answer


def use_token(server: Server, token: str) -> str:
    """Authenticate as the device (its first use of the credential); its serial."""

    async def main() -> str:
        async with open_container(server.settings) as c:
            return (await devices.authenticate_device(c.uow(), token=token, now=c.now())).serial

    return asyncio.run(main())


def sql(server: Server, query: str) -> list[tuple[Any, ...]]:
    async def main() -> list[tuple[Any, ...]]:
        async with open_container(server.settings) as c, c.database.engine.connect() as conn:
            return [tuple(r) for r in await conn.execute(text(query))]

    return asyncio.run(main())


def test_allow_create_access_token_and_a_second_request(server: Server, api: httpx.Client) -> None:
    api.post("/api/v1/groups", json={"path": "Kanarra/Gateways"})
    api.post("/api/v1/models", json={"name": "UNO-2483G"})
    key, secret = make_profile(api, group="Kanarra/Gateways", model="UNO-2483G")

    first = provision(server, key, secret, deviceName="gw 0001")
    assert (first["status"], first["credentialsType"]) == ("SUCCESS", "ACCESS_TOKEN")
    device = api.get("/api/v1/devices/GW0001").json()
    assert (device["state"], device["group"], device["model"], device["name"]) == (
        "claimed",
        "Kanarra/Gateways",
        "UNO-2483G",
        "gw 0001",
    )

    # A name provisions once (ThingsBoard's contract): a second request, used credential or
    # not, is refused and changes nothing but the audit log. What a repeat may prove under
    # the other reprovisioning policies: test_identity.py.
    assert provision(server, key, secret, deviceName="GW0001") == FAILED
    assert use_token(server, first["credentialsValue"]) == "GW0001"
    assert provision(server, key, secret, deviceName="GW0001") == FAILED
    active = sql(
        server,
        "SELECT count(*) FROM credentials c JOIN devices d ON d.id = "
        "c.device_id WHERE d.serial = 'GW0001' AND c.revoked_at IS NULL",
    )
    assert active == [(1,)]
    events = [
        r[0] for r in sql(server, "SELECT type FROM events WHERE serial = 'GW0001' ORDER BY id")
    ]
    assert events == [
        "device.registered",
        "credentials.issued",
        "device.provisioned",
        "device.reprovision-refused",
        "device.reprovision-refused",
    ]
    # every one of them belongs to the device's subtree (credentials.issued had none)
    assert sql(server, "SELECT DISTINCT group_path FROM events WHERE serial = 'GW0001'") == [
        ("Kanarra/Gateways",)
    ]


def test_refusals_answer_in_thingsboards_form(server: Server, api: httpx.Client) -> None:
    key, secret = make_profile(api)
    not_found = {"status": "NOT_FOUND", "errorMsg": "Provision data was not found!"}
    assert provision(server, key, "wrong-secret") == not_found
    assert provision(server, "no-such-key", secret) == not_found
    assert provision(server, "", "") == not_found
    api.post("/api/v1/profiles/gw/disable")
    assert provision(server, key, secret, deviceName="X1") == not_found
    api.post("/api/v1/profiles/gw/enable")

    def failure(body: object) -> str:
        r = httpx.post(
            server.url + URL,
            content=body if isinstance(body, bytes) else None,
            json=None if isinstance(body, bytes) else body,
        )
        assert r.status_code == 200
        answer = r.json()
        assert answer["status"] == "FAILURE", answer
        return str(answer["errorMsg"])

    assert failure(b"{not json") == "the request is not valid JSON"
    assert failure([1, 2]) == "the request must be a JSON object"
    base = {"provisionDeviceKey": key, "provisionDeviceSecret": secret}
    assert "credentialsType 'PSK'" in failure({**base, "credentialsType": "PSK"})
    assert failure({**base, "deviceName": "bad/name"}).startswith("deviceName contains '/'")
    assert failure({**base, "credentialsType": "MQTT_BASIC"}) == (
        "MQTT_BASIC credentials are not handed out by this profile; ask for ACCESS_TOKEN"
    )
    assert failure({**base, "credentialsType": "ACCESS_TOKEN", "token": "short"}) == (
        "token must be at least 16 characters (this profile's device_secret_min_length)"
    )
    assert failure({**base, "retryKey": "too-short"}) == (
        "retryKey must be at least 22 characters: 16 random bytes or more, generated by the device"
    )
    assert failure({**base, "deviceName": 5}) == "deviceName must be a string"
    assert sql(server, "SELECT count(*) FROM devices") == [(0,)]  # nothing was created

    named = provision(server, key, secret)  # no deviceName: the server names the device
    serial = use_token(server, named["credentialsValue"])
    assert serial.startswith("TB-")
    assert len(serial) == 19


def test_mqtt_basic_generated_and_chosen(server: Server, api: httpx.Client) -> None:
    key, secret = make_profile(api, credentials=["mqtt-basic", "access-token"])
    generated = provision(server, key, secret, deviceName="M1")
    assert generated["credentialsType"] == "MQTT_BASIC"
    value = generated["credentialsValue"]
    assert value["clientId"] == "M1"
    assert value["userName"].startswith("M1-")
    assert len(value["password"]) >= 32
    stored = sql(server, "SELECT lookup, secret_hash, client_id FROM credentials")
    assert value["password"] not in str(stored)

    chosen = {
        "deviceName": "M2",
        "credentialsType": "MQTT_BASIC",
        "clientId": "m2-client",
        "username": "m2-user",
        "password": "m2-password-long-enough",
    }
    ok = provision(server, key, secret, **chosen)
    assert ok["credentialsValue"] == {
        "clientId": "m2-client",
        "userName": "m2-user",
        "password": "m2-password-long-enough",
    }
    assert provision(server, key, secret, **chosen) == FAILED  # once (test_identity.py)
    taken = provision(server, key, secret, **{**chosen, "deviceName": "M3"})
    assert taken["errorMsg"] == "this MQTT user name is in use by another device"
    # another device's serial is its broker user name when it chose its token
    squat = provision(server, key, secret, **{**chosen, "deviceName": "M5", "username": "M1"})
    assert squat["errorMsg"] == "this MQTT user name is in use by another device"
    own = provision(server, key, secret, **{**chosen, "deviceName": "M6", "username": "M6"})
    assert own["credentialsValue"]["userName"] == "M6"  # its own serial is its to use
    short = provision(
        server, key, secret, **{**chosen, "deviceName": "M4", "username": "u4", "password": "short"}
    )
    assert short["errorMsg"] == (
        "password must be at least 16 characters (this profile's device_secret_min_length)"
    )

    token = "device-chosen-token-0001"
    mine = provision(
        server, key, secret, deviceName="T1", credentialsType="ACCESS_TOKEN", token=token
    )
    assert mine["credentialsValue"] == token
    assert token not in str(sql(server, "SELECT lookup, secret_hash FROM credentials"))
    assert use_token(server, token) == "T1"
    assert (
        provision(
            server, key, secret, deviceName="T2", credentialsType="ACCESS_TOKEN", token=token
        )["errorMsg"]
        == "this token is in use by another device"
    )


def test_pre_provisioned(server: Server, api: httpx.Client) -> None:
    key, secret = make_profile(api, strategy="pre-provisioned")
    assert provision(server, key, secret, deviceName="P1")["errorMsg"] == (
        "Device P1 was not registered beforehand"
    )
    assert api.post("/api/v1/devices", json={"serial": "P1"}).status_code == 201
    ok = provision(server, key, secret, deviceName="p1")
    assert ok["status"] == "SUCCESS"
    assert use_token(server, ok["credentialsValue"]) == "P1"
    assert provision(server, key, secret, deviceName="P1") == FAILED

    other_key, other_secret = make_profile(api, name="creator")
    assert api.post("/api/v1/devices", json={"serial": "P2"}).status_code == 201
    assert provision(server, other_key, other_secret, deviceName="P2") == FAILED


def test_rate_limits_answer_429_with_retry_after(server: Server, api: httpx.Client) -> None:
    key, secret = make_profile(api, source_rate_per_minute=3)
    for n in range(3):
        assert provision(server, key, secret, deviceName=f"R{n}")["status"] == "SUCCESS"
    limited = httpx.post(
        server.url + URL,
        json={"provisionDeviceKey": key, "provisionDeviceSecret": secret, "deviceName": "R9"},
    )
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.json()["status"] == "FAILURE"
    assert limited.json()["errorMsg"].startswith("Too many provision requests")

    # Guessing: 6 wrong attempts a minute per address (this server's setting), then 429.
    codes = [
        httpx.post(
            server.url + URL,
            json={"provisionDeviceKey": key, "provisionDeviceSecret": f"guess-{n}"},
        ).status_code
        for n in range(8)
    ]
    assert codes == [200] * 6 + [429] * 2


@pytest.mark.slow
def test_storm_of_concurrent_requests(server: Server, api: httpx.Client) -> None:
    """40 devices asking twice each, all at once: 40 devices, one SUCCESS each, and the
    credential it answered is the device's one working credential."""
    key, secret = make_profile(api)
    names = [f"S{n:03d}" for n in range(40)] * 2
    answers: dict[int, dict[str, Any]] = {}
    barrier = threading.Barrier(8)

    def worker(w: int) -> None:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            barrier.wait()
            for i in range(w, len(names), 8):
                r = client.post(
                    URL,
                    json={
                        "provisionDeviceKey": key,
                        "provisionDeviceSecret": secret,
                        "deviceName": names[i],
                    },
                )
                answers[i] = r.json()

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(answers) == len(names)
    won = {names[i]: a for i, a in answers.items() if a["status"] == "SUCCESS"}
    assert sorted(won) == sorted(set(names))  # one SUCCESS per name
    assert [a for a in answers.values() if a["status"] != "SUCCESS"] == [FAILED] * 40
    assert sql(server, "SELECT count(*) FROM devices") == [(40,)]
    per_device = sql(
        server,
        "SELECT d.serial, count(*) FROM credentials c JOIN devices d ON "
        "d.id = c.device_id WHERE c.revoked_at IS NULL GROUP BY d.serial",
    )
    assert sorted(per_device) == [(n, 1) for n in sorted(set(names))]
    for name, answer in won.items():
        assert use_token(server, answer["credentialsValue"]) == name
