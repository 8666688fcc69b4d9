"""An X.509 enrollment group made while the server runs: within dps__ca_refresh_seconds the
listeners' TLS trusts its CA (each handshake takes the newest context), and its devices
register; before that their handshake fails."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from provisiond.bootstrap import open_container
from provisiond.domain.enrollments import Attestation
from provisiond.domain.profiles import ProfileSpec
from provisiond.services import certificates, enrollments, profiles
from provisiond.settings import Settings, load_settings
from tests.integration.dps.conftest import HOST, OPERATOR, SCOPE, Pki, make_cert
from tests.integration.dps.test_wire import connect, poll, register, session
from tests.integration.web.conftest import Server


@pytest.fixture
def server_settings(database_url: str, pki: Pki) -> Settings:
    return load_settings(
        database_url=database_url,
        log_level="warning",
        dps__id_scope=SCOPE,
        dps__mqtt_port=0,
        dps__tls_cert=str(pki.cert),
        dps__tls_key=str(pki.key),
        dps__ca_refresh_seconds=0.05,
    )


def handshake(server: Server, pki: Pki, cert: tuple[Path, Path]) -> bool:
    """Whether a device with this certificate gets as far as a CONNACK (TLS 1.3 reports a
    refused client certificate only once the client reads)."""
    context = ssl.create_default_context(cafile=str(pki.ca))
    context.load_cert_chain(*cert)
    with socket.create_connection(("127.0.0.1", server.app.state.dps_port), timeout=30) as raw:
        try:
            with context.wrap_socket(raw, server_hostname=HOST) as s:
                user = f"{SCOPE}/registrations/late-1/api-version=2019-03-31"
                s.sendall(connect(4, "late-1", user, None))
                return s.recv(4) == b"\x20\x02\x00\x00"
        except (ssl.SSLError, ConnectionError):
            return False


def test_a_group_made_while_serving_is_trusted_after_the_refresh(
    server: Server, pki: Pki, tmp_path: Path
) -> None:
    cert = make_cert(tmp_path, "late-1", pki.maker_key, pki.maker.subject)[:2]
    assert not handshake(server, pki, cert)  # nothing trusts the maker CA yet

    async def enroll() -> None:
        async with open_container(server.settings) as c:
            pem = pki.maker.public_bytes(serialization.Encoding.PEM).decode()
            now = c.now()
            await certificates.register_ca_certificate(
                c.uow(), scope=OPERATOR, name="late", certificate_pem=pem, actor="t", now=now
            )
            spec = ProfileSpec("late", credentials=("x509",), device_ca="late")
            await profiles.create_profile(c.uow(), scope=OPERATOR, spec=spec, actor="t", now=now)
            await enrollments.enroll_group(
                c.uow(),
                scope=OPERATOR,
                sealer=c.sealer,
                profile_name="late",
                attestation=Attestation.X509,
                hub="late.example.com",
                now=now,
            )

    asyncio.run(enroll())
    deadline = time.monotonic() + 30
    while not handshake(server, pki, cert):  # the refresh: every 0.05 s
        assert time.monotonic() < deadline, "the new CA was never trusted"
        time.sleep(0.05)
    device = session(server, pki, "late-1", None, cert)
    _, begun = register(device, "late-1")
    _, done = poll(device, begun["operationId"])
    assert done["registrationState"]["assignedHub"] == "late.example.com"
    device.close()
