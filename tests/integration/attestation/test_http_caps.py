"""Attacks on the mutual-TLS device API's HTTP server (transports/h11_server.py, which
DPS's HTTPS API shares), by a holder of a device certificate, over real TLS on loopback:
a connection that sends no request after its handshake, a request head without end, and
more connections from one address than it may hold (the longest idle one goes). Each is
cut off, and the API still answers a device afterwards."""

from __future__ import annotations

import contextlib
import socket
import ssl

import pytest

from provisiond.settings import Settings
from tests.integration.attestation.conftest import (
    Pki,
    attesting_settings,
    client_context,
    https_provision,
    make_device,
)
from tests.integration.web.conftest import Server

DEADLINE = 5  # limits__mqtt_connect_timeout_seconds: a request head within it
PER_ADDRESS = 3  # limits__mqtt_max_sessions_per_address


@pytest.fixture
def server_settings(database_url: str, pki: Pki) -> Settings:
    return attesting_settings(
        database_url,
        pki,
        limits__mqtt_connect_timeout_seconds=DEADLINE,
        limits__mqtt_max_sessions_per_address=PER_ADDRESS,
    )


def tls_connection(server: Server, context: ssl.SSLContext) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", server.app.state.device_tls_port), timeout=30)
    return context.wrap_socket(raw, server_hostname="localhost")


def closed_by_server(conn: ssl.SSLSocket, within: float = 30) -> bool:
    """Whether the server ends the connection within ``within`` seconds: EOF, a reset, or
    TLS's close (False: still open then)."""
    conn.settimeout(within)
    try:
        return conn.recv(65536) == b""
    except TimeoutError:
        return False
    except (ConnectionResetError, ssl.SSLError):
        return True


def provision_over(conn: ssl.SSLSocket) -> bytes:
    """``POST /api/v1/provision`` (attested by the connection's certificate) on an open
    connection: the status line of the answer."""
    conn.sendall(
        b"POST /api/v1/provision HTTP/1.1\r\nHost: localhost\r\n"
        b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    )
    conn.settimeout(30)
    return conn.recv(65536).split(b"\r\n", 1)[0]


def test_a_connection_that_sends_no_request_is_dropped(server: Server, pki: Pki) -> None:
    device = make_device(pki.directory, "QUIET-1", pki.maker)
    with tls_connection(server, client_context(pki, device)) as conn:
        assert closed_by_server(conn, within=2 * DEADLINE)


def test_a_request_head_without_end_is_cut_off(server: Server, pki: Pki) -> None:
    device = make_device(pki.directory, "LONG-1", pki.maker)
    with tls_connection(server, client_context(pki, device)) as conn:
        conn.sendall(b"POST /api/v1/provision HTTP/1.1\r\nHost: x\r\n")
        with contextlib.suppress(ConnectionResetError, BrokenPipeError, ssl.SSLError):
            for i in range(2000):  # 2000 header lines of 40 bytes: 80 KiB, past the 16 KiB
                conn.sendall(f"X-Filler-{i:05d}: {'a' * 20}\r\n".encode())
        # for its size: long before the request deadline would close it
        assert closed_by_server(conn, within=DEADLINE / 2)
    good = make_device(pki.directory, "GOOD-9", pki.maker)
    assert https_provision(server, pki, good).json()["status"] == "SUCCESS"


def test_one_address_holds_at_most_its_share_of_connections(server: Server, pki: Pki) -> None:
    device = make_device(pki.directory, "MANY-1", pki.maker)
    context = client_context(pki, device)
    held = [tls_connection(server, context) for _ in range(PER_ADDRESS)]
    try:
        newest = tls_connection(server, context)  # one more than the address may hold
        held.append(newest)
        # the longest idle goes at once, long before the request deadline would close it
        assert closed_by_server(held[0], within=DEADLINE / 2)
        assert not closed_by_server(held[1], within=0.2)
        assert provision_over(newest) == b"HTTP/1.1 200 "
    finally:
        for conn in held:
            conn.close()
