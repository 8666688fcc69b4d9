"""Certificate revocation lists (RFC 5280) of provisiond's CAs.

Each CA with its key has one current CRL, kept in the database (``certificate_authorities``)
so that every instance serves and writes the same one. It lists the CA's revoked
certificates that have not expired (its register, store/certificates.py), each with its
revocation date and reason, and carries a CRL number and the CA's authority key identifier.
It exists in two forms, signed together with one number: the complete CRL, which the CRL
files hold, and the same list with an Issuing Distribution Point naming the CRL's URL,
which that URL serves. EMQX takes a CRL only with that extension; OpenSSL (Mosquitto) takes
one that has it only for certificates naming that very point, and would refuse every
certificate issued before provisiond wrote distribution points (or under another
``public_url``): so the files, which Mosquitto reads, carry none.

When a new CRL is made:

- a revocation: the outbox's consumer :func:`request_crls` sees the events that may revoke
  a certificate (``credentials.revoked`` — every revocation writes one: a revoke, a
  rotation, a factory reset — and ``device.deleted``) and counts up ``crl_requested`` of
  every CA that revoked one since the earliest of them, in the dispatcher's transaction;
- :class:`CrlMaker` (under the ``crl`` lease: one instance at a time) looks every second and
  makes a CRL for each CA whose count moved, that has none, or whose CRL is
  ``crl_refresh_hours`` old, so that it never reaches its nextUpdate while provisiond runs.

The count is read before the register, and the CRL records it: a revocation the maker did
not see leaves the count above it, and the next pass makes another. A CRL is saved only if
its number follows the current one (compare-and-set), so numbers go up by one across
instances even when a lease changes hands mid-way.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from provisiond.domain.events import Event, EventType
from provisiond.errors import CaNotFound, ProvisiondError, Unavailable
from provisiond.services.certificates import PkiUrls, Signer, SignerCache
from provisiond.store.certificates import (
    CrlState,
    IssuedCertificate,
    NewCrl,
    RevocationReason,
)
from provisiond.store.uow import UnitOfWork

log = logging.getLogger(__name__)
RETRY_FAILED = timedelta(minutes=1)  # then a CA whose CRL could not be made is tried again

# The events after which a CA may have revoked a certificate (the dispatcher's batch).
# (Not device.provisioned: a provisioning storm would cost a query per dispatched batch.)
REVOKING_EVENTS = frozenset({EventType.CREDENTIALS_REVOKED, EventType.DEVICE_DELETED})

# RFC 5280 5.3.1: "unspecified" is not written (the reason code is left out instead).
_REASONS = {
    RevocationReason.SUPERSEDED: x509.ReasonFlags.superseded,
    RevocationReason.CESSATION_OF_OPERATION: x509.ReasonFlags.cessation_of_operation,
    RevocationReason.KEY_COMPROMISE: x509.ReasonFlags.key_compromise,
}


def reason_flag(reason: RevocationReason | None) -> x509.ReasonFlags | None:
    """The RFC 5280 reason code of a revocation (None: say none)."""
    return _REASONS.get(reason) if reason is not None else None


@dataclass(frozen=True, slots=True)
class PublishedCrl:
    """A CA's current CRL, in both forms (PEM)."""

    ca_name: str
    number: int
    pem: str  # the complete CRL: the files, /crl/NAME.pem
    dp_pem: str  # with the Issuing Distribution Point: /crl/NAME.crl
    this_update: datetime
    next_update: datetime


@dataclass(frozen=True, slots=True)
class CrlPolicy:
    validity: timedelta  # thisUpdate to nextUpdate
    refresh: timedelta  # a CRL this old is made again (at most validity / 2)
    urls: PkiUrls  # the distribution point the second form names


