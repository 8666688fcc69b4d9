"""Certificate authorities, and X.509 device certificates signed from a CSR.

A CA's private key is stored in the database as PKCS#8 PEM, encrypted with the
``ca_key_passphrase`` setting when one is set (production requires it). A device CSR is
accepted when its signature verifies, its key is EC P-256/P-384 or RSA of at least 2048
bits, and its subject's common name is the device's serial; the certificate is a client
certificate (``clientAuth``), valid from five minutes ago for the profile's number of days.
It names where its revocation is published (:class:`PkiUrls`): its CA's CRL (CRL
distribution point), the OCSP responder and its CA's certificate (authority information
access). A certificate is known by the SHA-256 of its DER form (its fingerprint).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from provisiond.domain.events import EventType, NewEvent
from provisiond.domain.limits import CERTIFICATE_DAYS_MAX
from provisiond.domain.scope import Scope
from provisiond.domain.serials import normalise_serial
from provisiond.errors import (
    CaExists,
    CaNotFound,
    ConfigurationError,
    InvalidInput,
    Problem,
)
from provisiond.services.ids import new_id
from provisiond.services.scoping import require_operator
from provisiond.store.profiles import StoredCa
from provisiond.store.uow import UnitOfWork

log = logging.getLogger(__name__)
_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
BACKDATE = timedelta(minutes=5)  # devices' clocks run behind


@dataclass(frozen=True, slots=True)
class CaInfo:
    name: str
    subject: str
    not_after: datetime
    fingerprint: str
    certificate_pem: str
    key_encrypted: bool
    created_at: datetime
    can_sign: bool = True  # False: a manufacturer's CA, known by its certificate only


def _bad(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", problems=[Problem(message, field=field)])


def public_key_sha256(key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> str:
    """The SHA-256 (hex) of a public key's SubjectPublicKeyInfo: which key a certificate or
    a CSR holds, whatever else differs."""
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def fingerprint(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA256()).hex()


def _info(ca: StoredCa) -> CaInfo:
    cert = x509.load_pem_x509_certificate(ca.certificate_pem.encode())
    return CaInfo(
        ca.name,
        cert.subject.rfc4514_string(),
        cert.not_valid_after_utc,
        fingerprint(cert),
        ca.certificate_pem,
        ca.key_encrypted,
        ca.created_at,
        ca.private_key_pem is not None,
    )


def _encryption(
    passphrase: str | None, production: bool
) -> serialization.KeySerializationEncryption:
    if passphrase:
        return serialization.BestAvailableEncryption(passphrase.encode())
    if production:
        raise ConfigurationError(
            "set ca_key_passphrase (PROVISIOND_CA_KEY_PASSPHRASE): in "
            "production CA keys are stored encrypted"
        )
    log.warning("ca_key_passphrase is not set: the CA's private key is stored unencrypted")
    return serialization.NoEncryption()


def _check_name(name: str) -> str:
    name = name.strip()
    if not _NAME.fullmatch(name):
        raise _bad("name", "1 to 64 letters, digits, '_', '.' or '-'")
    return name


async def create_ca(  # noqa: PLR0913 - a use case's context (uow, scope, actor, now) and a CA's own fields
    uow: UnitOfWork,
    *,
    scope: Scope,
    name: str,
    common_name: str | None = None,
    days: int = 3650,
    passphrase: str | None,
    production: bool,
    actor: str,
    now: datetime,
) -> CaInfo:
    """A new CA: an EC P-256 key and a self-signed CA certificate (operator-wide admins
    only: CAs are global)."""
    name = _check_name(name)
    require_operator(scope, "creating certificate authorities")
    if not 1 <= days <= 2 * CERTIFICATE_DAYS_MAX:
        raise _bad("days", f"must be between 1 and {2 * CERTIFICATE_DAYS_MAX}")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, (common_name or f"provisiond {name} CA")[:64])]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return await _store(uow, name, cert, key, passphrase, production, actor, now)


def _ca_certificate(certificate_pem: str) -> x509.Certificate:
    try:
        cert = x509.load_pem_x509_certificate(certificate_pem.encode())
    except ValueError as err:
        raise _bad("certificate", f"is not a PEM certificate: {err}") from None
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise _bad("certificate", "is not a CA certificate (basicConstraints CA:TRUE)")
    if not isinstance(cert.public_key(), ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise _bad("certificate", "must hold an EC or RSA key")
    return cert


async def register_ca_certificate(
    uow: UnitOfWork, *, scope: Scope, name: str, certificate_pem: str, actor: str, now: datetime
) -> CaInfo:
    """A CA known by its certificate only (a manufacturer's): it signs nothing here, it
    vouches for the certificates devices bring (a profile's ``device_ca``)."""
    name = _check_name(name)
    require_operator(scope, "registering certificate authorities")
    cert = _ca_certificate(certificate_pem)
    ca = StoredCa(
        new_id(), name, cert.public_bytes(serialization.Encoding.PEM).decode(), None, False, now
    )
    return await _add(uow, ca, cert, actor, now)


async def import_ca(  # noqa: PLR0913 - a use case's context (uow, scope, actor, now) and a CA's own fields
    uow: UnitOfWork,
    *,
    name: str,
    certificate_pem: str,
    key_pem: str,
    key_password: str | None,
    passphrase: str | None,
    production: bool,
    actor: str,
    now: datetime,
) -> CaInfo:
    """An existing CA: its certificate (a CA certificate) and the matching private key."""
    name = _check_name(name)
    cert = _ca_certificate(certificate_pem)
    try:
        key = serialization.load_pem_private_key(
            key_pem.encode(), key_password.encode() if key_password else None
        )
    except (ValueError, TypeError) as err:
        raise _bad("key", f"cannot be read: {err}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise _bad("key", "must be an EC or RSA private key")
    if key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        raise _bad("key", "does not match the certificate")
    return await _store(uow, name, cert, key, passphrase, production, actor, now)


async def _store(
    uow: UnitOfWork,
    name: str,
    cert: x509.Certificate,
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
    passphrase: str | None,
    production: bool,
    actor: str,
    now: datetime,
) -> CaInfo:
    encryption = _encryption(passphrase, production)
    ca = StoredCa(
        new_id(),
        name,
        cert.public_bytes(serialization.Encoding.PEM).decode(),
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        ).decode(),
        bool(passphrase),
        now,
    )
    return await _add(uow, ca, cert, actor, now)


async def _add(
    uow: UnitOfWork, ca: StoredCa, cert: x509.Certificate, actor: str, now: datetime
) -> CaInfo:
    name = ca.name
    async with uow:
        exists = CaExists(f"a certificate authority {name!r} already exists", name=name)
        uow.conflicts_as(exists)
        if await uow.cas.find_by_name(name) is not None:
            raise exists
        await uow.cas.add(ca)
        await uow.events.add(
            NewEvent(
                EventType.CA_CREATED,
                now,
                actor,
                data={
                    "name": name,
                    "fingerprint": fingerprint(cert),
                    "can_sign": ca.private_key_pem is not None,
                },
            )
        )
        await uow.commit()
    return _info(ca)


async def list_cas(uow: UnitOfWork) -> list[CaInfo]:
    async with uow.read():
        return [_info(ca) for ca in await uow.cas.list()]


async def get_ca(uow: UnitOfWork, *, name: str) -> CaInfo:
    async with uow.read():
        ca = await uow.cas.find_by_name(name.strip())
    if ca is None:
        raise CaNotFound(f"no certificate authority {name!r}", name=name)
    return _info(ca)


class CertificateRefused(ValueError):
    """What is wrong with a CSR or a device certificate (told to the device)."""


def _key_usage(key_encipherment: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        key_encipherment=key_encipherment,
        content_commitment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


# What every device certificate carries, built once (each costs more than the signature).
_LEAF = x509.BasicConstraints(ca=False, path_length=None)
_USAGE = {False: _key_usage(False), True: _key_usage(True)}  # by key_encipherment (RSA)
_CLIENT_AUTH = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])


@dataclass(frozen=True, slots=True)
class PkiUrls:
    """Where provisiond publishes its CAs' CRLs and certificates and answers OCSP (the
    routes of web/pki.py): written into every certificate it issues, so it must be the
    address brokers reach this service at (the ``public_url`` setting)."""

    base: str  # without a trailing slash

    def crl(self, ca_name: str) -> str:
        return f"{self.base}/crl/{ca_name}.crl"

    def ca_certificate(self, ca_name: str) -> str:
        return f"{self.base}/ca/{ca_name}.crt"

    @property
    def ocsp(self) -> str:
        return f"{self.base}/ocsp"


def authority_key_identifier(certificate: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    """The AKI of what ``certificate``'s key signs: its subject key identifier when it has
    one (an imported CA's may not be the SHA-1 of its key, and verifiers compare the two),
    else one computed from its key."""
    try:
        ski = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(certificate.public_key())  # type: ignore[arg-type]
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _published(ca_name: str, urls: PkiUrls) -> tuple[x509.ExtensionType, ...]:
    """The CRL distribution point and authority information access of ``ca_name``'s
    certificates."""
    return (
        x509.CRLDistributionPoints(
            [
                x509.DistributionPoint(
                    full_name=[x509.UniformResourceIdentifier(urls.crl(ca_name))],
                    relative_name=None,
                    reasons=None,
                    crl_issuer=None,
                )
            ]
        ),
        x509.AuthorityInformationAccess(
            [
                x509.AccessDescription(
                    AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(urls.ocsp)
                ),
                x509.AccessDescription(
                    AuthorityInformationAccessOID.CA_ISSUERS,
                    x509.UniformResourceIdentifier(urls.ca_certificate(ca_name)),
                ),
            ]
        ),
    )


@dataclass(frozen=True, slots=True)
class Signer:
    """A CA ready to sign: its certificate and decrypted key."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    authority: x509.AuthorityKeyIdentifier  # the CA's, in every certificate it signs
    published: tuple[x509.ExtensionType, ...] = ()  # where revocation is published
    # what every certificate it signs shares (issuer, extensions), by key type (RSA or
    # not): built once, since each builder step copies the builder and checks its
    # extensions again
    _templates: dict[bool, x509.CertificateBuilder] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @classmethod
    def load(cls, ca: StoredCa, passphrase: str | None, urls: PkiUrls | None = None) -> Signer:
        if ca.private_key_pem is None:
            raise ConfigurationError(
                f"CA {ca.name!r} is a manufacturer's CA (a certificate "
                "without its key): it cannot sign"
            )
        try:
            key = serialization.load_pem_private_key(
                ca.private_key_pem.encode(),
                passphrase.encode() if ca.key_encrypted and passphrase else None,
            )
        except (ValueError, TypeError) as err:
            raise ConfigurationError(
                f"the key of CA {ca.name!r} cannot be decrypted: check ca_key_passphrase ({err})"
            ) from None
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise ConfigurationError(f"the key of CA {ca.name!r} is not EC or RSA")
        certificate = x509.load_pem_x509_certificate(ca.certificate_pem.encode())
        return cls(
            certificate,
            key,
            authority_key_identifier(certificate),
            _published(ca.name, urls) if urls is not None else (),
        )

    def sign(self, csr_pem: str, *, serial: str, days: int, now: datetime) -> x509.Certificate:
        return self.issue(check_csr(csr_pem, serial=serial), days=days, now=now)

    def issue(self, csr: CheckedCsr, *, days: int, now: datetime) -> x509.Certificate:
        """The certificate for a CSR :func:`check_csr` accepted."""
        public_key = csr.public_key
        return (
            self._template(isinstance(public_key, rsa.RSAPublicKey))
            .subject_name(_common_name(csr.serial))
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + timedelta(days=days))
            .sign(self.key, _SHA256)
        )

    def _template(self, rsa_key: bool) -> x509.CertificateBuilder:
        template = self._templates.get(rsa_key)
        if template is None:
            template = (
                x509.CertificateBuilder()
                .issuer_name(self.certificate.subject)
                .add_extension(_LEAF, critical=True)
                .add_extension(_USAGE[rsa_key], critical=True)
                .add_extension(_CLIENT_AUTH, critical=False)
                .add_extension(self.authority, critical=False)
            )
            for extension in self.published:
                template = template.add_extension(extension, critical=False)
            self._templates[rsa_key] = template
        return template


_SHA256 = hashes.SHA256()


@functools.lru_cache(maxsize=64)
def _common_name(value: str) -> x509.Name:
    """A subject of one common name (AWS's certificates all have the same one)."""
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, value)])


