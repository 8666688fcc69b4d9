"""A provisiond serving Azure DPS (MQTT and HTTPS, TLS) with its enrollments made before it
starts, and a forwarding HTTP CONNECT proxy: Azure's SDK connects to port 8883 always; the
proxy (the SDK's documented ``proxy_options``) takes it to the listener's free port."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import json
import socket
import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from provisiond.bootstrap import open_container
from provisiond.domain.device import DeviceSpec
from provisiond.domain.enrollments import Attestation
from provisiond.domain.profiles import ProfileSpec
from provisiond.domain.scope import Scope
from provisiond.services import certificates, devices, enrollments, profiles
from provisiond.settings import Settings, load_settings
from tests.integration.web.conftest import api, server  # noqa: F401 - fixtures used here
from tests.support.mosquitto import write_tls_files

SCOPE = "0ne00DPSTEST"
HOST = "dps.provisiond.test"
HUB = "broker.example.com:8883"
OPERATOR = Scope.operator()


@dataclass
class Pki:
    ca: Path  # the server's CA (what the SDK is given as server_verification_cert)
    cert: Path
    key: Path
    maker_key: ec.EllipticCurvePrivateKey
    maker: x509.Certificate


@dataclass
class Enrolled:
    group_key: str  # the "sensors" profile's symmetric group key (reprovision: never)
    again_key: str  # the "again" profile's (reprovision: with-proof)
    device_key: str  # the individual enrollment of device "IND-1"
    custom_key: str  # the "custom" profile's, with a custom allocation webhook


def make_cert(
    directory: Path,
    name: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    *,
    ca: bool = False,
) -> tuple[Path, Path, x509.Certificate, ec.EllipticCurvePrivateKey]:
    now = dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject if ca else issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(key if ca else issuer_key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path, cert, key


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca, cert, key = write_tls_files(tmp_path, (HOST,))
    _, _, maker, maker_key = make_cert(tmp_path, "maker-ca", None, None, ca=True)  # type: ignore[arg-type]
    return Pki(ca, cert, key, maker_key, maker)


def device_certificate(pki: Pki, directory: Path, registration_id: str) -> tuple[Path, Path]:
    cert, key, _, _ = make_cert(directory, registration_id, pki.maker_key, pki.maker.subject)
    return cert, key


async def _enroll(settings: Settings, pki: Pki, webhook: str) -> Enrolled:
    async with open_container(settings) as c:
        now = c.now()
        maker_pem = pki.maker.public_bytes(serialization.Encoding.PEM).decode()
        await certificates.register_ca_certificate(
            c.uow(), scope=OPERATOR, name="maker", certificate_pem=maker_pem, actor="t", now=now
        )
        for spec in (
            ProfileSpec("sensors"),
            ProfileSpec("again", reprovision="with-proof"),
            ProfileSpec("factory", credentials=("x509",), device_ca="maker"),
            ProfileSpec("single"),
            ProfileSpec("custom"),
        ):
            await profiles.create_profile(c.uow(), scope=OPERATOR, spec=spec, actor="t", now=now)
        _, group_key = await enrollments.enroll_group(
            c.uow(),
            scope=OPERATOR,
            sealer=c.sealer,
            profile_name="sensors",
            attestation=Attestation.SYMMETRIC_KEY,
            hub=HUB,
            now=now,
        )
        _, again_key = await enrollments.enroll_group(
            c.uow(),
            scope=OPERATOR,
            sealer=c.sealer,
            profile_name="again",
            attestation=Attestation.SYMMETRIC_KEY,
            hub="again.example.com",
            now=now,
        )
        await enrollments.enroll_group(
            c.uow(),
            scope=OPERATOR,
            sealer=c.sealer,
            profile_name="factory",
            attestation=Attestation.X509,
            hub="x509.example.com",
            now=now,
        )
        _, custom_key = await enrollments.enroll_group(
            c.uow(),
            scope=OPERATOR,
            sealer=c.sealer,
            profile_name="custom",
            attestation=Attestation.SYMMETRIC_KEY,
            hub="default.example.com",
            webhook=webhook,
            now=now,
        )
        await devices.create_device(
            c.uow(), scope=OPERATOR, spec=DeviceSpec("IND-1"), actor="t", now=now
        )
        _, device_key = await enrollments.enroll_device(
            c.uow(),
            scope=OPERATOR,
            sealer=c.sealer,
            serial="IND-1",
            profile_name="single",
            hub="single.example.com",
            now=now,
        )
    assert group_key is not None
    assert again_key is not None
    assert custom_key is not None
    return Enrolled(group_key, again_key, device_key, custom_key)


@pytest.fixture
def enrolled_box() -> dict[str, Enrolled]:
    return {}


class _Allocator(BaseHTTPRequestHandler):
    """DPS's custom allocation webhook, as a user would write one: by registration id."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.asked.append(body)  # type: ignore[attr-defined]
        rid = body["deviceRuntimeContext"]["registrationId"]
        if rid.startswith("alloc-slow"):
            self.server.release.wait(30)  # type: ignore[attr-defined]
        status, answer = {
            "alloc-ok": (200, b'{"iotHubHostName": "custom.example.com", "payload": {"x": 1}}'),
            "alloc-refused": (403, b"{}"),
            "alloc-bad": (200, b"not json"),
        }.get(rid, (200, b"{}"))
        self.send_response(status)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def allocator() -> Iterator[ThreadingHTTPServer]:
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Allocator)
    receiver.asked = []  # type: ignore[attr-defined]
    receiver.release = threading.Event()  # type: ignore[attr-defined]
    receiver.daemon_threads = True
    thread = threading.Thread(target=receiver.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.release.set()  # type: ignore[attr-defined]
        receiver.shutdown()
        receiver.server_close()


@pytest.fixture
def server_settings(
    database_url: str,
    pki: Pki,
    enrolled_box: dict[str, Enrolled],
    allocator: ThreadingHTTPServer,
) -> Settings:
    settings = load_settings(
        database_url=database_url,
        log_level="warning",
        dps__id_scope=SCOPE,
        dps__mqtt_port=0,
        dps__https_port=0,
        dps__tls_cert=str(pki.cert),
        dps__tls_key=str(pki.key),
        device_key_passphrase="dps tests: enrollment keys are sealed",
        dps__allocation_timeout_seconds=0.5,
        webhooks__allow_networks=["127.0.0.1/32"],
    )
    webhook = f"http://127.0.0.1:{allocator.server_address[1]}/allocate"
    enrolled_box["keys"] = asyncio.run(_enroll(settings, pki, webhook))
    return settings


@pytest.fixture
def enrolled(server_settings: Settings, enrolled_box: dict[str, Enrolled]) -> Enrolled:
    del server_settings  # made with it
    return enrolled_box["keys"]


def derive(group_key: str, registration_id: str) -> str:
    import hashlib
    import hmac

    raw = hmac.new(base64.b64decode(group_key), registration_id.encode(), hashlib.sha256)
    return base64.b64encode(raw.digest()).decode()


class _Tunnel(socketserver.BaseRequestHandler):
    """HTTP CONNECT to any host: a tunnel to the proxy's one target port."""

    target: int = 0

    def handle(self) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.request.recv(4096)
            if not chunk:
                return
            head += chunk
        self.server.connects.append(head.split(b"\r\n", 1)[0].decode())  # type: ignore[attr-defined]
        upstream = socket.create_connection(("127.0.0.1", self.server.target))  # type: ignore[attr-defined]
        self.request.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        rest = head.split(b"\r\n\r\n", 1)[1]
        if rest:
            upstream.sendall(rest)

        def pump(src: socket.socket, dst: socket.socket) -> None:
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    with contextlib.suppress(OSError):
                        s.shutdown(socket.SHUT_RDWR)

        back = threading.Thread(target=pump, args=(upstream, self.request), daemon=True)
        back.start()
        pump(self.request, upstream)
        back.join(timeout=30)
        upstream.close()


class Proxy(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, target: int) -> None:
        super().__init__(("127.0.0.1", 0), _Tunnel)
        self.target = target
        self.connects: list[str] = []

    @property
    def port(self) -> int:
        return int(self.server_address[1])


@pytest.fixture
def dps_proxy(server: object) -> Iterator[Proxy]:  # noqa: F811 - the fixture imported above
    proxy = Proxy(int(server.app.state.dps_port))  # type: ignore[attr-defined]
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()