async def request_crls(uow: UnitOfWork, events: Sequence[Event]) -> None:
    """The outbox's consumer: ask for a new CRL of every CA that revoked a certificate
    since the earliest of these events that may revoke one (in the dispatcher's
    transaction; a few index seeks, whatever the batch)."""
    revoking = [e.at for e in events if e.type in REVOKING_EVENTS]
    if not revoking:
        return
    # A revocation is written with its event's time, so these events' revocations are at or
    # after the earliest; one revoked by an event still to come asks again with that event.
    ca_ids = await uow.certificates.cas_revoking_since(min(revoking))
    if ca_ids:
        await uow.certificates.request_crls(ca_ids)


def _entry(cert: IssuedCertificate, revoked_at: datetime) -> x509.RevokedCertificate:
    builder = (
        x509.RevokedCertificateBuilder()
        .serial_number(int(cert.serial_number, 16))
        .revocation_date(revoked_at)
    )
    flag = reason_flag(cert.revocation_reason)
    if flag is not None:
        builder = builder.add_extension(x509.CRLReason(flag), critical=False)
    return builder.build()


def _naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def build_crls(
    signer: Signer,
    revoked: Sequence[IssuedCertificate],
    *,
    number: int,
    now: datetime,
    validity: timedelta,
    url: str,
) -> tuple[x509.CertificateRevocationList, x509.CertificateRevocationList]:
    """The CA's complete CRL and the same for its distribution point ``url`` (with an
    Issuing Distribution Point), both numbered ``number``, valid from ``now``."""
    entries = [_entry(cert, cert.revoked_at) for cert in revoked if cert.revoked_at is not None]
    common = [
        x509.Extension(x509.CRLNumber.oid, False, x509.CRLNumber(number)),
        x509.Extension(x509.AuthorityKeyIdentifier.oid, False, signer.authority),
    ]
    point = x509.IssuingDistributionPoint(
        full_name=[x509.UniformResourceIdentifier(url)],
        relative_name=None,
        only_contains_user_certs=True,
        only_contains_ca_certs=False,
        only_some_reasons=None,
        indirect_crl=False,
        only_contains_attribute_certs=False,
    )

    def sign(
        extensions: list[x509.Extension[x509.ExtensionType]],
    ) -> x509.CertificateRevocationList:
        # the constructor takes the entries at once (add_revoked_certificate copies the
        # list each time: quadratic in the number of revoked certificates)
        return x509.CertificateRevocationListBuilder(
            signer.certificate.subject, _naive(now), _naive(now + validity), extensions, entries
        ).sign(signer.key, hashes.SHA256())

    return sign(common), sign([*common, x509.Extension(point.oid, True, point)])


def _pem(crl: x509.CertificateRevocationList) -> str:
    return crl.public_bytes(serialization.Encoding.PEM).decode()


def distribution_point(crl_pem: str) -> str | None:
    """The URL a CRL's Issuing Distribution Point names (None: it names none)."""
    crl = x509.load_pem_x509_crl(crl_pem.encode())
    try:
        point = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
    except x509.ExtensionNotFound:
        return None
    names = point.full_name or []
    return next(
        (str(n.value) for n in names if isinstance(n, x509.UniformResourceIdentifier)), None
    )


