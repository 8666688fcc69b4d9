"""The attesting listeners' handshake deadline: a client that starts a TLS handshake and
never finishes it is dropped within ``limits__mqtt_connect_timeout_seconds`` (1 s here),
on the MQTT listener and the mutual-TLS device API alike."""

from __future__ import annotations

import contextlib
import socket

import pytest

from provisiond.settings import Settings
from tests.integration.attestation.conftest import Pki, attesting_settings
from tests.integration.web.conftest import Server


@pytest.fixture
def server_settings(database_url: str, pki: Pki) -> Settings:
    return attesting_settings(database_url, pki, limits__mqtt_connect_timeout_seconds=1)


@pytest.mark.parametrize("listener", ["mqtt", "https"])
def test_a_client_that_never_finishes_its_handshake_is_dropped(
    server: Server, listener: str
) -> None:
    port = server.mqtt_port if listener == "mqtt" else server.app.state.device_tls_port
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        raw.sendall(b"\x16\x03\x01")  # the start of a ClientHello, and nothing more
        # closed by the server (or reset), well before the socket's own 30 s
        with contextlib.suppress(ConnectionResetError):
            assert raw.recv(1024) == b""
