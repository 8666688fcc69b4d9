"""Nothing unauthenticated holds a DPS listener's socket for long: a connection that says
nothing (no TLS handshake, no CONNECT, no request head) is closed after
limits__mqtt_connect_timeout_seconds, over MQTT and over HTTPS; a frame over the size limit
closes the session; an HTTPS connection makes dps__https_requests_per_connection requests."""

from __future__ import annotations

import contextlib
import socket
import ssl
import time

import pytest

from provisiond.protocols import mqtt
from provisiond.settings import Settings, load_settings
from tests.integration.dps.conftest import HOST, SCOPE, Pki
from tests.integration.web.conftest import Server

TIMEOUT = 0.3
REQUESTS = 3  # dps__https_requests_per_connection


@pytest.fixture
def server_settings(database_url: str, pki: Pki) -> Settings:
    return load_settings(
        database_url=database_url,
        log_level="warning",
        dps__id_scope=SCOPE,
        dps__mqtt_port=0,
        dps__https_port=0,
        dps__tls_cert=str(pki.cert),
        dps__tls_key=str(pki.key),
        limits__mqtt_connect_timeout_seconds=TIMEOUT,
        dps__https_requests_per_connection=REQUESTS,
    )


def closed_after(s: socket.socket | ssl.SSLSocket) -> float:
    """Seconds until the server closes the connection (reads return nothing)."""
    started = time.monotonic()
    while s.recv(1024):
        pass
    return time.monotonic() - started


@pytest.mark.parametrize("listener", ["dps_port", "dps_https_port"])
def test_a_silent_connection_is_closed(server: Server, pki: Pki, listener: str) -> None:
    port = getattr(server.app.state, listener)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        assert closed_after(raw) < 10  # no TLS handshake at all
    context = ssl.create_default_context(cafile=str(pki.ca))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=30) as raw,
        context.wrap_socket(raw, server_hostname=HOST) as s,
    ):
        assert closed_after(s) < 10  # a handshake, then nothing


def test_an_oversized_packet_ends_the_session(server: Server, pki: Pki) -> None:
    context = ssl.create_default_context(cafile=str(pki.ca))
    with (
        socket.create_connection(("127.0.0.1", server.app.state.dps_port), timeout=30) as raw,
        context.wrap_socket(raw, server_hostname=HOST) as s,
    ):
        s.sendall(bytes([mqtt.CONNECT << 4]) + b"\xff\xff\xff\x7f")  # 256 MiB announced
        assert closed_after(s) < 10


def test_an_https_connection_makes_so_many_requests(server: Server, pki: Pki) -> None:
    context = ssl.create_default_context(cafile=str(pki.ca))
    port = server.app.state.dps_https_port
    request = (
        f"GET /{SCOPE}/registrations/dev-1/operations/op?api-version=2019-03-31 HTTP/1.1\r\n"
        "Host: dps\r\n\r\n"
    ).encode()
    with (
        socket.create_connection(("127.0.0.1", port), timeout=30) as raw,
        context.wrap_socket(raw, server_hostname=HOST) as s,
    ):
        s.sendall(request * (REQUESTS + 2))  # keep-alive: one after another
        received = b""
        with contextlib.suppress(ssl.SSLError, ConnectionError):
            while chunk := s.recv(65536):
                received += chunk
    assert received.count(b"HTTP/1.1 401 ") == REQUESTS  # answered, then closed
