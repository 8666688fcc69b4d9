"""`serve` itself revokes what was never registered: with a short token life, a certificate
made and left unregistered appears in its CA's CRL without anyone calling anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509

from tests.integration.aws import sdk
from tests.integration.aws.conftest import Fleet
from tests.integration.aws.test_expiry import crl_serials
from tests.integration.web.test_integrations_serve import wait_until


@pytest.fixture
def aws_settings() -> dict[str, object]:
    return {"token_seconds": 10}  # the shortest allowed: the sweep then runs every second


def test_serve_revokes_a_certificate_left_unregistered(fleet: Fleet, tmp_path: Path) -> None:
    claim = fleet.claims.issue(tmp_path, "claim")
    with sdk.identity_v5(fleet.port, *claim, fleet.server_ca) as identity:
        made = sdk.create_keys(identity)
    serial = x509.load_pem_x509_certificate(made.certificate_pem.encode()).serial_number
    assert serial not in crl_serials(fleet)
    wait_until(lambda: serial in crl_serials(fleet), timeout=30)
