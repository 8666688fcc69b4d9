"""The MQTT provisioning listener over TLS: a connection that never starts its TLS
handshake is closed after limits__mqtt_connect_timeout_seconds, as one that never sends
CONNECT is (asyncio's own handshake deadline is 60 s, and the CONNECT deadline starts only
once the handshake is done)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from provisiond.settings import Settings, load_settings
from tests.integration.web.conftest import Server
from tests.support.mosquitto import write_tls_files


@pytest.fixture
def server_settings(database_url: str, tmp_path: Path) -> Settings:
    _, cert, key = write_tls_files(tmp_path)
    return load_settings(
        database_url=database_url,
        log_level="warning",
        provisioning__mqtt_tls_cert=str(cert),
        provisioning__mqtt_tls_key=str(key),
        limits__mqtt_connect_timeout_seconds=0.3,
    )


def test_a_connection_without_a_handshake_is_closed(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.mqtt_port), timeout=30) as raw:
        started = time.monotonic()
        assert raw.recv(1) == b""  # closed by the server, well before asyncio's 60 s
        assert time.monotonic() - started < 10
