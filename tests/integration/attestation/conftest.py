"""A provisiond attesting devices by their TLS client certificate: the MQTT listener over
TLS asking for client certificates and the mutual-TLS device API, with manufacturer CAs and
profiles made before it starts. Certificates are made here (cryptography): a device's is
signed by a manufacturer's CA (or an intermediate of it), its subject CN its serial."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import queue
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from provisiond.bootstrap import open_container
from provisiond.domain.profiles import ProfileSpec
from provisiond.domain.scope import Scope
from provisiond.services import certificates, profiles
from provisiond.settings import Settings, load_settings
from tests.integration.web.conftest import Server, api, server  # noqa: F401 - fixtures used here
from tests.support.mosquitto import write_tls_files

OPERATOR = Scope.operator()
PEM = serialization.Encoding.PEM
DAY = dt.timedelta(days=1)


@dataclass
class Issuer:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    chain: tuple[x509.Certificate, ...] = ()  # the intermediates above it, up to the root

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(PEM).decode()


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(cn: str, parent: Issuer | None = None) -> Issuer:
    """A CA: self-signed, or an intermediate signed by ``parent``."""
    now = dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(parent.cert.subject if parent else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + 30 * DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(parent.key if parent else key, hashes.SHA256())
    )
    chain = (parent.cert, *parent.chain) if parent else ()
    return Issuer(cert, key, chain)


@dataclass
class Device:
    """A device's certificate and key files (the certificate file holds its chain)."""

    cert: Path
    key: Path
    certificate: x509.Certificate

    @property
    def pem(self) -> str:
        return self.certificate.public_bytes(PEM).decode()


