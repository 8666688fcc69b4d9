"""DPS's wire behaviour, byte by byte and as an attacker: MQTT (CONNECT, the answer topics,
status polls, refusals) and the HTTPS REST API with httpx."""

from __future__ import annotations

import json
import socket
import ssl
import time
from pathlib import Path
from typing import Any

import httpx

from provisiond.protocols import dps, mqtt
from tests.integration.dps.conftest import HOST, HUB, SCOPE, Enrolled, Pki, derive
from tests.integration.dps.conftest import device_certificate as make_device_certificate
from tests.integration.web.conftest import Server
from tests.support.mqtt_packets import read_packets, subscribe_packet

USER = "{scope}/registrations/{rid}/api-version=2019-03-31&ClientVersion=tests"


def connect(level: int, client_id: str, username: str, password: str | None) -> bytes:
    flags = 0x02 | 0x80 | (0x40 if password is not None else 0)
    body = mqtt._text("MQTT") + bytes([level, flags]) + (30).to_bytes(2, "big")
    if level == 5:
        body += b"\x00"
    body += mqtt._text(client_id) + mqtt._text(username)
    if password is not None:
        body += mqtt._text(password)
    return mqtt._packet(mqtt.CONNECT << 4, body)


def token(key: str, rid: str, *, ttl: int = 3600, skn: str | None = None) -> str:
    return dps.make_sas(key, dps.resource_of(SCOPE, rid), int(time.time()) + ttl, key_name=skn)


class Device:
    """A DPS device over MQTT and TLS, written by hand."""

    def __init__(self, server: Server, pki: Pki, cert: tuple[Path, Path] | None = None) -> None:
        context = ssl.create_default_context(cafile=str(pki.ca))
        if cert is not None:
            context.load_cert_chain(*cert)
        raw = socket.create_connection(("127.0.0.1", server.app.state.dps_port), timeout=30)
        self.s = context.wrap_socket(raw, server_hostname=HOST)
        self.buffer = bytearray()

    def send(self, data: bytes) -> None:
        self.s.sendall(data)

    def packets(self, count: int) -> list[tuple[int, bytes]]:
        return read_packets(self.s, count)  # type: ignore[arg-type]

    def close(self) -> None:
        self.s.close()


def publication(body: bytes) -> tuple[str, dict[str, Any]]:
    c = mqtt._Cursor(body)
    topic = c.text()
    c.u16()  # QoS 1
    return topic, json.loads(c.take(c.left))


def session(
    server: Server, pki: Pki, rid: str, password: str | None, cert: tuple[Path, Path] | None = None
) -> Device:
    device = Device(server, pki, cert)
    device.send(
        connect(4, rid, USER.format(scope=SCOPE, rid=rid), password)
        + subscribe_packet(4, dps.SUBSCRIBE_FILTER)
    )
    (connack, code), (suback, granted) = device.packets(2)
    assert (connack, code, suback, granted[-1]) == (mqtt.CONNACK, b"\x00\x00", mqtt.SUBACK, 1)
    return device


def register(device: Device, rid: str, req: str = "1") -> tuple[str, dict[str, Any]]:
    device.send(
        mqtt.encode_publish(
            4,
            f"$dps/registrations/PUT/iotdps-register/?$rid={req}",
            json.dumps({"registrationId": rid, "payload": None}).encode(),
            1,
            7,
        )
    )
    (puback, _), (kind, body) = device.packets(2)
    assert (puback, kind) == (mqtt.PUBACK, mqtt.PUBLISH)
    return publication(body)


def poll(device: Device, operation_id: str, req: str = "2") -> tuple[str, dict[str, Any]]:
    topic = (
        f"$dps/registrations/GET/iotdps-get-operationstatus/?$rid={req}&operationId={operation_id}"
    )
    device.send(mqtt.encode_publish(4, topic, b" ", 1, 8))  # the SDK's single-space body
    (puback, _), (kind, body) = device.packets(2)
    assert (puback, kind) == (mqtt.PUBACK, mqtt.PUBLISH)
    return publication(body)


def test_register_then_poll_over_mqtt_with_skn(
    server: Server, pki: Pki, enrolled: Enrolled
) -> None:
    key = derive(enrolled.group_key, "wire-1")
    device = session(server, pki, "wire-1", token(key, "wire-1", skn="registration"))
    topic, body = register(device, "wire-1", "a$b")  # a $ in the request id is encoded back
    assert topic == "$dps/registrations/res/202/?$rid=a%24b&retry-after=1"
    assert topic.count("$") == 2
    assert body["status"] == "assigning"
    topic, body = poll(device, body["operationId"])
    assert topic == "$dps/registrations/res/200/?$rid=2"
    assert body["status"] == "assigned"
    state = body["registrationState"]
    assert (state["deviceId"], state["assignedHub"], state["status"]) == ("wire-1", HUB, "assigned")
    device.close()


