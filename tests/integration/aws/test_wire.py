"""The AWS listener at the packet level, as an attacker or an unusual device would use it:
CBOR payloads, subscriptions to what is not this API's, the answer to the asking session
only, topics outside the API, requests with no subscription."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from provisiond.protocols import aws_cbor, mqtt
from tests.integration.aws.conftest import TEMPLATE, Fleet
from tests.support.mqtt_packets import connect_packet, read_packets, subscribe_packet

CREATE = "$aws/certificates/create/"


@contextmanager
def session(fleet: Fleet, cert: Path, key: Path, level: int = 5) -> Iterator[ssl.SSLSocket]:
    """A TLS session with a client certificate, CONNECTed (CONNACK read)."""
    context = ssl.create_default_context(cafile=str(fleet.server_ca))
    context.load_cert_chain(cert, key)
    with (
        socket.create_connection(("127.0.0.1", fleet.port), timeout=30) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as s,
    ):
        s.sendall(connect_packet(level, "?SDK=Python&Version=1.0", "raw-device"))
        assert read_packets(s, 1)[0][0] == mqtt.CONNACK
        yield s


def publish_of(level: int, body: bytes) -> tuple[str, bytes]:
    c = mqtt._Cursor(body)
    topic = c.text()
    c.u16()  # QoS 1: a packet id
    if level == 5:
        c.skip_properties()
    return topic, c.take(c.left)


def suback_codes(level: int, body: bytes) -> list[int]:
    return list(body[3:] if level == 5 else body[2:])


@pytest.mark.parametrize("level", [4, 5])
def test_cbor_requests_get_cbor_answers(fleet: Fleet, tmp_path: Path, level: int) -> None:
    claim = fleet.claims.issue(tmp_path, "claim")
    register = f"$aws/provisioning-templates/{TEMPLATE}/provision/cbor"
    with session(fleet, *claim, level=level) as s:
        s.sendall(
            subscribe_packet(level, CREATE + "cbor/+", 1)
            + subscribe_packet(level, register + "/accepted", 2)
            + mqtt.encode_publish(level, CREATE + "cbor", b"", 1, 3)
        )
        packets = read_packets(s, 4)
        assert [k for k, _ in packets] == [mqtt.SUBACK, mqtt.SUBACK, mqtt.PUBACK, mqtt.PUBLISH]
        topic, payload = publish_of(level, packets[3][1])
        assert topic == CREATE + "cbor/accepted"
        made = aws_cbor.decode(payload)
        assert set(made) == {
            "certificateId",
            "certificatePem",
            "privateKey",
            "certificateOwnershipToken",
        }
        request = aws_cbor.encode(
            {
                "certificateOwnershipToken": made["certificateOwnershipToken"],
                "parameters": {"SerialNumber": f"CBOR-{level}"},
            }
        )
        s.sendall(mqtt.encode_publish(level, register, request, 1, 4))
        packets = read_packets(s, 2)
        topic, payload = publish_of(level, packets[1][1])
    assert topic == register + "/accepted"
    assert aws_cbor.decode(payload) == {
        "thingName": f"thing-CBOR-{level}",
        "deviceConfiguration": {"broker": "mqtts://broker.example:8883"},
    }


@pytest.mark.parametrize("level", [4, 5])
def test_only_this_apis_answer_topics_may_be_subscribed(
    fleet: Fleet, tmp_path: Path, level: int
) -> None:
    """Wildcards beyond the answer level, other devices' topics, the request topics
    themselves: refused in the SUBACK (0x80 in 3.1.1, 0x87 not authorised in 5)."""
    claim = fleet.claims.issue(tmp_path, "claim")
    refused = 0x87 if level == 5 else 0x80
    with session(fleet, *claim, level=level) as s:
        filters = [
            "#",
            "$aws/#",
            "$aws/certificates/+/json/accepted",
            CREATE + "json",
            "$aws/things/other-device/shadow/update/accepted",
            CREATE + "json/accepted",
            CREATE + "xml/accepted",
        ]
        for n, name in enumerate(filters, 1):
            s.sendall(subscribe_packet(level, name, n))
        packets = read_packets(s, len(filters))
    codes = [suback_codes(level, body)[0] for _, body in packets]
    assert codes == [refused] * 5 + [1, refused]


def test_a_publish_outside_the_api_closes_the_session(fleet: Fleet, tmp_path: Path) -> None:
    claim = fleet.claims.issue(tmp_path, "claim")
    with session(fleet, *claim, level=5) as s:
        s.sendall(mqtt.encode_publish(5, "$aws/things/other/shadow/update", b"{}", 1, 1))
        packets = read_packets(s, 2)
    assert packets == [(mqtt.DISCONNECT, bytes([mqtt.TOPIC_NAME_INVALID, 0]))]


def test_no_subscription_no_answer(fleet: Fleet, tmp_path: Path) -> None:
    """As AWS: an answer nobody subscribed to is dropped (the certificate it made expires
    unregistered and is revoked)."""
    claim = fleet.claims.issue(tmp_path, "claim")
    with session(fleet, *claim, level=4) as s:
        s.sendall(
            mqtt.encode_publish(4, CREATE + "json", b"{}", 1, 1)
            + subscribe_packet(4, CREATE + "json/rejected", 2)
        )
        first = read_packets(s, 2)
        assert [k for k, _ in first] == [mqtt.PUBACK, mqtt.SUBACK]
        # the answer (accepted) was not subscribed: a second request's is the next packet
        s.sendall(subscribe_packet(4, CREATE + "json/accepted", 3))
        s.sendall(mqtt.encode_publish(4, CREATE + "json", b"{}", 1, 4))
        rest = read_packets(s, 3)
    assert [k for k, _ in rest] == [mqtt.SUBACK, mqtt.PUBACK, mqtt.PUBLISH]


def test_each_answer_goes_to_the_asking_session_only(fleet: Fleet, tmp_path: Path) -> None:
    """Sessions of one claim certificate, all subscribed to the same answer topics and
    asking at once: each gets exactly one answer, its own (no two alike)."""
    claim = fleet.claims.issue(tmp_path, "claim")
    barrier = threading.Barrier(8)
    answers: dict[int, list[dict[str, Any]]] = {}

    def device(n: int) -> None:
        with session(fleet, *claim, level=5) as s:
            s.sendall(subscribe_packet(5, CREATE + "json/+", 1))
            read_packets(s, 1)
            barrier.wait(30)
            s.sendall(mqtt.encode_publish(5, CREATE + "json", b"{}", 1, 2))
            packets = read_packets(s, 2)
            s.sendall(bytes([mqtt.PINGREQ << 4, 0]))  # anything more comes before its answer
            packets += read_packets(s, 1)
            answers[n] = [
                json.loads(publish_of(5, body)[1]) for kind, body in packets if kind == mqtt.PUBLISH
            ]

    threads = [threading.Thread(target=device, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(answers) == list(range(8))
    assert all(len(a) == 1 for a in answers.values())
    assert len({a[0]["certificateId"] for a in answers.values()}) == 8


def test_bad_payloads_are_rejected_with_awss_error(fleet: Fleet, tmp_path: Path) -> None:
    claim = fleet.claims.issue(tmp_path, "claim")
    register = f"$aws/provisioning-templates/{TEMPLATE}/provision/json"
    csr = "$aws/certificates/create-from-csr/json"
    cases = [
        (register, b"not json"),
        (register, b"[]"),
        (register, b'{"certificateOwnershipToken": 7}'),
        (register, b'{"certificateOwnershipToken": "x", "parameters": {"a": 1}}'),
        (csr, b"{}"),
        (csr, b'{"certificateSigningRequest": "-----BEGIN CERTIFICATE REQUEST-----"}'),
    ]
    with session(fleet, *claim, level=5) as s:
        s.sendall(
            subscribe_packet(5, register + "/rejected", 1)
            + subscribe_packet(5, csr + "/rejected", 2)
        )
        read_packets(s, 2)
        for n, (topic, payload) in enumerate(cases, 3):
            s.sendall(mqtt.encode_publish(5, topic, payload, 1, n))
            packets = read_packets(s, 2)
            answer_topic, body = publish_of(5, packets[1][1])
            assert answer_topic == topic + "/rejected"
            error = json.loads(body)
            assert set(error) == {"statusCode", "errorCode", "errorMessage"}
            assert (error["statusCode"], error["errorCode"]) == (400, "InvalidPayload"), error


def test_awss_alpn_for_port_443_is_chosen(fleet: Fleet, tmp_path: Path) -> None:
    """AWS's SDKs on port 443 offer ALPN ``x-amzn-mqtt-ca``: the listener agrees to it and
    speaks MQTT as on any port; a client offering no ALPN is served alike."""
    claim = fleet.claims.issue(tmp_path, "claim")
    for offered, chosen in ((["x-amzn-mqtt-ca"], "x-amzn-mqtt-ca"), (None, None)):
        context = ssl.create_default_context(cafile=str(fleet.server_ca))
        context.load_cert_chain(*claim)
        if offered:
            context.set_alpn_protocols(offered)
        with (
            socket.create_connection(("127.0.0.1", fleet.port), timeout=30) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as s,
        ):
            assert s.selected_alpn_protocol() == chosen
            s.sendall(connect_packet(5, None, "alpn-device"))
            assert read_packets(s, 1)[0][0] == mqtt.CONNACK
