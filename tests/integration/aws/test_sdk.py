"""AWS's device SDK provisions against `provisiond serve` (issue 24), unchanged but for
the endpoint and the CA: CreateKeysAndCertificate → RegisterThing → the new certificate
connects to a real Mosquitto that requires client certificates and reads provisiond's CRL
→ revoked → refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from awsiot import iotidentity
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner

from provisiond.cli.app import app as cli_app
from provisiond.errors import ProvisiondError
from tests.integration.aws import sdk
from tests.integration.aws.conftest import TEMPLATE, Authority, Fleet, handshake
from tests.integration.web.test_integrations_serve import wait_until
from tests.integration.web.test_provisioning import use_token
from tests.integration.web.test_revocation_mosquitto import connect
from tests.support.mosquitto import files_broker


def test_the_sdk_provisions_and_the_broker_obeys_revocation(
    fleet: Fleet, tmp_path: Path, crl_dir: Path, broker_dir: Path
) -> None:
    claim_cert, claim_key = fleet.claims.issue(tmp_path, "claim")
    with sdk.identity_v5(fleet.port, claim_cert, claim_key, fleet.server_ca) as identity:
        made = sdk.create_keys(identity)
        thing = sdk.register(
            identity,
            TEMPLATE,
            made.certificate_ownership_token,
            SerialNumber="CAM-0001",
            DeviceName="Front door",
            Site="north",
        )
    assert len(made.certificate_id) == 64
    assert thing.thing_name == "thing-CAM-0001"
    assert thing.device_configuration == {"broker": "mqtts://broker.example:8883"}

    cert, key = tmp_path / "CAM-0001.pem", tmp_path / "CAM-0001.key"
    cert.write_text(made.certificate_pem)
    key.write_text(made.private_key)
    crl_file = crl_dir / "devices.crl.pem"
    wait_until(crl_file.exists)
    with files_broker(broker_dir, client_ca=fleet.devices_ca, crl_file=crl_file) as broker:
        assert connect(broker, cert, key) == "connected"
        assert connect(broker, claim_cert, claim_key) != "connected"  # not a device's

        result = CliRunner().invoke(
            cli_app,
            [
                "devices",
                "revoke",
                "CAM-0001",
                "--database",
                fleet.server.settings.effective_database_url,
            ],
        )
        assert result.exit_code == 0, result.output
        wait_until(lambda: connect(broker, cert, key) != "connected", timeout=15)
        assert connect(broker, cert, key, tls12=True) == "SSLV3_ALERT_CERTIFICATE_REVOKED"

    metrics = httpx.get(fleet.server.url + "/metrics", timeout=30).text
    assert 'provisiond_provisioning_answers_total{outcome="SUCCESS",transport="aws"} 1.0' in metrics


def csr_for(key: ec.EllipticCurvePrivateKey, name: str = "ignored by the CA") -> str:
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
        .decode()
    )


def test_the_mqtt311_client_provisions_from_a_csr(fleet: Fleet, tmp_path: Path) -> None:
    """The older MQTT 3.1.1 connection (clean session 0), CreateCertificateFromCsr: the
    device keeps its key; the certificate is for that key, from the profile's CA, and
    names nothing the device chose."""
    claim_cert, claim_key = fleet.claims.issue(tmp_path, "claim")
    key = ec.generate_private_key(ec.SECP256R1())
    with sdk.identity_v311(fleet.port, claim_cert, claim_key, fleet.server_ca) as identity:
        made = sdk.create_from_csr(identity, csr_for(key, "CAM-9999"))
        thing = sdk.register(
            identity, TEMPLATE, made.certificate_ownership_token, SerialNumber="CAM-0002"
        )
    assert thing.thing_name == "thing-CAM-0002"
    cert = x509.load_pem_x509_certificate(made.certificate_pem.encode())
    assert cert.public_key() == key.public_key()
    assert cert.subject.rfc4514_string() == "CN=AWS IoT Certificate"
    devices_ca = x509.load_pem_x509_certificate(fleet.devices_ca.read_bytes())
    cert.verify_directly_issued_by(devices_ca)
    assert made.certificate_id == cert.fingerprint(hashes.SHA256()).hex()
    device = fleet.server.client().get("/api/v1/devices/CAM-0002").json()
    assert device["state"] in ("claimed", "registered")


def test_a_certificate_no_profile_vouches_for_cannot_connect(
    fleet: Fleet, api: httpx.Client, tmp_path: Path
) -> None:
    """Another CA's certificate fails the TLS handshake; a certificate from a CA
    provisiond knows but no profile uses as its device CA is refused at CONNECT."""
    stranger = Authority.make("Somebody else's CA").issue(tmp_path, "stranger")
    with pytest.raises(ConnectionError), sdk.identity_v5(fleet.port, *stranger, fleet.server_ca):
        pass
    assert not handshake(fleet, None, None)  # no client certificate: no handshake

    orphan = Authority.make("Registered, on no profile")
    made = api.post("/api/v1/cas", json={"name": "orphan", "certificate": orphan.pem})
    assert made.status_code == 201, made.text
    orphan_claim = orphan.issue(tmp_path, "orphan-claim")
    wait_until(lambda: handshake(fleet, *orphan_claim))  # trusted for TLS …
    with (
        pytest.raises(ConnectionError),
        sdk.identity_v5(fleet.port, *orphan_claim, fleet.server_ca),
    ):
        pass  # … but CONNECT is refused: not authorised


def test_refused_registrations(fleet: Fleet, tmp_path: Path) -> None:
    """Another device's token, a replayed token, an unknown template, a missing serial and
    a serial already registered are each rejected with AWS's error payload; the token of a
    refused registration still works afterwards."""
    first = fleet.claims.issue(tmp_path, "claim-1")
    second = fleet.claims.issue(tmp_path, "claim-2")
    with sdk.identity_v5(fleet.port, *first, fleet.server_ca, client_id="one") as one:
        mine = sdk.create_keys(one).certificate_ownership_token
        other = sdk.create_keys(one).certificate_ownership_token
    with sdk.identity_v5(fleet.port, *second, fleet.server_ca, client_id="two") as two:
        stolen = sdk.rejected(lambda: sdk.register(two, TEMPLATE, mine, SerialNumber="X-1"))
        assert (stolen.status_code, stolen.error_code) == (400, "InvalidCertificateOwnershipToken")
    with sdk.identity_v5(fleet.port, *first, fleet.server_ca, client_id="one") as one:
        unknown = sdk.rejected(
            lambda: sdk.register(one, "NoSuchTemplate", mine, SerialNumber="X-1")
        )
        assert (unknown.status_code, unknown.error_code) == (404, "ResourceNotFound")
        missing = sdk.rejected(lambda: sdk.register(one, TEMPLATE, mine, Serial="X-1"))
        assert (missing.status_code, missing.error_code) == (400, "InvalidParameters")
        assert "SerialNumber" in missing.error_message

        sdk.register(one, TEMPLATE, mine, SerialNumber="X-1")
        replayed = sdk.rejected(lambda: sdk.register(one, TEMPLATE, mine, SerialNumber="X-2"))
        assert (replayed.status_code, replayed.error_code) == (
            400,
            "InvalidCertificateOwnershipToken",
        )
        taken = sdk.rejected(lambda: sdk.register(one, TEMPLATE, other, SerialNumber="X-1"))
        assert (taken.status_code, taken.error_code) == (409, "ResourceAlreadyExists")
        sdk.register(one, TEMPLATE, other, SerialNumber="X-3")


def device_files(directory: Path, serial: str, made: Any) -> tuple[Path, Path]:
    cert, key = directory / f"{serial}.pem", directory / f"{serial}.key"
    cert.write_text(made.certificate_pem)
    key.write_text(made.private_key)
    return cert, key


def test_a_device_certificate_renews_itself_only(
    fleet: Fleet, api: httpx.Client, tmp_path: Path
) -> None:
    """A certificate provisiond issued authenticates to the listener, and may register its
    own device again — only that one, and only when the profile's reprovisioning policy is
    factory-reset: the device gets the new certificate, the old one is revoked and refused."""
    claim = fleet.claims.issue(tmp_path, "claim")
    with sdk.identity_v5(fleet.port, *claim, fleet.server_ca) as identity:
        made = sdk.create_keys(identity)
        sdk.register(identity, TEMPLATE, made.certificate_ownership_token, SerialNumber="CAM-7")
        again = sdk.create_keys(identity)  # the claim certificate cannot renew a device
        taken = sdk.rejected(
            lambda: sdk.register(
                identity, TEMPLATE, again.certificate_ownership_token, SerialNumber="CAM-7"
            )
        )
        assert (taken.status_code, taken.error_code) == (409, "ResourceAlreadyExists")
    old = device_files(tmp_path, "CAM-7", made)
    with sdk.identity_v5(fleet.port, *old, fleet.server_ca, client_id="CAM-7") as own:
        other = sdk.rejected(
            lambda: sdk.register(
                own, TEMPLATE, sdk.create_keys(own).certificate_ownership_token, SerialNumber="X"
            )
        )
        assert (other.status_code, other.error_code) == (403, "AccessDenied")
        never = sdk.rejected(
            lambda: sdk.register(
                own,
                TEMPLATE,
                sdk.create_keys(own).certificate_ownership_token,
                SerialNumber="CAM-7",
            )
        )
        assert (never.status_code, never.error_code) == (409, "ResourceAlreadyExists")
        changed = api.patch("/api/v1/profiles/cameras", json={"reprovision": "factory-reset"})
        assert changed.status_code == 200, changed.text
        renewed = sdk.create_keys(own)
        sdk.register(own, TEMPLATE, renewed.certificate_ownership_token, SerialNumber="CAM-7")
    (tmp_path / "new").mkdir()
    new = device_files(tmp_path / "new", "CAM-7", renewed)
    with sdk.identity_v5(fleet.port, *new, fleet.server_ca, client_id="CAM-7"):
        pass  # the new certificate is the device's

    def refused(cert: Path, key: Path) -> bool:  # what a session may do is cached a while
        try:
            with sdk.identity_v5(fleet.port, cert, key, fleet.server_ca):
                return False
        except ConnectionError:
            return True

    wait_until(lambda: refused(*old), timeout=15)  # the old one was revoked
    cert, key = new

    result = CliRunner().invoke(
        cli_app,
        ["devices", "revoke", "CAM-7", "--database", fleet.server.settings.effective_database_url],
    )
    assert result.exit_code == 0, result.output
    wait_until(lambda: refused(cert, key), timeout=15)


@pytest.fixture
def aws_templates() -> dict[str, object]:
    return {
        "Placed": {"profile": "plant", "model": "Model", "group": "Line"},
        "Factory": {"profile": "factory"},
    }


def test_parameters_choose_the_model_and_a_group_below_the_profiles(
    fleet: Fleet, api: httpx.Client, tmp_path: Path
) -> None:
    """A template may take the model (one of the catalogue's) and the group (below the
    profile's own, never beside or above it) from parameters."""
    for path in ("acme/plant-1/line-3", "acme/plant-2"):
        assert api.post("/api/v1/groups", json={"path": path}).status_code == 201
    assert api.post("/api/v1/models", json={"name": "cam-v2"}).status_code == 201
    made = api.post(
        "/api/v1/profiles",
        json={
            "name": "plant",
            "credentials": ["x509"],
            "ca": "devices",
            "device_ca": "claims",
            "group": "acme/plant-1",
        },
    )
    assert made.status_code == 201, made.text
    claim = fleet.claims.issue(tmp_path, "claim")
    wait_until(lambda: handshake(fleet, *claim))
    with sdk.identity_v5(fleet.port, *claim, fleet.server_ca) as identity:

        def token() -> str:
            return str(sdk.create_keys(identity).certificate_ownership_token)

        sdk.register(identity, "Placed", token(), SerialNumber="P-1", Model="cam-v2", Line="line-3")
        for parameters, wrong in (
            ({"Model": "no-such-model"}, "no model"),
            ({"Line": "../plant-2"}, "no group"),
            ({"Line": "nowhere"}, "no group"),
        ):
            refused = sdk.rejected(
                lambda p=parameters: sdk.register(
                    identity, "Placed", token(), SerialNumber="P-2", **p
                )
            )
            assert (refused.status_code, refused.error_code) == (400, "InvalidParameters")
            assert wrong in refused.error_message
    device = fleet.server.client().get("/api/v1/devices/P-1").json()
    assert (device["model"], device["group"]) == ("cam-v2", "acme/plant-1/line-3")


def test_the_older_identity_client_on_mqtt311(fleet: Fleet, tmp_path: Path) -> None:
    """AWS's older sample: the V1 identity client's subscribe/publish calls over the MQTT
    3.1.1 connection, clean session 0; a refusal arrives as its ErrorResponse."""
    claim = fleet.claims.issue(tmp_path, "claim")
    with sdk.connection_v311(fleet.port, *claim, fleet.server_ca) as connection:
        made, thing = sdk.provision_v1(connection, TEMPLATE, SerialNumber="OLD-1")
        assert thing.thing_name == "thing-OLD-1"
        assert made.certificate_pem.startswith("-----BEGIN CERTIFICATE-----")
    with sdk.connection_v311(fleet.port, *claim, fleet.server_ca) as connection:
        _, refused = sdk.provision_v1(connection, TEMPLATE, SerialNumber="OLD-1")
    assert isinstance(refused, iotidentity.ErrorResponse)
    assert (refused.status_code, refused.error_code) == (409, "ResourceAlreadyExists")


def test_pending_and_revoked_certificates_are_no_claims(
    fleet: Fleet, api: httpx.Client, tmp_path: Path
) -> None:
    """Where provisiond's own CA is also a profile's device CA (devices bring certificates
    it signed), a certificate it made that nobody registered yet, or one it revoked, still
    authenticates nothing: CONNECT is refused."""
    made = api.post(
        "/api/v1/profiles",
        json={"name": "resigned", "credentials": ["x509"], "ca": "devices", "device_ca": "devices"},
    )
    assert made.status_code == 201, made.text
    claim = fleet.claims.issue(tmp_path, "claim")
    with sdk.identity_v5(fleet.port, *claim, fleet.server_ca) as identity:
        pending = sdk.create_keys(identity)
        registered = sdk.create_keys(identity)
        sdk.register(identity, TEMPLATE, registered.certificate_ownership_token, SerialNumber="R-1")
    pending_files = device_files(tmp_path, "pending", pending)
    with (
        pytest.raises(ConnectionError),
        sdk.identity_v5(fleet.port, *pending_files, fleet.server_ca),
    ):
        pass

    result = CliRunner().invoke(
        cli_app,
        ["devices", "revoke", "R-1", "--database", fleet.server.settings.effective_database_url],
    )
    assert result.exit_code == 0, result.output
    revoked_files = device_files(tmp_path, "R-1", registered)
    with (
        pytest.raises(ConnectionError),
        sdk.identity_v5(fleet.port, *revoked_files, fleet.server_ca),
    ):
        pass


def test_a_pre_provisioned_template_takes_devices_registered_beforehand(
    fleet: Fleet, api: httpx.Client, tmp_path: Path
) -> None:
    """A pre-provisioned profile's template gives the certificate to a device registered
    beforehand (its imported credential revoked), once; a serial not registered is refused."""
    made = api.post(
        "/api/v1/profiles",
        json={
            "name": "factory",
            "strategy": "pre-provisioned",
            "credentials": ["x509"],
            "ca": "devices",
            "device_ca": "claims",
        },
    )
    assert made.status_code == 201, made.text
    imported = api.post("/api/v1/devices", json={"serial": "F-1"})
    assert imported.status_code == 201, imported.text
    claim = fleet.claims.issue(tmp_path, "claim")
    wait_until(lambda: handshake(fleet, *claim))
    with sdk.identity_v5(fleet.port, *claim, fleet.server_ca) as identity:

        def token() -> str:
            return str(sdk.create_keys(identity).certificate_ownership_token)

        unknown = sdk.rejected(
            lambda: sdk.register(identity, "Factory", token(), SerialNumber="F-2")
        )
        assert (unknown.status_code, unknown.error_code) == (404, "ResourceNotFound")
        first = sdk.create_keys(identity)
        sdk.register(identity, "Factory", first.certificate_ownership_token, SerialNumber="F-1")
        again = sdk.rejected(lambda: sdk.register(identity, "Factory", token(), SerialNumber="F-1"))
        assert (again.status_code, again.error_code) == (409, "ResourceAlreadyExists")
    with pytest.raises(ProvisiondError):  # what it was imported with is revoked
        use_token(fleet.server, imported.json()["credential"]["secret"])
    own = device_files(tmp_path, "F-1", first)
    with sdk.identity_v5(fleet.port, *own, fleet.server_ca, client_id="F-1"):
        pass  # the device's certificate now