class CrlMaker:
    """Makes the CRLs that are due (see the module's docstring): the ``crl`` loop."""

    def __init__(
        self,
        uow: Callable[[], UnitOfWork],
        signers: SignerCache,
        passphrase: str | None,
        policy: CrlPolicy,
        clock: Callable[[], datetime],
    ) -> None:
        self._uow = uow
        self._signers = signers
        self._passphrase = passphrase
        self._policy = policy
        self._clock = clock
        self._checked: set[uuid.UUID] = set()  # CAs whose CRL names this process's URL
        self._failed: dict[uuid.UUID, datetime] = {}  # CAs whose CRL could not be made, when

    async def refresh(self) -> int:
        """Make every CRL that is due; how many were made. A CA whose CRL cannot be made
        (its key cannot be decrypted) is logged and does not hold up the others."""
        now = self._clock()
        async with self._uow().read() as uow:
            states = await uow.certificates.crl_states()
        made = 0
        for state in states:
            failed = self._failed.get(state.ca_id)
            if failed is not None and now - failed < RETRY_FAILED:
                continue  # said once a minute, not every second
            try:
                if await self._due(state, now):
                    made += await self._make(state, now)
                self._failed.pop(state.ca_id, None)
            except ProvisiondError as err:
                self._failed[state.ca_id] = now
                log.error("the CRL of CA %s cannot be made: %s", state.name, err)
        return made

    async def make(self, name: str) -> PublishedCrl:
        """The CA's current CRL, made now if it is due (``provisiond cas crl``)."""
        async with self._uow().read() as uow:
            state = next((s for s in await uow.certificates.crl_states() if s.name == name), None)
        if state is None:
            raise CaNotFound(f"no certificate authority {name!r}", name=name)
        if await self._due(state, self._clock()):
            await self._make(state, self._clock())
        return await current_crl(self._uow(), name=name)

    async def _due(self, state: CrlState, now: datetime) -> bool:
        if not state.signs:
            return False  # a manufacturer's CA: provisiond revokes none of its certificates
        if state.this_update is None or state.next_update is None:
            return True
        if state.requested > state.covers or now >= state.this_update + self._policy.refresh:
            return True
        if state.ca_id not in self._checked:  # public_url changed since it was made?
            async with self._uow().read() as uow:
                crl = await uow.certificates.crl(state.name)
            url = distribution_point(crl.dp_pem) if crl and crl.dp_pem else None
            if url != self._policy.urls.crl(state.name):
                return True
            self._checked.add(state.ca_id)
        return False

    async def _make(self, state: CrlState, now: datetime) -> int:
        async with self._uow().read() as uow:
            ca = await uow.cas.find_by_id(state.ca_id)
            revoked = await uow.certificates.revoked(state.ca_id, now)
        if ca is None:
            return 0
        signer = self._signers.get(ca, self._passphrase)
        number, validity = state.number + 1, self._policy.validity
        complete, point = await asyncio.to_thread(
            build_crls,
            signer,
            revoked,
            number=number,
            now=now,
            validity=validity,
            url=self._policy.urls.crl(ca.name),
        )
        new = NewCrl(
            number, _pem(complete), _pem(point), now, now + validity, covers=state.requested
        )
        async with self._uow() as uow:
            saved = await uow.certificates.save_crl(state.ca_id, new)
            await uow.commit()
        if not saved:
            return 0  # another instance saved this number first: look again next time
        self._checked.add(state.ca_id)
        log.info(
            "CRL %d of CA %s: %d revoked certificates, valid until %s",
            number,
            ca.name,
            len(revoked),
            new.next_update.isoformat(timespec="seconds"),
        )
        return 1


async def current_crl(uow: UnitOfWork, *, name: str) -> PublishedCrl:
    """A CA's current CRL (CaNotFound: no such CA, or one provisiond holds no key of;
    Unavailable: its first CRL is not made yet)."""
    async with uow.read():
        crl = await uow.certificates.crl(name)
    if crl is None:
        raise CaNotFound(f"no certificate authority {name!r}", name=name)
    if not crl.signs:
        raise CaNotFound(
            f"CA {name!r} is a manufacturer's CA: provisiond publishes no CRL for it", name=name
        )
    if crl.pem is None or crl.dp_pem is None or crl.this_update is None or crl.next_update is None:
        raise Unavailable(
            f"the first CRL of CA {name!r} is not made yet: `provisiond "
            "serve` makes it within seconds",
            retry_after=1,
        )
    return PublishedCrl(
        crl.ca_name, crl.number, crl.pem, crl.dp_pem, crl.this_update, crl.next_update
    )


def der_of(pem: str) -> bytes:
    """The DER bytes of a PEM document (one: a CRL or a certificate)."""
    # -----BEGIN X509 CRL-----, base64, -----END X509 CRL-----
    return base64.b64decode("".join(pem.split("-----")[2].split()))