@dataclass(frozen=True, slots=True)
class CheckedCsr:
    """A CSR whose signature verifies, with an acceptable key, for the device ``serial``."""

    serial: str
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey


def check_csr(csr_pem: str, *, serial: str) -> CheckedCsr:
    """Check a device's CSR (PEM): it parses, its signature verifies, its key is EC P-256 /
    P-384 or RSA 2048+, and its subject CN is the device's serial."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
    except ValueError:
        raise CertificateRefused("the CSR is not PEM (BEGIN CERTIFICATE REQUEST)") from None
    if not csr.is_signature_valid:
        raise CertificateRefused("the CSR's signature does not verify")
    public_key = csr.public_key()
    _check_key(public_key)
    names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    common_name = str(names[0].value) if names else ""
    if normalise_serial(common_name) != serial:
        raise CertificateRefused(
            f"the CSR's subject CN {common_name!r} is not the device's serial {serial}"
        )
    if not isinstance(public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise CertificateRefused("the CSR's key must be EC or RSA")
    return CheckedCsr(serial, public_key)


def _check_key(key: object) -> None:
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1 | ec.SECP384R1):
            raise CertificateRefused("an EC key must be on P-256 or P-384")
    elif isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise CertificateRefused(f"an RSA key must have at least 2048 bits, not {key.key_size}")
    else:
        raise CertificateRefused("the key must be EC (P-256, P-384) or RSA (2048+ bits)")


def is_csr(pem: str) -> bool:
    return "CERTIFICATE REQUEST-----" in pem


def device_certificate(pem: str, *, now: datetime) -> x509.Certificate:
    """A certificate a device already has (ThingsBoard's ``hash``): a parseable, currently
    valid certificate with an acceptable key. Its subject need not be the serial."""
    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        raise CertificateRefused("the certificate is not PEM (BEGIN CERTIFICATE)") from None
    _check_key(cert.public_key())
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise CertificateRefused(
            f"the certificate is not valid now (valid "
            f"{cert.not_valid_before_utc:%Y-%m-%d} to "
            f"{cert.not_valid_after_utc:%Y-%m-%d})"
        )
    return cert  # its subject names the device however its maker chose


class SignerCache:
    """Decrypted CA keys, per process: decrypting a PKCS#8 key costs far more than signing.
    With ``urls``, the certificates they sign say where their revocation is published."""

    def __init__(self, urls: PkiUrls | None = None) -> None:
        self.urls = urls
        self._signers: dict[tuple[object, str | None], Signer] = {}

    def get(self, ca: StoredCa, passphrase: str | None) -> Signer:
        key = (ca.id, ca.private_key_pem)
        signer = self._signers.get(key)
        if signer is None:
            signer = self._signers[key] = Signer.load(ca, passphrase, self.urls)
        return signer
