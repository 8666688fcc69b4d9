"""Revocation published by a running server, on both backends: device certificates name
their CRL and OCSP addresses; each CA's CRL is served over HTTP without authentication and
written to crl_dir, and lists a certificate within seconds of its revocation (revoke,
factory reset, device deleted) with its reason."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AuthorityInformationAccessOID

from provisiond.settings import Settings, load_settings
from tests.integration.web.conftest import Server
from tests.integration.web.test_api import problem
from tests.integration.web.test_integrations_serve import wait_until
from tests.integration.web.test_provisioning import make_profile, provision
from tests.integration.web.test_x509 import csr, proof

PUBLIC = "https://provision.example.com"


@pytest.fixture
def server_settings(database_url: str, tmp_path: Path) -> Settings:
    return load_settings(
        database_url=database_url,
        log_level="warning",
        ca_key_passphrase="correct horse battery staple",
        public_url=PUBLIC,
        crl_dir=str(tmp_path / "crls"),
    )


def issue(
    server: Server,
    key: str,
    secret: str,
    serial: str,
    device_key: ec.EllipticCurvePrivateKey | None = None,
    **extra: str,
) -> x509.Certificate:
    answer = provision(
        server,
        key,
        secret,
        deviceName=serial,
        credentialsType="X509_CERTIFICATE",
        hash=csr(serial, device_key),
        **extra,
    )
    assert answer["status"] == "SUCCESS", answer
    return x509.load_pem_x509_certificate(answer["credentialsValue"].encode())


def crl(server: Server, form: str = "crl") -> x509.CertificateRevocationList:
    r = httpx.get(f"{server.url}/crl/devices.{form}")
    assert r.status_code == 200, r.text
    if form == "crl":
        assert r.headers["content-type"] == "application/pkix-crl"
        return x509.load_der_x509_crl(r.content)
    return x509.load_pem_x509_crl(r.content)


def reason(crl: x509.CertificateRevocationList, cert: x509.Certificate) -> str | None:
    """The reason ``crl`` gives for ``cert`` ("listed": none given); None: not listed."""
    entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
    if entry is None:
        return None
    try:
        return entry.extensions.get_extension_for_class(x509.CRLReason).value.reason.name
    except x509.ExtensionNotFound:
        return "listed"


def number(crl: x509.CertificateRevocationList) -> int:
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def test_certificates_name_where_their_revocation_is_published(
    server: Server, api: httpx.Client
) -> None:
    ca_doc = api.post("/api/v1/cas", json={"name": "devices"}).json()
    ca = x509.load_pem_x509_certificate(ca_doc["certificate"].encode())
    key, secret = make_profile(api, name="cams", credentials=["x509"], ca="devices")
    cert = issue(server, key, secret, "CAM-0001")

    points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert [n.value for p in points for n in p.full_name or []] == [f"{PUBLIC}/crl/devices.crl"]
    access = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert {(a.access_method, a.access_location.value) for a in access} == {
        (AuthorityInformationAccessOID.OCSP, f"{PUBLIC}/ocsp"),
        (AuthorityInformationAccessOID.CA_ISSUERS, f"{PUBLIC}/ca/devices.crt"),
    }
    # the authority key identifier is the CA's subject key identifier
    assert (
        cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
        == ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    )

    # what those addresses serve, without a token
    issuer = httpx.get(server.url + urlsplit(f"{PUBLIC}/ca/devices.crt").path)
    assert issuer.headers["content-type"] == "application/pkix-cert"
    assert issuer.content == ca.public_bytes(serialization.Encoding.DER)
    assert httpx.get(f"{server.url}/ca/devices.pem").text == ca_doc["certificate"]
    wait_until(lambda: httpx.get(f"{server.url}/crl/devices.crl").status_code == 200)
    served = httpx.get(server.url + urlsplit(points[0].full_name[0].value).path)  # type: ignore[index]
    assert served.status_code == 200
    assert x509.load_der_x509_crl(served.content).is_signature_valid(ca.public_key())  # type: ignore[arg-type]

    problem(httpx.get(f"{server.url}/crl/nope.crl"), 404, "ca-not-found")
    problem(httpx.get(f"{server.url}/crl/nope.pem"), 404, "ca-not-found")
    problem(httpx.get(f"{server.url}/ca/nope.crt"), 404, "ca-not-found")


def test_the_crl_follows_revocations_within_seconds(
    server: Server, api: httpx.Client, server_settings: Settings
) -> None:
    ca_doc = api.post("/api/v1/cas", json={"name": "devices"}).json()
    ca = x509.load_pem_x509_certificate(ca_doc["certificate"].encode())
    key, secret = make_profile(
        api, name="cams", credentials=["x509"], ca="devices", reprovision="factory-reset"
    )
    element = ec.generate_private_key(ec.SECP256R1())  # CAM-0002's key survives a reset
    revoked, reissued, deleted, kept = (
        issue(server, key, secret, f"CAM-000{i}", element if i == 2 else None) for i in range(1, 5)
    )
    wait_until(lambda: httpx.get(f"{server.url}/crl/devices.crl").status_code == 200)
    first = crl(server)
    assert len(first) == 0

    assert api.post("/api/v1/devices/CAM-0001/credentials/revoke").status_code == 200
    wait_until(lambda: reason(crl(server), revoked) == "listed")  # "unspecified": no code

    # a factory reset: the device proves its current key, gets a new certificate, and its
    # first is superseded
    fresh = csr("CAM-0002")
    current = reissued.public_bytes(serialization.Encoding.PEM).decode()
    answer = provision(
        server,
        key,
        secret,
        deviceName="CAM-0002",
        credentialsType="X509_CERTIFICATE",
        hash=fresh,
        currentCertificate=current,
        reprovisionProof=proof(element, key, "CAM-0002", fresh, "provisiond-reprovision-proof"),
    )
    assert answer["status"] == "SUCCESS", answer
    assert answer["credentialsValue"] != current
    wait_until(lambda: reason(crl(server), reissued) == "superseded")

    assert api.delete("/api/v1/devices/CAM-0003").status_code == 204
    wait_until(lambda: reason(crl(server), deleted) == "cessation_of_operation")

    last = crl(server)
    assert number(last) > number(first)
    assert reason(last, kept) is None
    assert last.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
    # the URL's form names its distribution point; the PEM form (the files') names none
    point = last.extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
    assert [n.value for n in point.full_name or []] == [f"{PUBLIC}/crl/devices.crl"]
    pem = crl(server, "pem")
    assert number(pem) == number(last)
    assert {e.serial_number for e in pem} == {e.serial_number for e in last}
    with pytest.raises(x509.ExtensionNotFound):
        pem.extensions.get_extension_for_class(x509.IssuingDistributionPoint)

    # the file Mosquitto reads holds the same CRL; crls.pem holds every CA's
    assert server_settings.crl_dir is not None
    text = httpx.get(f"{server.url}/crl/devices.pem").text
    wait_until(lambda: (server_settings.crl_dir / "devices.crl.pem").read_text() == text)  # type: ignore[operator]
    wait_until(lambda: (server_settings.crl_dir / "crls.pem").read_text() == text)  # type: ignore[operator]

    # a client holding this version is told so
    r = httpx.get(f"{server.url}/crl/devices.crl")
    assert r.headers["cache-control"] == "public, no-cache"
    again = httpx.get(f"{server.url}/crl/devices.crl", headers={"If-None-Match": r.headers["etag"]})
    assert (again.status_code, again.content) == (304, b"")
