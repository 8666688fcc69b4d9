"""Each CA's CRL, made by the CrlMaker on both backends with time driven through its clock:
what it lists, its numbers across makers, when it is made again, the outbox's requests."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from provisiond.bootstrap import Container, open_container
from provisiond.domain.events import Event, EventType
from provisiond.domain.scope import Scope
from provisiond.errors import CaNotFound
from provisiond.services.certificates import create_ca
from provisiond.services.revocation import current_crl, distribution_point, request_crls
from provisiond.settings import load_settings
from provisiond.store.certificates import IssuedCertificate, RevocationReason, StoredCrl
from provisiond.store.profiles import StoredCa

OPERATOR = Scope.operator()

T0 = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
PASSPHRASE = "correct horse battery staple"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@asynccontextmanager
async def container(database_url: str, clock: Clock) -> AsyncIterator[Container]:
    settings = load_settings(
        database_url=database_url,
        ca_key_passphrase=PASSPHRASE,
        public_url="https://provision.example.com",
        crl_validity_hours=48,
        crl_refresh_hours=12,
    )
    async with open_container(settings) as c:
        c.clock = clock
        yield c


async def new_ca(c: Container, name: str = "devices") -> uuid.UUID:
    await create_ca(
        c.uow(),
        scope=OPERATOR,
        name=name,
        passphrase=PASSPHRASE,
        production=False,
        actor="tests",
        now=c.now(),
    )
    async with c.uow().read() as uow:
        ca = await uow.cas.find_by_name(name)
    assert ca is not None
    return ca.id


async def issue(
    c: Container,
    ca_id: uuid.UUID,
    serial_number: int,
    *,
    days: int = 30,
    revoked: RevocationReason | None = None,
    device_id: uuid.UUID | None = None,
) -> uuid.UUID:
    """A certificate in the CA's register (revoked now with ``revoked``); its device."""
    device_id = device_id or uuid.uuid4()
    credential_id = uuid.uuid4()
    async with c.uow() as uow:
        await uow.certificates.add(
            IssuedCertificate(
                ca_id,
                format(serial_number, "x"),
                credential_id,
                device_id,
                "DEV",
                "PEM",
                c.now() - timedelta(days=1),
                c.now() + timedelta(days=days),
            )
        )
        if revoked is not None:
            await uow.certificates.revoke_credential(credential_id, c.now(), revoked)
        await uow.commit()
    return device_id


async def revoked_event(
    c: Container, device_id: uuid.UUID, kind: EventType = EventType.CREDENTIALS_REVOKED
) -> None:
    """What the outbox's dispatcher hands its consumers after a revocation."""
    async with c.uow() as uow:
        await request_crls(uow, [Event(1, kind, c.now(), "tests", device_id, "DEV", None, {})])
        await uow.commit()


async def current(c: Container) -> StoredCrl:
    async with c.uow().read() as uow:
        crl = await uow.certificates.crl("devices")
    assert crl is not None
    return crl


def parsed(pem: str | None) -> x509.CertificateRevocationList:
    assert pem is not None
    return x509.load_pem_x509_crl(pem.encode())


def listed(crl: x509.CertificateRevocationList) -> dict[int, str | None]:
    out: dict[int, str | None] = {}
    for entry in crl:
        try:
            out[entry.serial_number] = entry.extensions.get_extension_for_class(
                x509.CRLReason
            ).value.reason.name
        except x509.ExtensionNotFound:
            out[entry.serial_number] = None
    return out