def test_a_wrong_key_is_accepted_at_connect_and_refused_with_401(
    server: Server, pki: Pki, enrolled: Enrolled
) -> None:
    other = derive(enrolled.group_key, "wire-9")  # another device's key, a valid token of it
    for password in (
        token(other, "wire-2"),
        token(derive(enrolled.group_key, "wire-2"), "wire-9"),  # wire-9's... for wire-2: sr
        token(derive(enrolled.group_key, "wire-2"), "wire-2", ttl=-10),  # expired
        token(derive(enrolled.group_key, "wire-2"), "wire-2", skn="iothubowner"),
        "not a token",
    ):
        device = session(server, pki, "wire-2", password)
        topic, body = register(device, "wire-2")
        assert topic == "$dps/registrations/res/401/?$rid=1", password
        assert body["errorCode"] == 401002
        device.close()


def test_a_client_id_other_than_the_registration_is_refused(server: Server, pki: Pki) -> None:
    device = Device(server, pki)
    device.send(connect(4, "someone", USER.format(scope=SCOPE, rid="wire-3"), "x"))
    assert device.packets(2) == [(mqtt.CONNACK, b"\x00\x05")]
    device.close()


def test_only_the_dps_answers_may_be_subscribed(server: Server, pki: Pki) -> None:
    device = Device(server, pki)
    device.send(connect(4, "wire-4", USER.format(scope=SCOPE, rid="wire-4"), "x"))
    device.packets(1)
    for n, wanted in enumerate(("#", "$dps/#", "$dps/registrations/res/200/#"), start=2):
        device.send(subscribe_packet(4, wanted, packet_id=n))
        [(kind, body)] = device.packets(1)
        assert (kind, body[-1]) == (mqtt.SUBACK, 0x80), wanted
    device.close()


def test_an_operation_is_its_registrations_only(
    server: Server, pki: Pki, enrolled: Enrolled
) -> None:
    first = derive(enrolled.group_key, "wire-5")
    device = session(server, pki, "wire-5", token(first, "wire-5"))
    _, begun = register(device, "wire-5")
    device.close()
    thief_key = derive(enrolled.group_key, "wire-6")
    thief = session(server, pki, "wire-6", token(thief_key, "wire-6"))
    topic, _ = poll(thief, begun["operationId"])
    assert topic.startswith("$dps/registrations/res/404/")
    thief.close()


def test_an_unknown_id_scope_is_401(server: Server, pki: Pki, enrolled: Enrolled) -> None:
    key = derive(enrolled.group_key, "wire-7")
    device = Device(server, pki)
    device.send(
        connect(4, "wire-7", "0neOTHER/registrations/wire-7/api-version=2019-03-31", "x")
        + subscribe_packet(4, dps.SUBSCRIBE_FILTER)
    )
    device.packets(2)
    device.close()
    resource = dps.resource_of("0neOTHER", "wire-7")
    device = Device(server, pki)
    device.send(
        connect(
            4,
            "wire-7",
            "0neOTHER/registrations/wire-7/api-version=2019-03-31",
            dps.make_sas(key, resource, int(time.time()) + 60),
        )
        + subscribe_packet(4, dps.SUBSCRIBE_FILTER)
    )
    device.packets(2)
    topic, _ = register(device, "wire-7")
    assert topic.startswith("$dps/registrations/res/401/")
    device.close()


# HTTPS --------------------------------------------------------------------------------------


def https(server: Server, pki: Pki, cert: tuple[Path, Path] | None = None) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(pki.ca))
    if cert is not None:
        context.load_cert_chain(*cert)
    port = server.app.state.dps_https_port
    return httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=context, timeout=30)


def test_the_rest_api_registers_and_answers_the_operation(
    server: Server, pki: Pki, enrolled: Enrolled
) -> None:
    key = derive(enrolled.group_key, "rest-1")
    auth = {"Authorization": token(key, "rest-1")}
    base = f"/{SCOPE}/registrations/rest-1"
    with https(server, pki) as client:
        begun = client.put(
            f"{base}/register?api-version=2021-06-01",
            json={"registrationId": "rest-1"},
            headers=auth,
        )
        assert begun.status_code == 202, begun.text
        assert begun.json()["status"] == "assigning"
        operation = begun.json()["operationId"]
        done = client.get(f"{base}/operations/{operation}?api-version=2021-06-01", headers=auth)
        assert done.status_code == 200, done.text
        assert done.json()["status"] == "assigned"
        assert done.json()["registrationState"]["assignedHub"] == HUB
        assert done.json()["registrationState"]["deviceId"] == "rest-1"
        # without its key, or with another device's, the operation is nobody else's
        assert client.get(f"{base}/operations/{operation}").status_code == 401
        other = derive(enrolled.group_key, "rest-2")
        stolen = client.get(
            f"/{SCOPE}/registrations/rest-2/operations/{operation}",
            headers={"Authorization": token(other, "rest-2")},
        )
        assert stolen.status_code == 404
        wrong = client.put(
            f"/{SCOPE}/registrations/rest-2/register",
            json={"registrationId": "rest-2"},
            headers={"Authorization": token(key, "rest-2")},
        )
        assert wrong.status_code == 401
        assert wrong.json()["errorCode"] == 401002
        assert (
            client.put(
                f"{base}/register", json={"registrationId": "rest-9"}, headers=auth
            ).status_code
            == 400
        )


