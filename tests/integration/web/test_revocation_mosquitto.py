"""The broker obeys revocation (issue 19), with a real Mosquitto: a TLS listener that
requires a client certificate (``require_certificate true``), trusts provisiond's CA
(``cafile``) and reads the CRL file provisiond writes (``crlfile``). A device provisions an
X.509 certificate from its CSR and connects; after ``provisiond devices revoke`` a new
connection with that certificate is refused, while another device's still connects."""

from __future__ import annotations

import ssl
import time
from pathlib import Path

import httpx
import paho.mqtt.client as paho
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from paho.mqtt.enums import CallbackAPIVersion
from typer.testing import CliRunner

from provisiond.cli.app import app as cli_app
from provisiond.settings import Settings, load_settings
from tests.conftest import need
from tests.integration.web.conftest import Server
from tests.integration.web.test_integrations_serve import wait_until
from tests.integration.web.test_provisioning import make_profile, provision
from tests.integration.web.test_x509 import csr
from tests.support.mosquitto import Broker, files_broker
from tests.support.mosquitto import available as mosquitto_available


@pytest.fixture
def crl_dir(tmp_path: Path) -> Path:
    return tmp_path / "crls"


@pytest.fixture
def broker_dir(tmp_path: Path) -> Path:
    return tmp_path / "broker"


@pytest.fixture
def server_settings(database_url: str, crl_dir: Path, broker_dir: Path) -> Settings:
    need(mosquitto_available(), "mosquitto is not installed")
    # provisiond writes each CA's CRL into crl_dir and sends Mosquitto SIGHUP (its pid_file)
    return load_settings(
        database_url=database_url,
        log_level="warning",
        ca_key_passphrase="correct horse battery staple",
        crl_dir=str(crl_dir),
        broker={"pid_file": str(broker_dir / "mosquitto.pid")},
    )


def device_files(
    directory: Path, serial: str, server: Server, key: str, secret: str
) -> tuple[Path, Path]:
    """Provision ``serial`` with a CSR; its certificate and key files."""
    private = ec.generate_private_key(ec.SECP256R1())
    answer = provision(
        server,
        key,
        secret,
        deviceName=serial,
        credentialsType="X509_CERTIFICATE",
        hash=csr(serial, private),
    )
    assert answer["status"] == "SUCCESS", answer
    cert, key_file = directory / f"{serial}.pem", directory / f"{serial}.key"
    cert.write_text(answer["credentialsValue"])
    key_file.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert, key_file


def connect(broker: Broker, cert: Path, key: Path, *, tls12: bool = False) -> str:
    """``connected``, or why the broker refused. With TLS 1.2 the broker checks the
    certificate during the handshake, so its alert (e.g. ``SSLV3_ALERT_CERTIFICATE_REVOKED``)
    is what ``connect`` raises; with TLS 1.3 it comes after, on a read (or not at all if
    the broker closes first): then ``closed``."""
    assert broker.tls_port is not None
    context = ssl.create_default_context(cafile=str(broker.tls_ca))
    context.load_cert_chain(cert, key)
    if tls12:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=cert.stem)
    client.tls_set_context(context)
    try:
        client.connect("127.0.0.1", broker.tls_port, keepalive=30)
    except ssl.SSLError as err:
        return str(err.reason)
    deadline = time.monotonic() + 10
    try:
        while not client.is_connected():
            if client.loop(timeout=1.0) != paho.MQTT_ERR_SUCCESS:
                return "closed"
            if time.monotonic() > deadline:
                return "no answer"
        return "connected"
    finally:
        client.disconnect()


def test_mosquitto_refuses_a_revoked_device_certificate(
    server: Server, api: httpx.Client, tmp_path: Path, crl_dir: Path, broker_dir: Path
) -> None:
    made = api.post("/api/v1/cas", json={"name": "devices"})
    assert made.status_code == 201, made.text
    ca_file = tmp_path / "devices-ca.pem"
    ca_file.write_text(made.json()["certificate"])
    crl_file = crl_dir / "devices.crl.pem"
    wait_until(crl_file.exists)  # the new CA's first CRL, written by serve

    key, secret = make_profile(api, name="cameras", credentials=["x509"], ca="devices")
    revoked = device_files(tmp_path, "CAM-0001", server, key, secret)
    kept = device_files(tmp_path, "CAM-0002", server, key, secret)

    with files_broker(broker_dir, client_ca=ca_file, crl_file=crl_file) as broker:
        assert connect(broker, *revoked) == "connected"
        assert connect(broker, *kept) == "connected"

        result = CliRunner().invoke(
            cli_app,
            ["devices", "revoke", "CAM-0001", "--database", server.settings.effective_database_url],
        )
        assert result.exit_code == 0, result.output

        # serve writes the new CRL and has Mosquitto read it: within seconds, no restart
        wait_until(lambda: connect(broker, *revoked) != "connected", timeout=15)
        assert connect(broker, *revoked, tls12=True) == "SSLV3_ALERT_CERTIFICATE_REVOKED"
        assert connect(broker, *kept) == "connected"
        assert connect(broker, *kept, tls12=True) == "connected"
