"""An instance's CRL files (crl_dir): written whole and renamed into place, never replaced
by an older CRL, bundled, and Mosquitto told to read them (a failed reload is retried)."""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from provisiond.errors import BrokerUnavailable
from provisiond.integrations.crl_files import CrlDirectory
from provisiond.integrations.mosquitto_files.files import Reloader
from provisiond.services.certificates import Signer, authority_key_identifier
from provisiond.services.crl_files import CrlPublisher
from provisiond.services.revocation import build_crls
from provisiond.store.certificates import RevocationReason
from tests.integration.revocation.test_crl import T0, Clock, container, issue, new_ca, revoked_event


def signer(name: str) -> Signer:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(T0)
        .not_valid_after(T0 + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Signer(cert, key, authority_key_identifier(cert))


def crl_pem(ca: Signer, number: int) -> str:
    complete, _ = build_crls(
        ca, [], number=number, now=T0, validity=timedelta(days=1), url="http://x/crl/a.crl"
    )
    return complete.public_bytes(serialization.Encoding.PEM).decode()


def test_files_are_replaced_whole_and_never_by_an_older_crl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "crls"  # made when first written
    files = CrlDirectory(directory, Reloader(None, None, 5))
    a, b = signer("a"), signer("b")
    a1, a2, b1 = crl_pem(a, 1), crl_pem(a, 2), crl_pem(b, 1)

    assert files.write({"a": (1, a1)}, ["a"]) is True
    assert (directory / "a.crl.pem").read_text() == a1
    assert (directory / "crls.pem").read_text() == a1
    assert (directory / "a.crl.pem").stat().st_mode & 0o777 == 0o644  # a CRL is public

    with (directory / "a.crl.pem").open() as held:  # a reader in the middle of it
        assert files.write({"a": (2, a2), "b": (1, b1)}, ["a", "b"]) is True
        assert held.read() == a1  # renamed over, not rewritten in place
    assert (directory / "a.crl.pem").read_text() == a2
    assert (directory / "crls.pem").read_text() == a2 + b1
    assert sorted(p.name for p in directory.iterdir()) == [
        ".crls.lock",
        "a.crl.pem",
        "b.crl.pem",
        "crls.pem",
    ]  # no temporary file left

    # an instance a second behind (CRL 1) does not undo CRL 2; the same again is no change
    assert files.write({"a": (1, a1)}, ["a", "b"]) is False
    assert files.write({"a": (2, a2)}, ["a", "b"]) is False
    assert (directory / "a.crl.pem").read_text() == a2

    # a write that fails (disk full at fsync) leaves the file as it was, and no temporary
    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(BrokerUnavailable, match="No space left"):
        files.write({"a": (3, crl_pem(a, 3))}, ["a", "b"])
    assert (directory / "a.crl.pem").read_text() == a2
    assert sorted(p.name for p in directory.iterdir()) == [
        ".crls.lock",
        "a.crl.pem",
        "b.crl.pem",
        "crls.pem",
    ]


def test_the_publisher_writes_changed_crls_and_retries_a_failed_reload(
    database_url: str, tmp_path: Path
) -> None:
    flag, log = tmp_path / "mosquitto-up", tmp_path / "reloads"
    # the operator's reload command: fails until "Mosquitto" is up
    reloader = Reloader(None, f"sh -c 'test -e {flag} && echo reloaded >> {log}'", 10)
    directory = tmp_path / "crls"

    async def main() -> None:
        clock = Clock()
        async with container(database_url, clock) as c:
            ca_id = await new_ca(c)
            await c.crl_maker.refresh()
            publisher = CrlPublisher(c.uow, CrlDirectory(directory, reloader), c.now)
            with pytest.raises(BrokerUnavailable, match="the reload command exited 1"):
                await publisher.publish()
            first = (directory / "devices.crl.pem").read_text()
            assert "BEGIN X509 CRL" in first
            # the files are right; the reload is owed, and tried again 1 s, then 2 s later
            assert await publisher.publish() == 0
            clock.now += timedelta(seconds=1)
            with pytest.raises(BrokerUnavailable):
                await publisher.publish()
            clock.now += timedelta(seconds=1)
            assert await publisher.publish() == 0
            flag.touch()
            clock.now += timedelta(seconds=1)
            assert await publisher.publish() == 0  # told now
            assert log.read_text().splitlines() == ["reloaded"]
            assert await publisher.publish() == 0  # nothing new: no write, no reload
            assert log.read_text().splitlines() == ["reloaded"]

            device = await issue(c, ca_id, 0x51, revoked=RevocationReason.KEY_COMPROMISE)
            await revoked_event(c, device)
            assert await c.crl_maker.refresh() == 1
            assert await publisher.publish() == 1
            assert log.read_text().splitlines() == ["reloaded", "reloaded"]
            listed = x509.load_pem_x509_crl((directory / "devices.crl.pem").read_bytes())
            assert listed.get_revoked_certificate_by_serial_number(0x51) is not None

            # another instance's publisher, starting with the files already right
            again = CrlPublisher(c.uow, CrlDirectory(directory, reloader), c.now)
            assert await again.publish() == 1  # read their numbers: nothing written
            assert log.read_text().splitlines() == ["reloaded", "reloaded"]

    asyncio.run(main())
