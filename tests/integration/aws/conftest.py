"""A provisiond server with its AWS IoT fleet-provisioning listener (mutual TLS), a
signing CA, a manufacturer's claim CA registered on a profile, and a claim certificate —
what an AWS user has after pointing their fleet at provisiond."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from provisiond.settings import Settings, load_settings
from tests.integration.web.conftest import Server, api, server  # noqa: F401 - fixtures
from tests.integration.web.test_integrations_serve import wait_until
from tests.support.mosquitto import write_tls_files

TEMPLATE = "FleetTemplate"


@dataclass
class Authority:
    """A CA made here (the manufacturer's): its certificate and key."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def make(cls, name: str) -> Authority:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256())
        )
        return cls(cert, key)

    @property
    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    def issue(self, directory: Path, name: str) -> tuple[Path, Path]:
        """A client certificate (a claim certificate) and its key, as files."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
            .sign(self.key, hashes.SHA256())
        )
        cert_file, key_file = directory / f"{name}.pem", directory / f"{name}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return cert_file, key_file


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    """The listener's server CA, certificate and key (for ``localhost``)."""
    return write_tls_files(tmp_path)


@pytest.fixture
def crl_dir(tmp_path: Path) -> Path:
    return tmp_path / "crls"


@pytest.fixture
def broker_dir(tmp_path: Path) -> Path:
    return tmp_path / "broker"


@pytest.fixture
def aws_settings() -> dict[str, object]:
    """What a test changes of the ``aws`` settings group."""
    return {}


@pytest.fixture
def more_settings() -> dict[str, Any]:
    """Settings outside the ``aws`` group a test sets."""
    return {}


@pytest.fixture
def aws_templates() -> dict[str, object]:
    """Templates a test adds to TEMPLATE."""
    return {}


@pytest.fixture
def server_settings(
    database_url: str,
    tls_files: tuple[Path, Path, Path],
    crl_dir: Path,
    broker_dir: Path,
    aws_settings: dict[str, object],
    aws_templates: dict[str, object],
    more_settings: dict[str, Any],
) -> Settings:
    _, cert, key = tls_files
    return load_settings(
        database_url=database_url,
        log_level="warning",
        ca_key_passphrase="correct horse battery staple",
        crl_dir=str(crl_dir),
        broker={"pid_file": str(broker_dir / "mosquitto.pid")},
        aws={
            "port": 0,
            "tls_cert": str(cert),
            "tls_key": str(key),
            "trust_refresh_seconds": 0.2,
            "templates": {
                TEMPLATE: {
                    "profile": "cameras",
                    "serial": "SerialNumber",
                    "name": "DeviceName",
                    "tags": {"site": "Site"},
                    "thing_name": "thing-{serial}",
                    "device_configuration": {"broker": "mqtts://broker.example:8883"},
                },
                **aws_templates,
            },
            **aws_settings,
        },
        **more_settings,
    )


@dataclass
class Fleet:
    """The server side an AWS user set up: the devices' CA (signing), the manufacturer's
    claim CA, and a profile joining them."""

    server: Server
    claims: Authority
    devices_ca: Path  # the signing CA's certificate, for the broker
    server_ca: Path  # what devices trust for the listener

    @property
    def port(self) -> int:
        return int(self.server.app.state.aws_port)


@pytest.fixture
def claims() -> Authority:
    return Authority.make("Manufacturer claim CA")


@pytest.fixture
def fleet(
    server: Server,  # noqa: F811 - the fixture
    api: httpx.Client,  # noqa: F811 - the fixture
    claims: Authority,
    tmp_path: Path,
    tls_files: tuple[Path, Path, Path],
) -> Fleet:
    made = api.post("/api/v1/cas", json={"name": "devices"})
    assert made.status_code == 201, made.text
    devices_ca = tmp_path / "devices-ca.pem"
    devices_ca.write_text(made.json()["certificate"])
    registered = api.post("/api/v1/cas", json={"name": "claims", "certificate": claims.pem})
    assert registered.status_code == 201, registered.text
    profile = api.post(
        "/api/v1/profiles",
        json={"name": "cameras", "credentials": ["x509"], "ca": "devices", "device_ca": "claims"},
    )
    assert profile.status_code == 201, profile.text
    made_fleet = Fleet(server, claims, devices_ca, tls_files[0])
    probe = claims.issue(tmp_path, "probe")
    wait_until(lambda: handshake(made_fleet, *probe))  # the listener reloads its CAs
    return made_fleet


def handshake(fleet: Fleet, cert: Path | None, key: Path | None) -> bool:
    """Whether the listener completes a TLS handshake with this client certificate (TLS
    1.2: the server checks it within the handshake)."""
    context = ssl.create_default_context(cafile=str(fleet.server_ca))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    if cert is not None and key is not None:
        context.load_cert_chain(cert, key)
    try:
        with (
            socket.create_connection(("127.0.0.1", fleet.port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname="localhost"),
        ):
            return True
    except (ssl.SSLError, OSError):
        return False
