"""Proofs that a device holds a certificate's private key.

A certificate is public: a device shows it in every TLS handshake. Holding one proves
nothing, so a certificate a device brings (ThingsBoard's ``hash``) is accepted only

- when the profile's ``device_ca`` (its manufacturer's CA) signed it for this serial (its
  subject CN is the serial): the manufacturer vouches for the binding, or
- with ``certificateProof``, a signature by the certificate's key over
  :func:`~provisiond.protocols.thingsboard.proof_message` (this profile's key, this
  ``deviceName``, this certificate).

The same kind of signature, by the key of the device's *current* certificate, is how a
device proves itself for a factory reset (``reprovisionProof``, services/reprovisioning.py).
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from provisiond.domain.serials import normalise_serial
from provisiond.protocols import thingsboard as tb
from provisiond.services.certificates import CertificateRefused
from provisiond.store.profiles import StoredCa

NO_PROOF = (
    "a certificate the device brings needs its proof: a signature by its key in "
    "certificateProof, or a profile whose device_ca issued it"
)
BAD_PROOF = "certificateProof is not a signature by the certificate's key"


def verify_signature(certificate: x509.Certificate, signature_b64: str, message: bytes) -> bool:
    """Whether ``signature_b64`` (base64) is a signature of ``message`` by the certificate's
    key: ECDSA with SHA-256, or RSA PKCS#1 v1.5 with SHA-256."""
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (ValueError, binascii.Error):
        return False
    key = certificate.public_key()
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        else:
            return False
    except InvalidSignature:
        return False
    return True


def issued_by(certificate: x509.Certificate, ca_pem: str, now: datetime) -> bool:
    """Whether a CA, valid now, signed this certificate directly."""
    ca = x509.load_pem_x509_certificate(ca_pem.encode())
    if not ca.not_valid_before_utc <= now <= ca.not_valid_after_utc:
        return False
    try:
        certificate.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def common_name(certificate: x509.Certificate) -> str:
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def check_possession(
    certificate: x509.Certificate,
    request: tb.ProvisionRequest,
    *,
    serial: str,
    device_ca: StoredCa | None,
    now: datetime,
) -> None:
    """Accept a certificate the device brings only with the proof described above; else
    :class:`CertificateRefused` saying what is missing."""
    if device_ca is not None and issued_by(certificate, device_ca.certificate_pem, now):
        name = common_name(certificate)
        if normalise_serial(name) != serial:
            raise CertificateRefused(
                f"the certificate's subject CN {name!r} is not the device's serial {serial}"
            )
        return
    if request.certificate_proof is None:
        raise CertificateRefused(NO_PROOF)
    message = tb.proof_message(
        tb.CERTIFICATE_PROOF, request.key, request.device_name, request.certificate
    )
    if not verify_signature(certificate, request.certificate_proof, message):
        raise CertificateRefused(BAD_PROOF)