def test_a_crl_lists_the_revoked_unexpired_certificates_with_their_reasons(
    database_url: str,
) -> None:
    async def main() -> None:
        clock = Clock()
        async with container(database_url, clock) as c:
            ca_id = await new_ca(c)
            async with c.uow().read() as uow:
                ca_pem = (await uow.cas.find_by_id(ca_id)).certificate_pem  # type: ignore[union-attr]
            ca_cert = x509.load_pem_x509_certificate(ca_pem.encode())
            assert await c.crl_maker.refresh() == 1  # the new CA's first CRL: empty
            first = await current(c)
            assert (first.number, first.this_update, first.next_update) == (
                1,
                T0,
                T0 + timedelta(hours=48),
            )
            assert listed(parsed(first.pem)) == {}

            await issue(c, ca_id, 0x10)  # still good
            device = await issue(c, ca_id, 0x11, revoked=RevocationReason.UNSPECIFIED)
            await issue(c, ca_id, 0x12, revoked=RevocationReason.SUPERSEDED, device_id=device)
            await issue(
                c, ca_id, 0x13, revoked=RevocationReason.CESSATION_OF_OPERATION, device_id=device
            )
            await issue(c, ca_id, 0x14, revoked=RevocationReason.KEY_COMPROMISE, device_id=device)
            await issue(
                c, ca_id, 0x15, days=0, revoked=RevocationReason.SUPERSEDED, device_id=device
            )  # expires now: no longer listed
            assert await c.crl_maker.refresh() == 0  # nothing asked for a new one yet
            await revoked_event(c, device)
            clock.now += timedelta(minutes=1)
            assert await c.crl_maker.refresh() == 1

            crl = await current(c)
            complete, point = parsed(crl.pem), parsed(crl.dp_pem)
            assert crl.number == 2
            assert (
                listed(complete)
                == listed(point)
                == {
                    0x11: None,  # RFC 5280: "unspecified" is left out
                    0x12: "superseded",
                    0x13: "cessation_of_operation",
                    0x14: "key_compromise",
                }
            )
            for one in (complete, point):
                assert one.issuer == ca_cert.subject
                assert one.is_signature_valid(ca_cert.public_key())  # type: ignore[arg-type]
                assert one.last_update_utc == T0 + timedelta(minutes=1)
                assert one.next_update_utc == T0 + timedelta(minutes=1, hours=48)
                assert one.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 2
                assert (
                    one.extensions.get_extension_for_class(
                        x509.AuthorityKeyIdentifier
                    ).value.key_identifier
                    == ca_cert.extensions.get_extension_for_class(
                        x509.SubjectKeyIdentifier
                    ).value.digest
                )
                assert one.get_revoked_certificate_by_serial_number(0x11).revocation_date_utc == T0
            # the files' form names no distribution point; the URL's names that URL
            assert distribution_point(crl.pem or "") is None
            assert (
                distribution_point(crl.dp_pem or "")
                == "https://provision.example.com/crl/devices.crl"
            )
            idp = point.extensions.get_extension_for_class(x509.IssuingDistributionPoint)
            assert idp.critical
            assert idp.value.only_contains_user_certs

    asyncio.run(main())


def test_a_crl_is_made_again_well_before_it_expires(database_url: str) -> None:
    async def main() -> list[tuple[int, datetime | None, datetime | None]]:
        clock = Clock()
        seen = []
        async with container(database_url, clock) as c:
            await new_ca(c)
            for step in (0, 11, 1, 11, 1):  # hours; crl_refresh_hours=12, validity 48
                clock.now += timedelta(hours=step)
                await c.crl_maker.refresh()
                crl = await current(c)
                assert crl.next_update is not None
                assert crl.next_update - clock.now >= timedelta(hours=36)  # never near expiry
                seen.append((crl.number, crl.this_update, crl.next_update))
        return seen

    assert asyncio.run(main()) == [
        (1, T0, T0 + timedelta(hours=48)),
        (1, T0, T0 + timedelta(hours=48)),  # 11 h old: not yet
        (2, T0 + timedelta(hours=12), T0 + timedelta(hours=60)),
        (2, T0 + timedelta(hours=12), T0 + timedelta(hours=60)),
        (3, T0 + timedelta(hours=24), T0 + timedelta(hours=72)),
    ]


def test_only_revocations_ask_for_a_new_crl(database_url: str) -> None:
    async def main() -> list[int]:
        clock = Clock()
        made = []
        async with container(database_url, clock) as c:
            ca_id = await new_ca(c)
            await new_ca(c, "other")
            await c.crl_maker.refresh()
            good = await issue(c, ca_id, 0x20)
            await revoked_event(c, good)  # a device with no revoked certificate
            await revoked_event(c, uuid.uuid4(), EventType.DEVICE_CLAIMED)
            made.append(await c.crl_maker.refresh())
            gone = await issue(c, ca_id, 0x21, revoked=RevocationReason.CESSATION_OF_OPERATION)
            await revoked_event(c, gone, EventType.DEVICE_DELETED)
            made.append(await c.crl_maker.refresh())  # this CA's only, not "other"'s
            clock.now += timedelta(seconds=1)
            await revoked_event(c, gone, EventType.DEVICE_DELETED)  # an old revocation
            made.append(await c.crl_maker.refresh())
        return made

    assert asyncio.run(main()) == [0, 1, 0]


