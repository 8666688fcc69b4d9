"""Fuzzing the MQTT provisioning listener with hypothesis over real sockets — random bytes,
valid sessions cut anywhere, oversize packets, invalid UTF-8, garbage payloads — and the
claim page's scanned text: no crash, no hang, no session bug logged, and the listener
still provisions afterwards."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provisiond.protocols import mqtt
from provisiond.settings import Settings, load_settings
from tests.integration.web.conftest import Server
from tests.integration.web.test_mqtt import answer_of, connect_packet, read_packets
from tests.integration.web.test_pages import Browser
from tests.integration.web.test_provisioning import make_profile
from tests.support.logs import Records, captured

pytestmark = pytest.mark.slow  # fuzzing

FUZZ = settings(
    max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)


@pytest.fixture
def server_settings(sqlite_url: str) -> Settings:
    return load_settings(
        database_url=sqlite_url,
        log_level="error",
        provisioning__unknown_source_rate_per_minute=100_000,
        claims__rate_per_minute=100_000,
        sessions__login_rate_per_minute=100_000,
    )


@pytest.fixture
def errors() -> Iterator[Records]:
    with captured("provisiond", logging.ERROR) as records:
        yield records


def session_ends(server: Server, data: bytes) -> None:
    """Send ``data``, then end our side: the listener must answer and close, within the
    socket's timeout (a hang fails the test), whatever the bytes were."""
    with socket.create_connection(("127.0.0.1", server.mqtt_port), timeout=15) as s:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:  # a broken pipe, a reset, not connected any more
            return  # it closed on us mid-send (or before our shutdown): refused at once
        try:
            while s.recv(65536):
                pass
        except ConnectionResetError:
            pass  # closed with unread data: refused at once


def valid_session(level: int, payload: bytes) -> bytes:
    props = b"\x00" if level == 5 else b""
    return (
        connect_packet(level, "provision", "fuzz")
        + mqtt._packet(
            (mqtt.SUBSCRIBE << 4) | 2,
            b"\x00\x01" + props + mqtt._text("/provision/response") + b"\x01",
        )
        + mqtt.encode_publish(level, "/provision/request", payload, 1, 2)
    )


def text_field(raw: bytes) -> bytes:
    return len(raw).to_bytes(2, "big") + raw


invalid_utf8 = st.sampled_from(
    [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"a\x80b", b"\xf0\x28\x8c\x28", b"\x00"]
)
payloads = st.one_of(
    st.binary(max_size=300),
    st.builds(
        lambda d: json.dumps(d).encode(),
        st.dictionaries(
            st.sampled_from(
                [
                    "deviceName",
                    "provisionDeviceKey",
                    "provisionDeviceSecret",
                    "credentialsType",
                    "token",
                    "hash",
                ]
            ),
            st.one_of(
                st.text(max_size=40), st.integers(), st.none(), st.lists(st.integers(), max_size=3)
            ),
        ),
    ),
)


@FUZZ
@given(data=st.binary(max_size=600))
def test_random_bytes(server: Server, errors: Records, data: bytes) -> None:
    session_ends(server, data)
    assert not errors.records


@FUZZ
@given(level=st.sampled_from([4, 5]), payload=payloads, cut=st.integers(min_value=0))
def test_valid_sessions_cut_anywhere(
    server: Server, errors: Records, level: int, payload: bytes, cut: int
) -> None:
    stream = valid_session(level, payload)
    session_ends(server, stream[: cut % (len(stream) + 1)])
    assert not errors.records


