"""The OCSP responder (RFC 6960) of a running server, on both backends: good, revoked (time
and reason) and unknown, signed by the CA, nonce echoed, by POST and by GET; requests it
cannot answer get the RFC's error statuses; and `openssl ocsp` agrees."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

from provisiond.settings import Settings, load_settings
from tests.conftest import need
from tests.integration.web.conftest import Server
from tests.integration.web.test_api import problem
from tests.integration.web.test_provisioning import make_profile, provision
from tests.integration.web.test_x509 import csr, self_signed

OCSP_REQUEST = {"Content-Type": "application/ocsp-request"}


@pytest.fixture
def server_settings(database_url: str) -> Settings:
    return load_settings(
        database_url=database_url,
        log_level="warning",
        ca_key_passphrase="correct horse battery staple",
        ocsp_validity_seconds=600,
    )


def request(
    cert: x509.Certificate,
    issuer: x509.Certificate,
    *,
    algorithm: hashes.HashAlgorithm | None = None,
    nonce: bytes | None = None,
) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, algorithm or hashes.SHA1())  # noqa: S303 - what clients send
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def post(server: Server, body: bytes) -> ocsp.OCSPResponse:
    r = httpx.post(f"{server.url}/ocsp", content=body, headers=OCSP_REQUEST)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/ocsp-response"
    assert r.headers["cache-control"] == "no-store"
    return ocsp.load_der_ocsp_response(r.content)


def verified(response: ocsp.OCSPResponse, ca: x509.Certificate) -> ocsp.OCSPResponse:
    """``response``, successful and signed by ``ca``'s key, naming it by key hash."""
    assert response.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    key = ca.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    key.verify(
        response.signature, response.tbs_response_bytes, ec.ECDSA(response.signature_hash_algorithm)
    )  # type: ignore[arg-type]
    assert response.responder_key_hash == x509.SubjectKeyIdentifier.from_public_key(key).digest
    return response


@pytest.fixture
def devices(
    server: Server, api: httpx.Client, tmp_path: Path
) -> tuple[x509.Certificate, list[x509.Certificate]]:
    """The CA "devices" and three certificates it issued (CAM-0001 to CAM-0003)."""
    ca_doc = api.post("/api/v1/cas", json={"name": "devices"}).json()
    key, secret = make_profile(api, name="cams", credentials=["x509"], ca="devices")
    certs = []
    for i in (1, 2, 3):
        answer = provision(
            server,
            key,
            secret,
            deviceName=f"CAM-000{i}",
            credentialsType="X509_CERTIFICATE",
            hash=csr(f"CAM-000{i}"),
        )
        certs.append(x509.load_pem_x509_certificate(answer["credentialsValue"].encode()))
    return x509.load_pem_x509_certificate(ca_doc["certificate"].encode()), certs


def test_good_revoked_and_unknown(
    server: Server, api: httpx.Client, devices: tuple[x509.Certificate, list[x509.Certificate]]
) -> None:
    ca, (good, revoked, deleted) = devices
    nonce = os.urandom(32)
    answer = verified(post(server, request(good, ca, nonce=nonce)), ca)
    assert answer.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert answer.serial_number == good.serial_number
    assert answer.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce
    assert answer.next_update_utc is not None
    assert answer.this_update_utc is not None
    assert (answer.next_update_utc - answer.this_update_utc).total_seconds() == 600

    assert api.post("/api/v1/devices/CAM-0002/credentials/revoke").status_code == 200
    assert api.delete("/api/v1/devices/CAM-0003").status_code == 204
    answer = verified(post(server, request(revoked, ca, algorithm=hashes.SHA256())), ca)
    assert answer.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert answer.revocation_reason is None  # "unspecified" is not said
    assert answer.revocation_time_utc is not None
    answer = verified(post(server, request(deleted, ca)), ca)
    assert (answer.certificate_status, answer.revocation_reason) == (
        ocsp.OCSPCertStatus.REVOKED,
        x509.ReasonFlags.cessation_of_operation,
    )
    with pytest.raises(x509.ExtensionNotFound):  # no nonce asked, none given
        answer.extensions.get_extension_for_class(x509.OCSPNonce)

    # a serial number this CA never issued
    stranger = x509.load_pem_x509_certificate(self_signed("CAM-0009").encode())
    never = (
        ocsp.OCSPRequestBuilder()
        .add_certificate_by_hash(
            issuer_name_hash=request_hashes(good, ca)[0],
            issuer_key_hash=request_hashes(good, ca)[1],
            serial_number=stranger.serial_number,
            algorithm=hashes.SHA1(),  # noqa: S303
        )
        .build()
        .public_bytes(serialization.Encoding.DER)
    )
    answer = verified(post(server, never), ca)
    assert answer.certificate_status is ocsp.OCSPCertStatus.UNKNOWN


