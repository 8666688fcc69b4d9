"""X.509 provisioning over HTTP on both backends: a CA signs devices' CSRs, devices may
register certificates they have, and bad CSRs are refused saying why."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from provisiond.settings import Settings, load_settings
from tests.integration.web.conftest import Server
from tests.integration.web.test_api import problem
from tests.integration.web.test_provisioning import provision, sql


@pytest.fixture
def server_settings(database_url: str) -> Settings:
    return load_settings(
        database_url=database_url,
        log_level="warning",
        ca_key_passphrase="correct horse battery staple",
    )


def verify_issued(certificate: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def csr(common_name: str, key: object | None = None) -> str:
    private = key or ec.generate_private_key(ec.SECP256R1())
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(private, hashes.SHA256())
    )  # type: ignore[arg-type]
    return request.public_bytes(serialization.Encoding.PEM).decode()


def self_signed_pair(
    common_name: str,
    days: int = 30,
    key: ec.EllipticCurvePrivateKey | None = None,
) -> tuple[ec.EllipticCurvePrivateKey, str]:
    key = key or ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM).decode()


def self_signed(common_name: str, days: int = 30) -> str:
    return self_signed_pair(common_name, days)[1]


def proof(
    key: ec.EllipticCurvePrivateKey,
    provision_key: str,
    device_name: str,
    pem: str,
    purpose: str = "provisiond-certificate-proof",
) -> str:
    """A device's signature proving it holds ``key`` (docs/provisioning.md)."""
    message = (
        f"{purpose}\n{provision_key}\n{device_name}\n{hashlib.sha256(pem.encode()).hexdigest()}"
    ).encode()
    return base64.b64encode(key.sign(message, ec.ECDSA(hashes.SHA256()))).decode()


def test_csr_signed_by_the_profiles_ca(server: Server, api: httpx.Client) -> None:
    made = api.post("/api/v1/cas", json={"name": "factory", "days": 365})
    assert made.status_code == 201, made.text
    ca_doc = made.json()
    assert ca_doc["key_encrypted"] is True
    ca_cert = x509.load_pem_x509_certificate(ca_doc["certificate"].encode())
    keys = str(sql(server, "SELECT private_key_pem FROM certificate_authorities"))
    assert "ENCRYPTED PRIVATE KEY" in keys
    problem(api.post("/api/v1/cas", json={"name": "factory"}), 409, "ca-exists")
    problem(api.get("/api/v1/cas/nope"), 404, "ca-not-found")
    problem(api.post("/api/v1/profiles", json={"name": "x", "ca": "nope"}), 404, "ca-not-found")

    profile = api.post(
        "/api/v1/profiles",
        json={"name": "certs", "credentials": ["x509"], "ca": "factory", "certificate_days": 90},
    ).json()
    assert (profile["ca"], profile["certificate_days"]) == ("factory", 90)
    key, secret = profile["key"], profile["secret"]

    def ask(name: str, pem: str) -> dict[str, object]:
        return provision(
            server, key, secret, deviceName=name, credentialsType="X509_CERTIFICATE", hash=pem
        )

    answer = ask("cam-0001", csr("CAM-0001"))
    assert (answer["status"], answer["credentialsType"]) == ("SUCCESS", "X509_CERTIFICATE")
    cert = x509.load_pem_x509_certificate(str(answer["credentialsValue"]).encode())
    assert verify_issued(cert, ca_cert)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "CAM-0001"
    assert cert.extensions.get_extension_for_class(
        x509.ExtendedKeyUsage
    ).value == x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert timedelta(days=90) <= lifetime <= timedelta(days=90, minutes=10)
    fingerprint = cert.fingerprint(hashes.SHA256()).hex()
    assert sql(server, "SELECT lookup FROM credentials WHERE revoked_at IS NULL") == [
        (fingerprint,)
    ]

    # the CA's register holds what it issued: serial number, key, lifetime, the PEM
    register = sql(
        server,
        "SELECT serial_number, device_serial, certificate_pem, revoked_at FROM issued_certificates",
    )
    assert register == [
        (format(cert.serial_number, "x"), "CAM-0001", answer["credentialsValue"], None)
    ]

    # a name provisions once: another CSR for it is refused, nothing is issued (what a
    # repeat may prove under the other reprovisioning policies: test_identity.py)
    assert ask("CAM-0001", csr("CAM-0001")) == {
        "status": "FAILURE",
        "errorMsg": "Failed to provision device!",
    }
    assert len(sql(server, "SELECT id FROM credentials WHERE revoked_at IS NULL")) == 1
    assert len(sql(server, "SELECT serial_number FROM issued_certificates")) == 1

    weak_rsa = rsa.generate_private_key(65537, 1024)  # noqa: S505 - to be refused
    refusals = {
        "CAM-0002": (
            csr("SOMEONE-ELSE"),
            "the CSR's subject CN 'SOMEONE-ELSE' is not the device's serial CAM-0002",
        ),
        "CAM-0003": (
            csr("CAM-0003", weak_rsa),
            "an RSA key must have at least 2048 bits, not 1024",
        ),
        "CAM-0004": (
            "-----BEGIN CERTIFICATE REQUEST-----\nnot base64\n-----END CERTIFICATE REQUEST-----\n",
            "the CSR is not PEM (BEGIN CERTIFICATE REQUEST)",
        ),
        "CAM-0005": (
            csr("CAM-0005", ec.generate_private_key(ec.SECP256K1())),
            "an EC key must be on P-256 or P-384",
        ),
    }
    for name, (pem, message) in refusals.items():
        assert ask(name, pem) == {"status": "FAILURE", "errorMsg": message}, name
    no_pem = provision(
        server, key, secret, deviceName="CAM-0006", credentialsType="X509_CERTIFICATE"
    )
    assert no_pem["errorMsg"] == "X509_CERTIFICATE needs a CSR or a certificate (PEM) in hash"
    assert [r[0] for r in sql(server, "SELECT serial FROM devices")] == ["CAM-0001"]

    # a deleted device's certificates stay in the register, revoked
    assert api.delete("/api/v1/devices/CAM-0001").status_code == 204
    assert sql(
        server, "SELECT revocation_reason FROM issued_certificates WHERE revoked_at IS NOT NULL"
    ) == [("cessation_of_operation",)]


