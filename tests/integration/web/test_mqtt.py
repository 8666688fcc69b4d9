"""The MQTT provisioning listener: ThingsBoard's own device SDK (tb-mqtt-client), paho over
MQTT 3.1.1 and 5, and raw sockets for what clients should not do; on both backends."""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from typing import Any

import httpx
import pytest
from tb_device_mqtt import TBDeviceMqttClient

from provisiond.protocols import mqtt
from tests.integration.web.conftest import Server
from tests.integration.web.test_provisioning import make_profile, use_token
from tests.support.mqtt_packets import connect_packet, read_packets, subscribe_packet


def session(server: Server) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", server.mqtt_port), timeout=30)
    return s


def answer_of(level: int, body: bytes, qos: int) -> dict[str, Any]:
    c = mqtt._Cursor(body)
    assert c.text() == "/provision/response"
    if qos:
        c.u16()
    if level == 5:
        c.skip_properties()
    result: dict[str, Any] = json.loads(c.take(c.left))
    return result


# The SDK uses paho's deprecated callback API: its warning, not ours.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_thingsboards_device_sdk_provisions_unchanged(server: Server, api: httpx.Client) -> None:
    key, secret = make_profile(api)
    credentials = TBDeviceMqttClient.provision(
        "127.0.0.1", key, secret, port=server.mqtt_port, device_name="sdk-1"
    )
    assert (credentials["status"], credentials["credentialsType"]) == ("SUCCESS", "ACCESS_TOKEN")
    assert use_token(server, credentials["credentialsValue"]) == "SDK-1"
    assert api.get("/api/v1/devices/SDK-1").status_code == 200  # one registry
    chosen = TBDeviceMqttClient.provision(
        "127.0.0.1",
        key,
        secret,
        port=server.mqtt_port,
        device_name="sdk-2",
        access_token="sdk-2-chosen-token-123",
    )
    assert chosen["credentialsValue"] == "sdk-2-chosen-token-123"


@pytest.mark.parametrize("level", [4, 5])
def test_raw_session_request_before_suback_and_refusals(
    server: Server, api: httpx.Client, level: int
) -> None:
    key, secret = make_profile(api)
    request = json.dumps(
        {"deviceName": f"raw-{level}", "provisionDeviceKey": key, "provisionDeviceSecret": secret}
    ).encode()
    with session(server) as s:
        # CONNECT, SUBSCRIBE and PUBLISH in one write: the request before the SUBACK
        publish = mqtt.encode_publish(level, "/provision/request", request, 1, 7)
        s.sendall(
            connect_packet(level, "provision")
            + subscribe_packet(level, "/provision/response")
            + publish
        )
        packets = read_packets(s, 4)
        kinds = [k for k, _ in packets]
        assert kinds == [mqtt.CONNACK, mqtt.SUBACK, mqtt.PUBACK, mqtt.PUBLISH], kinds
        assert packets[0][1][1] == 0  # accepted
        answer = answer_of(level, packets[3][1], qos=1)
        assert answer["status"] == "SUCCESS"
        assert use_token(server, answer["credentialsValue"]) == f"RAW-{level}"

    with session(server) as s:  # the wrong user name is refused
        s.sendall(connect_packet(level, "someone"))
        kind, body = read_packets(s, 1)[0]
        assert kind == mqtt.CONNACK
        assert body[1] == (0x87 if level == 5 else 5)
        assert read_packets(s, 1) == []  # and the connection closed

    with session(server) as s:  # another topic ends the session
        s.sendall(
            connect_packet(level, "provision")
            + subscribe_packet(level, "devices/#")
            + mqtt.encode_publish(level, "devices/x", b"{}")
        )
        packets = read_packets(s, 4)
        assert packets[1][0] == mqtt.SUBACK
        assert packets[1][1][-1] == 0x80  # refused subscription
        if level == 5:
            assert packets[2] == (mqtt.DISCONNECT, bytes([mqtt.TOPIC_NAME_INVALID, 0]))
        assert len(packets) == (3 if level == 5 else 2)


@pytest.mark.slow
@pytest.mark.parametrize("level", [4, 5])
def test_idle_sessions_are_closed(server: Server, level: int) -> None:
    """Past 1.5 x its keepalive without a packet, a session is closed (MQTT 5 says why);
    a packet in time keeps it open."""
    with session(server) as s:
        s.settimeout(10)
        s.sendall(connect_packet(level, "provision", keepalive=1))
        assert read_packets(s, 1)[0][0] == mqtt.CONNACK
        for _ in range(3):  # 3 pings 1 s apart: 3 s, twice the idle limit, still open
            s.sendall(bytes([mqtt.PINGREQ << 4, 0]))
            assert read_packets(s, 1) == [(mqtt.PINGRESP, b"")]
            time.sleep(1.0)  # the device's own keepalive period: time is what is tested
        started = time.monotonic()
        rest = read_packets(s, 2)  # nothing more sent: the server closes within 1.5 s
        waited = time.monotonic() - started
    if level == 5:
        assert rest == [(mqtt.DISCONNECT, bytes([0x8D, 0]))]
    else:
        assert rest == []
    assert waited < 5


def test_a_peer_that_never_reads_is_not_read_either(server: Server, api: httpx.Client) -> None:
    """A device that sends PINGREQs without ever reading the PINGRESPs: once its answers
    pile up, the listener stops reading it (its sends then block) instead of buffering
    without end; other sessions go on."""
    pings = bytes([mqtt.PINGREQ << 4, 0]) * 32_768
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        s.connect(("127.0.0.1", server.mqtt_port))
        s.sendall(connect_packet(4, "provision", keepalive=60))
        s.setblocking(False)
        sent, blocked = 0, False
        while sent < 64 * 1024 * 1024 and not blocked:
            try:
                sent += s.send(pings)
            except BlockingIOError:
                _, writable, _ = select.select([], [s], [], 2.0)
                blocked = not writable  # two seconds and the listener took nothing more
        assert blocked, f"the listener kept reading: {sent} bytes taken"
        assert sent < 16 * 1024 * 1024  # about 3.5 MB here: the kernel buffers both ways
    key, secret = make_profile(api, name="after-flood")
    request = json.dumps(
        {"deviceName": "after-flood", "provisionDeviceKey": key, "provisionDeviceSecret": secret}
    ).encode()
    with session(server) as s:
        s.sendall(
            connect_packet(4, "provision")
            + subscribe_packet(4, "/provision/response")
            + mqtt.encode_publish(4, "/provision/request", request, 1, 7)
        )
        packets = read_packets(s, 4)
        assert answer_of(4, packets[3][1], qos=1)["status"] == "SUCCESS"


def test_concurrent_sessions_each_get_their_own_answer(server: Server, api: httpx.Client) -> None:
    key, secret = make_profile(api)
    answers: dict[int, dict[str, Any]] = {}
    barrier = threading.Barrier(12)

    def device(n: int) -> None:
        with session(server) as s:
            s.sendall(
                connect_packet(4, "provision") + subscribe_packet(4, "/provision/response", qos=0)
            )
            read_packets(s, 2)
            barrier.wait()
            s.sendall(
                mqtt.encode_publish(
                    4,
                    "/provision/request",
                    json.dumps(
                        {
                            "deviceName": f"c-{n}",
                            "provisionDeviceKey": key,
                            "provisionDeviceSecret": secret,
                        }
                    ).encode(),
                )
            )
            answers[n] = answer_of(4, read_packets(s, 1)[0][1], qos=0)

    threads = [threading.Thread(target=device, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(use_token(server, a["credentialsValue"]) for a in answers.values()) == sorted(
        f"C-{n}" for n in range(12)
    )