def test_crl_numbers_go_up_by_one_whichever_maker_makes_them(database_url: str) -> None:
    """Makers of two instances at once (a lease that changed hands mid-way): each number
    is saved once, and a revocation either saw makes its way into a later CRL."""

    async def main() -> tuple[list[int], int, dict[int, str | None]]:
        clock = Clock()
        async with container(database_url, clock) as a, container(database_url, clock) as b:
            ca_id = await new_ca(a)
            made = []
            for i in range(5):
                device = await issue(a, ca_id, 0x30 + i, revoked=RevocationReason.SUPERSEDED)
                await revoked_event(a, device)
                clock.now += timedelta(seconds=1)
                made += await asyncio.gather(a.crl_maker.refresh(), b.crl_maker.refresh())
            while await a.crl_maker.refresh():
                pass
            crl = await current(a)
            return made, crl.number, listed(parsed(crl.pem))

    made, number, entries = asyncio.run(main())
    assert number == sum(made)  # every CRL saved had the next number
    assert sorted(entries) == [0x30 + i for i in range(5)]


def test_a_manufacturers_ca_has_no_crl_and_is_not_answered_for(database_url: str) -> None:
    """A CA known by its certificate only (no key here) signs nothing: no CRL, and OCSP
    says provisiond is not its responder."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ACME factory CA")])
    acme = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(T0)
        .not_valid_after(T0 + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )

    async def main() -> tuple[int, str, ocsp.OCSPResponseStatus]:
        clock = Clock()
        async with container(database_url, clock) as c:
            await new_ca(c)
            async with c.uow() as uow:
                await uow.cas.add(
                    StoredCa(
                        uuid.uuid4(),
                        "acme-factory",
                        acme.public_bytes(serialization.Encoding.PEM).decode(),
                        None,
                        False,
                        T0,
                    )
                )
                await uow.commit()
            made = await c.crl_maker.refresh()  # "devices"' only
            with pytest.raises(CaNotFound) as refused:
                await current_crl(c.uow(), name="acme-factory")
            request = (
                ocsp.OCSPRequestBuilder()
                .add_certificate(acme, acme, hashes.SHA256())
                .build()
                .public_bytes(serialization.Encoding.DER)
            )
            answer = await c.ocsp.respond(request)
            return (
                made,
                refused.value.detail,
                ocsp.load_der_ocsp_response(answer.body).response_status,
            )

    assert asyncio.run(main()) == (
        1,
        "CA 'acme-factory' is a manufacturer's CA: provisiond publishes no CRL for it",
        ocsp.OCSPResponseStatus.UNAUTHORIZED,
    )


def test_a_key_that_cannot_be_decrypted_holds_up_no_other_ca(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> int:
        clock = Clock()
        async with container(database_url, clock) as c:
            await create_ca(
                c.uow(),
                scope=OPERATOR,
                name="old",
                passphrase="another passphrase",
                production=False,
                actor="tests",
                now=T0,
            )
            await new_ca(c)
            made = await c.crl_maker.refresh()
            assert (await current(c)).number == 1
            clock.now += timedelta(seconds=30)
            await c.crl_maker.refresh()  # not tried again (nor said again) so soon
            clock.now += timedelta(seconds=30)
            await c.crl_maker.refresh()
            return made

    assert asyncio.run(main()) == 1
    said = "the CRL of CA old cannot be made: the key of CA 'old' cannot be decrypted"
    assert caplog.text.count(said) == 2


def test_a_new_public_url_makes_a_new_crl(database_url: str) -> None:
    async def main() -> list[str | None]:
        clock = Clock()
        urls = []
        async with container(database_url, clock) as c:
            await new_ca(c)
            await c.crl_maker.refresh()
            urls.append(distribution_point((await current(c)).dp_pem or ""))
        settings = load_settings(
            database_url=database_url,
            ca_key_passphrase=PASSPHRASE,
            public_url="https://pki.example.net/",
        )
        async with open_container(settings) as moved:
            moved.clock = clock
            assert await moved.crl_maker.refresh() == 1
            urls.append(distribution_point((await current(moved)).dp_pem or ""))
            assert await moved.crl_maker.refresh() == 0  # checked once: now it is right
        return urls

    assert asyncio.run(main()) == [
        "https://provision.example.com/crl/devices.crl",
        "https://pki.example.net/crl/devices.crl",
    ]