@FUZZ
@given(
    level=st.sampled_from([4, 5]),
    bad=invalid_utf8,
    where=st.sampled_from(["client id", "username", "topic", "filter"]),
)
def test_invalid_utf8_anywhere(
    server: Server, errors: Records, level: int, bad: bytes, where: str
) -> None:
    props = b"\x00" if level == 5 else b""
    client_id = text_field(bad) if where == "client id" else mqtt._text("c")
    username = text_field(bad) if where == "username" else mqtt._text("provision")
    body = (
        mqtt._text("MQTT")
        + bytes([level, 0x82])
        + (30).to_bytes(2, "big")
        + props
        + client_id
        + username
    )
    stream = mqtt._packet(mqtt.CONNECT << 4, body)
    if where == "filter":
        stream += mqtt._packet(
            (mqtt.SUBSCRIBE << 4) | 2,
            b"\x00\x01" + props + text_field(b"/provision/" + bad) + b"\x01",
        )
    if where == "topic":
        stream += mqtt._packet(mqtt.PUBLISH << 4, text_field(b"/provision/" + bad) + props + b"{}")
    session_ends(server, stream)
    assert not errors.records


@FUZZ
@given(level=st.sampled_from([4, 5]), extra=st.integers(min_value=1, max_value=200_000))
def test_oversize_packets_are_refused(
    server: Server, errors: Records, level: int, extra: int
) -> None:
    payload = b"x" * (65_536 + extra)
    session_ends(server, valid_session(level, payload))
    assert not errors.records


@FUZZ
@given(level=st.sampled_from([4, 5]), payload=payloads)
def test_garbage_requests_get_an_answer(
    server: Server, errors: Records, level: int, payload: bytes
) -> None:
    with socket.create_connection(("127.0.0.1", server.mqtt_port), timeout=15) as s:
        s.sendall(valid_session(level, payload))
        packets = read_packets(s, 4)  # CONNACK, SUBACK, the answer and the PUBACK
    assert [kind for kind, _ in packets][:2] == [mqtt.CONNACK, mqtt.SUBACK]
    answers = [answer_of(level, body, 1) for kind, body in packets if kind == mqtt.PUBLISH]
    assert answers, packets
    assert answers[0]["status"] in ("FAILURE", "NOT_FOUND")
    assert not errors.records


def test_the_listener_still_provisions_after_the_fuzzing(
    server: Server, api: httpx.Client, errors: Records
) -> None:
    for data in (b"\x10\xff\xff\xff\xff", b"\x30\x05\x00\xff", b"\x10\x00" * 50):
        session_ends(server, data)
    key, secret = make_profile(api)
    request = json.dumps(
        {"provisionDeviceKey": key, "provisionDeviceSecret": secret, "deviceName": "AFTER-FUZZ"}
    ).encode()
    with socket.create_connection(("127.0.0.1", server.mqtt_port), timeout=15) as s:
        s.sendall(valid_session(4, request))
        packets = read_packets(s, 4)
    (answer,) = [answer_of(4, body, 1) for kind, body in packets if kind == mqtt.PUBLISH]
    assert answer["status"] == "SUCCESS"
    assert not errors.records


@pytest.fixture
def claimer(server: Server, api: httpx.Client) -> Browser:
    assert api.post("/api/v1/groups", json={"path": "Org"}).status_code == 201
    assert (
        api.post(
            "/api/v1/users",
            json={
                "email": "tech@org.example",
                "password": "correct horse battery",
                "role": "installer",
                "group": "Org",
            },
        ).status_code
        == 201
    )
    assert api.post("/api/v1/devices", json={"serial": "REAL-1"}).status_code == 201
    b = Browser(server)
    assert b.sign_in("tech@org.example", "correct horse battery").status_code == 303
    return b


@FUZZ
@given(
    scanned=st.one_of(
        st.text(max_size=200),
        st.sampled_from(
            ["MT:", "LW:D0:", "URN:DEV:LW:", "{", "https://h/d/", "http://x/d/"]
        ).flatmap(lambda p: st.text(max_size=80).map(lambda t: p + t)),
        st.binary(max_size=100).map(lambda b: b.decode("latin-1")),
    )
)
def test_whatever_is_scanned_the_claim_page_answers(
    server: Server, claimer: Browser, errors: Records, scanned: str
) -> None:
    r = claimer.post("/provision", {"serial": scanned, "target": "me"})
    assert r.status_code in (303, 404, 409, 422), (scanned, r.status_code)
    assert not errors.records
