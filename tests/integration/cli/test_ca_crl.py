"""`provisiond ca crl NAME`: a CA's current CRL in PEM (made when there is none yet), e.g.
the first CRL file before Mosquitto starts; on both backends."""

from __future__ import annotations

import json

from cryptography import x509

from tests.integration.cli.conftest import Cli


def test_ca_crl_prints_the_current_crl(database_url: str) -> None:
    cli = Cli(database_url)
    ca = x509.load_pem_x509_certificate(cli("ca", "create", "factory").stdout.encode())

    first = cli("ca", "crl", "factory").stdout  # none yet: made now
    crl = x509.load_pem_x509_crl(first.encode())
    assert crl.issuer == ca.subject
    assert crl.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
    assert len(crl) == 0
    assert cli("ca", "crl", "factory").stdout == first  # not due: the same CRL

    shown = json.loads(cli("ca", "crl", "factory", "--json").stdout)
    assert (shown["name"], shown["number"], shown["crl"]) == ("factory", 1, first)

    missing = cli("ca", "crl", "nope", code=4)
    assert "error[ca-not-found]: no certificate authority 'nope'" in missing.stderr