def make_device(
    directory: Path,
    cn: str,
    issuer: Issuer,
    *,
    key: Any = None,
    valid: tuple[dt.timedelta, dt.timedelta] = (-dt.timedelta(minutes=5), DAY),
    send_chain: bool = True,
    name: str | None = None,
) -> Device:
    """A certificate for ``cn`` signed by ``issuer``, valid from ``valid[0]`` to ``valid[1]``
    from now."""
    now = dt.datetime.now(dt.UTC)
    key = key or ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + valid[0])
        .not_valid_after(now + valid[1])
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(issuer.key, hashes.SHA256())
    )
    stem = name or f"{cn}-{cert.serial_number % 100_000}"
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
    chain = (cert, issuer.cert, *issuer.chain) if send_chain and issuer.chain else (cert,)
    cert_path.write_bytes(b"".join(c.public_bytes(PEM) for c in chain))
    key_path.write_bytes(
        key.private_bytes(PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return Device(cert_path, key_path, cert)


@dataclass
class Pki:
    server_ca: Path  # what devices trust for the server's certificate
    server_cert: Path
    server_key: Path
    maker: Issuer  # the device CA of "cams" (reprovision never)
    reset_maker: Issuer  # of "resets" (factory-reset)
    root: Issuer  # a manufacturer's root, the device CA of "rooted"
    line: Issuer  # its intermediate, the device CA of "line"
    shared: Issuer  # the device CA of "shared-a" and "shared-b"
    token_maker: Issuer  # of "tokens", which hands out access tokens only
    pre_maker: Issuer  # of "factory-line", a pre-provisioned profile
    rogue: Issuer  # nobody's
    directory: Path = field(default_factory=Path)

    def device(self, cn: str, issuer: Issuer | None = None, **options: Any) -> Device:
        return make_device(self.directory, cn, issuer or self.maker, **options)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    server_ca, cert, key = write_tls_files(tmp_path)
    root = make_ca("Maker Root")
    return Pki(
        server_ca,
        cert,
        key,
        make_ca("Maker CA"),
        make_ca("Reset Maker CA"),
        root,
        make_ca("Maker Line 2", root),
        make_ca("Shared Maker CA"),
        make_ca("Token Maker CA"),
        make_ca("Pre Maker CA"),
        make_ca("Rogue CA"),
        tmp_path,
    )


PROFILES = (
    # name, device CA, more of the spec
    ("cams", "maker", {}),
    ("resets", "reset-maker", {"reprovision": "factory-reset"}),
    ("rooted", "root", {}),
    ("line", "line", {}),
    ("shared-a", "shared", {}),
    ("shared-b", "shared", {}),
    ("tokens", "token-maker", {"credentials": ("access-token",)}),
    ("factory-line", "pre-maker", {"strategy": "pre-provisioned"}),
)


async def _set_up(settings: Settings, pki: Pki) -> None:
    async with open_container(settings) as c:
        now = c.now()
        for name, issuer in (
            ("maker", pki.maker),
            ("reset-maker", pki.reset_maker),
            ("root", pki.root),
            ("line", pki.line),
            ("shared", pki.shared),
            ("token-maker", pki.token_maker),
            ("pre-maker", pki.pre_maker),
        ):
            await certificates.register_ca_certificate(
                c.uow(), scope=OPERATOR, name=name, certificate_pem=issuer.pem, actor="t", now=now
            )
        for name, device_ca, more in PROFILES:
            spec = ProfileSpec(name, **{"credentials": ("x509",), **more}, device_ca=device_ca)
            await profiles.create_profile(c.uow(), scope=OPERATOR, spec=spec, actor="t", now=now)


def attesting_settings(database_url: str, pki: Pki, **more: Any) -> Settings:
    """Both attesting listeners on free ports, the CAs reloaded every 0.05 s, the CAs and
    profiles above made."""
    settings = load_settings(
        database_url=database_url,
        log_level="warning",
        provisioning__mqtt_tls_cert=str(pki.server_cert),
        provisioning__mqtt_tls_key=str(pki.server_key),
        provisioning__mqtt_client_certificates=True,
        provisioning__device_tls_port=0,
        provisioning__device_ca_refresh_seconds=0.05,
        **more,
    )
    asyncio.run(_set_up(settings, pki))
    return settings


@pytest.fixture
def server_settings(database_url: str, pki: Pki) -> Settings:
    return attesting_settings(database_url, pki)


def client_context(pki: Pki, device: Device | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.server_ca))
    if device is not None:
        context.load_cert_chain(device.cert, device.key)
    return context


def handshake(port: int, pki: Pki, device: Device | None) -> bool:
    """Whether a TLS connection with this certificate is kept once the server has checked
    it: TLS 1.3 reports a refused client certificate only when the client reads, so the
    client sends a PINGREQ-less MQTT CONNECT and reads the CONNACK."""
    from tests.support.mqtt_packets import connect_packet

    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        try:
            with client_context(pki, device).wrap_socket(raw, server_hostname="127.0.0.1") as s:
                s.sendall(connect_packet(4, "provision"))
                return s.recv(4) == b"\x20\x02\x00\x00"
        except (ssl.SSLError, ConnectionError):
            return False


class Refused(Exception):
    """The connection ended before an answer (the handshake failed, or the server closed)."""


def mqtt_provision(
    served: Server, pki: Pki, device: Device | None, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Provision over the MQTT listener with paho (MQTT 3.1.1, TLS, the device's client
    certificate): the answer on ``/provision/response``, or :class:`Refused`."""
    got: queue.Queue[dict[str, Any] | None] = queue.Queue()
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    client.username_pw_set("provision")
    client.tls_set_context(client_context(pki, device))

    def connected(c: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            got.put(None)
            return
        c.subscribe("/provision/response", qos=1)
        c.publish("/provision/request", json.dumps(body or {}), qos=1)

    client.on_connect = connected
    client.on_message = lambda _c, _u, message: got.put(json.loads(message.payload))
    client.on_disconnect = lambda *_: got.put(None)
    try:
        client.connect("127.0.0.1", served.mqtt_port, keepalive=30)
    except (ssl.SSLError, ConnectionError) as err:
        raise Refused(str(err)) from err
    client.loop_start()
    try:
        answer = got.get(timeout=30)
    finally:
        client.disconnect()
        client.loop_stop()
    if answer is None:
        raise Refused("the connection ended without an answer")
    return answer


def https_provision(
    served: Server, pki: Pki, device: Device | None, body: dict[str, Any] | None = None
) -> httpx.Response:
    """``POST /api/v1/provision`` on the mutual-TLS device API with this client certificate
    (httpx raises when the handshake fails)."""
    port = served.app.state.device_tls_port
    with httpx.Client(verify=client_context(pki, device), timeout=30) as client:
        return client.post(f"https://127.0.0.1:{port}/api/v1/provision", json=body or {})


def assert_refused(answer: dict[str, Any], *words: str) -> None:
    assert answer["status"] in ("FAILURE", "NOT_FOUND"), answer
    for word in words:
        assert word in answer["errorMsg"], answer


def events(served: Server, serial: str, kinds: Sequence[str] = ()) -> list[dict[str, Any]]:
    with served.client() as api_client:
        r = api_client.get("/api/v1/events", params={"serial": serial, "limit": 100})
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["items"]
    return [e for e in found if not kinds or e["type"] in kinds]