def request_hashes(cert: x509.Certificate, issuer: x509.Certificate) -> tuple[bytes, bytes]:
    built = ocsp.load_der_ocsp_request(request(cert, issuer))
    return built.issuer_name_hash, built.issuer_key_hash


def test_get_requests_and_refusals(
    server: Server, devices: tuple[x509.Certificate, list[x509.Certificate]]
) -> None:
    ca, (good, _, _) = devices
    encoded = quote(base64.b64encode(request(good, ca)).decode(), safe="")
    r = httpx.get(f"{server.url}/ocsp/{encoded}")
    assert r.status_code == 200
    answer = verified(ocsp.load_der_ocsp_response(r.content), ca)
    assert answer.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert r.headers["cache-control"].startswith("max-age=600, public")  # RFC 5019

    def status(body: bytes) -> ocsp.OCSPResponseStatus:
        return ocsp.load_der_ocsp_response(
            httpx.post(f"{server.url}/ocsp", content=body).content
        ).response_status

    malformed = ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    assert status(b"") is malformed
    assert status(b"\x30\x03\x02\x01\x01") is malformed
    assert status(request(good, ca, nonce=os.urandom(129))) is malformed  # RFC 8954
    assert (
        ocsp.load_der_ocsp_response(
            httpx.get(f"{server.url}/ocsp/not*base64").content
        ).response_status
        is malformed
    )
    # an issuer provisiond does not hold the key of
    stranger = x509.load_pem_x509_certificate(self_signed("somebody").encode())
    assert status(request(stranger, stranger)) is ocsp.OCSPResponseStatus.UNAUTHORIZED
    problem(
        httpx.post(f"{server.url}/ocsp", content=b"0" * (16 * 1024 + 1)), 413, "payload-too-large"
    )


def openssl_ocsp(
    server: Server, tmp_path: Path, ca: x509.Certificate, cert: x509.Certificate
) -> str:
    files = {}
    for name, item in (("ca", ca), ("device", cert)):
        files[name] = tmp_path / f"{name}.pem"
        files[name].write_bytes(item.public_bytes(serialization.Encoding.PEM))
    done = subprocess.run(
        [
            "openssl",
            "ocsp",
            "-issuer",
            files["ca"],
            "-cert",
            files["device"],
            "-url",
            f"{server.url}/ocsp",
            "-CAfile",
            files["ca"],
            "-timeout",
            "20",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Response verify OK" in done.stderr + done.stdout  # signed by the CA, nonce echoed
    return done.stdout


def test_openssl_ocsp_agrees(
    server: Server,
    api: httpx.Client,
    tmp_path: Path,
    devices: tuple[x509.Certificate, list[x509.Certificate]],
) -> None:
    need(shutil.which("openssl") is not None, "openssl is not installed")
    ca, (good, revoked, _) = devices
    assert "device.pem: good" in openssl_ocsp(server, tmp_path, ca, good)
    assert api.post("/api/v1/devices/CAM-0002/credentials/revoke").status_code == 200
    said = openssl_ocsp(server, tmp_path, ca, revoked)
    assert "device.pem: revoked" in said
    assert "Revocation Time:" in said