def test_a_certificate_the_device_has(server: Server, api: httpx.Client) -> None:
    """With a signature proving it holds the key (test_identity.py: the attacks without)."""
    profile = api.post("/api/v1/profiles", json={"name": "own", "credentials": ["x509"]}).json()
    key, secret = profile["key"], profile["secret"]
    mine_key, mine = self_signed_pair("meter 7")

    def ask(
        name: str, pem: str, signer: ec.EllipticCurvePrivateKey | None = None
    ) -> dict[str, object]:
        extra = {} if signer is None else {"certificateProof": proof(signer, key, name, pem)}
        return provision(
            server,
            key,
            secret,
            deviceName=name,
            credentialsType="X509_CERTIFICATE",
            hash=pem,
            **extra,
        )

    ok = ask("M7", mine, mine_key)
    assert (ok["status"], ok["credentialsValue"]) == ("SUCCESS", mine)
    assert ask("M8", mine, mine_key)["errorMsg"] == "this certificate is in use by another device"
    old_key, old = self_signed_pair("old", days=-1)
    expired = ask("M9", old, old_key)
    assert str(expired["errorMsg"]).startswith("the certificate is not valid now")
    assert ask("M10", csr("M10"))["errorMsg"] == (
        "this profile has no certificate authority to sign CSRs; send a certificate instead"
    )


def test_ca_import_from_the_cli_files(server: Server, api: httpx.Client, tmp_path: object) -> None:
    from pathlib import Path

    from tests.integration.cli.test_cli import Cli

    folder = Path(str(tmp_path))
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Imported CA")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=10))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (folder / "ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "ca.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"file-password"),
        )
    )
    cli = Cli(server.settings.effective_database_url)
    bad = cli(
        "ca",
        "import",
        "imported",
        "--cert",
        str(folder / "ca.pem"),
        "--key",
        str(folder / "ca.key"),
        code=2,
    )
    assert "key: cannot be read" in bad.stderr
    done = cli(
        "ca",
        "import",
        "imported",
        "--cert",
        str(folder / "ca.pem"),
        "--key",
        str(folder / "ca.key"),
        "--key-password-stdin",
        input="file-password\n",
    )
    assert "BEGIN CERTIFICATE" in done.stdout
    assert "stored unencrypted" in done.stderr  # this CLI has no ca_key_passphrase set
    listed = api.get("/api/v1/cas").json()
    assert [(c["name"], c["subject"]) for c in listed] == [("imported", "CN=Imported CA")]
    other = ec.generate_private_key(ec.SECP256R1())
    (folder / "other.key").write_bytes(
        other.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    mismatch = cli(
        "ca",
        "import",
        "x",
        "--cert",
        str(folder / "ca.pem"),
        "--key",
        str(folder / "other.key"),
        code=2,
    )
    assert "key: does not match the certificate" in mismatch.stderr
