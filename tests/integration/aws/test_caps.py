"""Nothing unauthenticated holds the AWS listener: a connection that does not finish its
TLS handshake, or does not send CONNECT, within limits__mqtt_connect_timeout_seconds is
closed; a session past aws__session_seconds is closed; an oversized packet closes the
session; a session may not make requests without end (aws__max_requests_per_session)."""

from __future__ import annotations

import socket
import ssl
import time
from pathlib import Path
from typing import Any

import pytest

from provisiond.protocols import mqtt
from tests.integration.aws.conftest import Fleet, handshake
from tests.integration.aws.test_wire import CREATE, session
from tests.support.mqtt_packets import read_packets, subscribe_packet


@pytest.fixture
def more_settings() -> dict[str, Any]:
    return {"limits": {"mqtt_connect_timeout_seconds": 1, "mqtt_idle_seconds": 2}}


def closed_within(s: socket.socket, seconds: float) -> float:
    """How long until the server closes ``s`` (it reads nothing but the close)."""
    started = time.monotonic()
    s.settimeout(seconds)
    while s.recv(65536):
        pass
    return time.monotonic() - started


def test_a_silent_connection_is_closed(fleet: Fleet, tmp_path: Path) -> None:
    with socket.create_connection(("127.0.0.1", fleet.port), timeout=10) as raw:
        assert closed_within(raw, 10) < 5  # no ClientHello: closed at the handshake deadline
    claim = fleet.claims.issue(tmp_path, "claim")
    assert handshake(fleet, *claim)
    context = ssl.create_default_context(cafile=str(fleet.server_ca))
    context.load_cert_chain(*claim)
    with (
        socket.create_connection(("127.0.0.1", fleet.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as s,
    ):
        started = time.monotonic()
        assert read_packets(s, 1) == []  # no CONNECT: closed
        assert time.monotonic() - started < 5


def test_an_oversized_packet_ends_the_session(fleet: Fleet, tmp_path: Path) -> None:
    claim = fleet.claims.issue(tmp_path, "claim")
    with session(fleet, *claim, level=5) as s:
        s.sendall(mqtt.encode_publish(5, CREATE + "json", b"x" * 70_000, 1, 1))
        assert read_packets(s, 2) == [(mqtt.DISCONNECT, bytes([mqtt.PACKET_TOO_LARGE, 0]))]


@pytest.mark.parametrize(
    ("aws_settings", "most"),
    [({}, 16), ({"max_requests_per_session": 22}, 22)],
    ids=["default", "aws__max_requests_per_session"],
)
def test_endless_requests_end_the_session(fleet: Fleet, tmp_path: Path, most: int) -> None:
    claim = fleet.claims.issue(tmp_path, "claim")
    with session(fleet, *claim, level=5) as s:
        s.sendall(subscribe_packet(5, CREATE + "json/+", 1))
        read_packets(s, 1)
        kinds = []
        for n in range(most + 4):  # one at a time: the in-flight cap is not what is tested
            s.sendall(mqtt.encode_publish(5, CREATE + "json", b"{}", 1, n + 2))
            got = read_packets(s, 2)
            kinds += [k for k, _ in got]
            if len(got) < 2 or got[0][0] == mqtt.DISCONNECT:
                break
    assert kinds.count(mqtt.PUBLISH) == most  # that many answered, then closed
    assert kinds[-1] == mqtt.DISCONNECT
