"""An OCSP responder (RFC 6960) for provisiond's CAs.

A request names a certificate by its issuer (hashes of the issuer's name and key) and serial
number. The answer, signed by that CA's own key (the CA is its own responder, so clients
need no other certificate), comes from the CA's register (store/certificates.py): ``good``
for a certificate it issued and has not revoked, ``revoked`` with the time and reason, and
``unknown`` for a serial number it never issued. A CA provisiond holds no key of (a
manufacturer's) or does not know gets ``unauthorized``; a request that cannot be read, or
with a nonce over 128 bytes (RFC 8954), ``malformedRequest``; a database outage
``tryLater``. A nonce is echoed. One certificate per request: what clients send, and all
cryptography reads (a request for several is ``malformedRequest``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from provisiond.errors import ProvisiondError, Unavailable
from provisiond.services.certificates import SignerCache
from provisiond.services.revocation import reason_flag
from provisiond.store.certificates import serial_hex
from provisiond.store.profiles import StoredCa
from provisiond.store.uow import UnitOfWork

log = logging.getLogger(__name__)
MAX_REQUEST_BYTES = 16 * 1024  # a request is ~100 bytes; a signed one with its chain, a few KiB
NONCE_MAX_BYTES = 128
CA_RELOAD = timedelta(seconds=5)  # an unknown issuer reloads the CAs at most this often
_ALGORITHMS: tuple[hashes.HashAlgorithm, ...] = (
    hashes.SHA1(),  # noqa: S303 - RFC 6960 CertID: what most clients send
    hashes.SHA224(),
    hashes.SHA256(),
    hashes.SHA384(),
    hashes.SHA512(),
)


@dataclass(frozen=True, slots=True)
class OcspAnswer:
    body: bytes  # DER, application/ocsp-response
    next_update: datetime | None = None  # a successful answer: until when it holds
    this_update: datetime | None = None
    cacheable: bool = False  # successful and without a nonce (RFC 5019: GET may be cached)


def _failure(status: ocsp.OCSPResponseStatus) -> OcspAnswer:
    return OcspAnswer(
        ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(serialization.Encoding.DER)
    )


def _der_length(der: bytes, at: int) -> tuple[int, int]:
    """The length of the DER element whose length octets start at ``at``, and where its
    content starts."""
    first = der[at]
    if first < 0x80:
        return first, at + 1
    count = first & 0x7F
    return int.from_bytes(der[at + 1 : at + 1 + count], "big"), at + 1 + count


def subject_public_key(certificate: x509.Certificate) -> bytes:
    """The subjectPublicKey BIT STRING's bits (what an OCSP issuerKeyHash hashes): walk
    SubjectPublicKeyInfo = SEQUENCE { AlgorithmIdentifier, BIT STRING }."""
    der = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _, at = _der_length(der, 1)  # into the outer SEQUENCE
    length, content = _der_length(der, at + 1)  # the AlgorithmIdentifier: skipped
    length, content = _der_length(der, content + length + 1)  # the BIT STRING
    return der[content + 1 : content + length]  # after its unused-bits octet


def _digest(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    h = hashes.Hash(algorithm)
    h.update(data)
    return h.finalize()


def issuer_keys(ca: StoredCa) -> list[tuple[str, bytes, bytes]]:
    """How a request may name the CA: (hash algorithm, name hash, key hash) for each
    algorithm a request may use."""
    cert = x509.load_pem_x509_certificate(ca.certificate_pem.encode())
    name, key = cert.subject.public_bytes(), subject_public_key(cert)
    return [(a.name, _digest(a, name), _digest(a, key)) for a in _ALGORITHMS]


class OcspResponder:
    def __init__(
        self,
        uow: Callable[[], UnitOfWork],
        signers: SignerCache,
        passphrase: str | None,
        validity: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self._uow = uow
        self._signers = signers
        self._passphrase = passphrase
        self._validity = validity
        self._clock = clock
        self._issuers: dict[tuple[str, bytes, bytes], StoredCa] = {}
        self._loaded_at: datetime | None = None
        self._loading = asyncio.Lock()

    async def respond(self, der: bytes) -> OcspAnswer:
        """The answer to one DER-encoded OCSP request (never raises for bad input)."""
        try:
            request = ocsp.load_der_ocsp_request(der)
            algorithm = request.hash_algorithm.name
            nonce = _nonce(request)
        except (ValueError, NotImplementedError, UnsupportedAlgorithm):
            return _failure(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
        if nonce is not None and not 0 < len(nonce) <= NONCE_MAX_BYTES:
            return _failure(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
        try:
            return await self._answer(request, algorithm, nonce)
        except Unavailable as err:
            log.warning("OCSP: %s", err)
            return _failure(ocsp.OCSPResponseStatus.TRY_LATER)
        except ProvisiondError as err:  # a CA key that cannot be decrypted
            log.error("OCSP: %s", err)
            return _failure(ocsp.OCSPResponseStatus.INTERNAL_ERROR)

    async def _answer(
        self, request: ocsp.OCSPRequest, algorithm: str, nonce: bytes | None
    ) -> OcspAnswer:
        key = (algorithm, request.issuer_name_hash, request.issuer_key_hash)
        ca = await self._issuer(key)
        if ca is None or ca.private_key_pem is None:
            return _failure(ocsp.OCSPResponseStatus.UNAUTHORIZED)
        async with self._uow().read() as uow:
            issued = await uow.certificates.find(ca.id, serial_hex(request.serial_number))
        signer = self._signers.get(ca, self._passphrase)
        now = self._clock()
        if issued is None:
            status, revoked_at = ocsp.OCSPCertStatus.UNKNOWN, None
        elif issued.revoked_at is None:
            status, revoked_at = ocsp.OCSPCertStatus.GOOD, None
        else:
            status, revoked_at = ocsp.OCSPCertStatus.REVOKED, issued.revoked_at
        builder = (
            ocsp.OCSPResponseBuilder()
            .add_response_by_hash(
                issuer_name_hash=request.issuer_name_hash,
                issuer_key_hash=request.issuer_key_hash,
                serial_number=request.serial_number,
                algorithm=request.hash_algorithm,
                cert_status=status,
                this_update=now,
                next_update=now + self._validity,
                revocation_time=revoked_at,
                revocation_reason=reason_flag(issued.revocation_reason)
                if issued is not None and revoked_at is not None
                else None,
            )
            .responder_id(ocsp.OCSPResponderEncoding.HASH, signer.certificate)
        )
        if nonce is not None:
            builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
        body = builder.sign(signer.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
        return OcspAnswer(body, now + self._validity, now, cacheable=nonce is None)

    async def _issuer(self, key: tuple[str, bytes, bytes]) -> StoredCa | None:
        ca = self._issuers.get(key)
        if ca is not None:
            return ca
        async with self._loading:
            now = self._clock()
            if self._loaded_at is None or now - self._loaded_at >= CA_RELOAD:
                async with self._uow().read() as uow:
                    cas = await uow.cas.list()
                self._issuers = {k: ca for ca in cas for k in issuer_keys(ca)}
                self._loaded_at = now
        return self._issuers.get(key)


def _nonce(request: ocsp.OCSPRequest) -> bytes | None:
    try:
        return request.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        return None
