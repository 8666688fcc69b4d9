"""Ownership tokens expire as AWS's do (``aws__token_seconds``, an hour by default): past
it RegisterThing is refused, and the certificate made with the token, never registered, is
revoked — its CA's CRL lists it — while a registered one is not. Time is driven through the
service's clock, not slept."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from provisiond.bootstrap import open_container
from provisiond.protocols.aws_fleet import RegisterThing
from provisiond.services.aws_fleet import Fleet as FleetService
from provisiond.services.aws_fleet import FleetRefused, Peer, expire_pending
from tests.integration.aws import sdk
from tests.integration.aws.conftest import TEMPLATE, Fleet
from tests.integration.web.test_integrations_serve import wait_until


def crl_serials(fleet: Fleet) -> set[int]:
    r = httpx.get(fleet.server.url + "/crl/devices.pem", timeout=30)
    if r.status_code != 200:
        return set()
    return {c.serial_number for c in x509.load_pem_x509_crl(r.content)}


def test_an_unregistered_certificate_is_revoked_when_its_token_expires(
    fleet: Fleet, tmp_path: Path
) -> None:
    claim_cert, claim_key = fleet.claims.issue(tmp_path, "claim")
    with sdk.identity_v5(fleet.port, claim_cert, claim_key, fleet.server_ca) as identity:
        late = sdk.create_keys(identity)
        kept = sdk.create_keys(identity)
        sdk.register(identity, TEMPLATE, kept.certificate_ownership_token, SerialNumber="K-1")
    claim = x509.load_pem_x509_certificate(claim_cert.read_bytes())
    peer = Peer.of(claim.public_bytes(serialization.Encoding.DER))
    lifetime = timedelta(seconds=fleet.server.settings.aws.token_seconds)

    async def later() -> int:
        async with open_container(fleet.server.settings) as c:
            then: datetime = c.now() + lifetime + timedelta(seconds=1)
            service = FleetService(
                c.uow,
                c.provisioner.writer,
                c.settings.aws,
                c.signers,
                "correct horse battery staple",
                c.limiter,
                lambda: then,
            )
            with pytest.raises(FleetRefused) as refused:
                await service.register_thing(
                    await service.authenticate(peer),
                    TEMPLATE,
                    RegisterThing(late.certificate_ownership_token, {"SerialNumber": "L-1"}),
                    source="tests",
                )
            assert refused.value.code == "InvalidCertificateOwnershipToken"
            revoked = await expire_pending(c.uow(), now=then)
            assert await expire_pending(c.uow(), now=then) == 0  # once
            return revoked

    assert asyncio.run(later()) == 1
    late_serial = x509.load_pem_x509_certificate(late.certificate_pem.encode()).serial_number
    kept_serial = x509.load_pem_x509_certificate(kept.certificate_pem.encode()).serial_number
    wait_until(lambda: late_serial in crl_serials(fleet), timeout=15)  # serve makes the CRL
    assert kept_serial not in crl_serials(fleet)
    with sdk.identity_v5(fleet.port, claim_cert, claim_key, fleet.server_ca) as identity:
        gone = sdk.rejected(
            lambda: sdk.register(
                identity, TEMPLATE, late.certificate_ownership_token, SerialNumber="L-1"
            )
        )
    assert gone.error_code == "InvalidCertificateOwnershipToken"
