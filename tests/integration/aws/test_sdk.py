"""AWS's device SDK provisions against `provisiond serve` (issue 24), unchanged but for
the endpoint and the CA: CreateKeysAndCertificate → RegisterThing → the new certificate
connects to a real Mosquitto that requires client certificates and reads provisiond's CRL
→ revoked → refused."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from provisiond.cli.app import app as cli_app
from tests.integration.aws import sdk
from tests.integration.aws.conftest import TEMPLATE, Fleet
from tests.integration.web.test_integrations_serve import wait_until
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