def test_the_rest_api_takes_an_x509_client_certificate(
    server: Server, pki: Pki, tmp_path: Path
) -> None:
    cert = make_device_certificate(pki, tmp_path, "rest-cam")
    with https(server, pki, cert) as client:
        base = f"/{SCOPE}/registrations/rest-cam"
        begun = client.put(f"{base}/register", json={"registrationId": "rest-cam"})
        assert begun.status_code == 202, begun.text
        done = client.get(f"{base}/operations/{begun.json()['operationId']}")
        assert done.json()["registrationState"]["assignedHub"] == "x509.example.com"


def test_a_huge_request_is_refused(server: Server, pki: Pki) -> None:
    with https(server, pki) as client:
        big = client.put(f"/{SCOPE}/registrations/rest-3/register", content=b"x" * (200 * 1024))
        assert big.status_code == 413


def test_enrollment_keys_are_stored_sealed(server: Server, enrolled: Enrolled) -> None:
    """A copy of the database holds no key a device could sign with."""
    import asyncio

    from sqlalchemy import select

    from provisiond.store.schema import dps_enrollments

    async def stored() -> list[str]:
        from provisiond.bootstrap import open_container

        async with open_container(server.settings) as c, c.uow().read() as uow:
            rows = await uow._conn.execute(select(dps_enrollments.c.key_sealed))  # type: ignore[union-attr]
            return [r[0] for r in rows if r[0] is not None]

    kept = asyncio.run(stored())
    assert len(kept) == 4
    for value in kept:
        assert value.startswith("aesgcm1:")
        for key in (
            enrolled.group_key,
            enrolled.again_key,
            enrolled.device_key,
            enrolled.custom_key,
        ):
            assert key not in value


def test_a_disabled_profiles_enrollment_admits_nobody(
    server: Server, pki: Pki, enrolled: Enrolled
) -> None:
    import asyncio

    from provisiond.bootstrap import open_container
    from provisiond.domain.scope import Scope
    from provisiond.services import profiles

    async def disable() -> None:
        async with open_container(server.settings) as c:
            await profiles.set_profile_enabled(
                c.uow(),
                scope=Scope.operator(),
                name="sensors",
                enabled=False,
                actor="t",
                now=c.now(),
            )

    asyncio.run(disable())
    key = derive(enrolled.group_key, "wire-8")
    device = session(server, pki, "wire-8", token(key, "wire-8"))
    topic, _ = register(device, "wire-8")
    assert topic.startswith("$dps/registrations/res/401/")
    device.close()


def test_a_custom_allocation_webhook_names_the_host_and_a_payload(
    server: Server, pki: Pki, enrolled: Enrolled, allocator: Any
) -> None:
    def registered(rid: str, payload: object = None) -> dict[str, Any]:
        device = session(server, pki, rid, token(derive(enrolled.custom_key, rid), rid))
        device.send(
            mqtt.encode_publish(
                4,
                "$dps/registrations/PUT/iotdps-register/?$rid=1",
                json.dumps({"registrationId": rid, "payload": payload}).encode(),
                1,
                7,
            )
        )
        (_, _), (_, body) = device.packets(2)
        _, begun = publication(body)
        _, done = poll(device, begun["operationId"])
        device.close()
        return done

    done = registered("alloc-ok", {"model": "m1"})
    assert done["status"] == "assigned"
    assert done["registrationState"]["assignedHub"] == "custom.example.com"
    assert done["registrationState"]["payload"] == {"x": 1}
    asked = allocator.asked[0]
    assert asked["deviceRuntimeContext"]["payload"] == {"model": "m1"}
    assert asked["enrollmentGroup"]["enrollmentGroupId"] == "custom"
    assert registered("alloc-default")["registrationState"]["assignedHub"] == (
        "default.example.com"  # an answer without a host: the enrollment's
    )
    for refused in ("alloc-refused", "alloc-bad", "alloc-slow"):
        done = registered(refused)
        assert done["status"] == "failed", refused
        assert done["registrationState"]["errorCode"] == 400209
    # nothing was written for the refused ones: the device may register once it is allowed
    allocator.release.set()
    assert registered("alloc-slow")["status"] == "assigned"
