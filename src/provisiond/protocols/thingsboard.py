"""ThingsBoard's device provisioning messages (HTTP, MQTT and CoAP carry the same JSON).

Sans-IO: :func:`parse_request` turns a decoded JSON body into a :class:`ProvisionRequest` or
raises :class:`Refused`; :func:`success` and :func:`failure` build the answers. Answers
always carry ``status``; a failure always carries ``errorMsg``.

Request: ``{"deviceName", "provisionDeviceKey", "provisionDeviceSecret"}`` and optionally
device-chosen credentials: ``"credentialsType": "ACCESS_TOKEN", "token"``;
``"MQTT_BASIC", "clientId", "username", "password"``; ``"X509_CERTIFICATE", "hash"`` (PEM).

provisiond's extensions (ThingsBoard ignores them; its SDKs never send them):
``retryKey`` (a secret the device generated before its first request: a repeat carrying it
is answered with the same credential), ``certificateProof`` (a signature by the key of the
certificate in ``hash``), ``currentCertificate`` and ``reprovisionProof`` (a factory reset:
the device's current certificate and a signature by its key). :func:`proof_message` is what
the signatures sign.

A device attested by its TLS client certificate sends no secret (:func:`carries_secret`):
:func:`parse_attested_request` reads what such a request may carry — ``deviceName``,
``provisionDeviceKey`` (which profile) and ``credentialsType`` — each optional.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

NOT_FOUND = "NOT_FOUND"
FAILURE = "FAILURE"
SUCCESS = "SUCCESS"

FIELD_MAX = 256  # names, keys, tokens, client ids, user names, passwords
PEM_MAX = 16_384
RETRY_KEY_MIN = 22  # 16 random bytes in base64url
SIGNATURE_MAX = 2048  # base64 of a signature (RSA-4096 is 684 characters)
FAILED = "Failed to provision device!"  # ThingsBoard's errorMsg for every FAILURE
CERTIFICATE_PROOF = "provisiond-certificate-proof"
_EXTENSIONS = frozenset({"retryKey", "certificateProof", "currentCertificate", "reprovisionProof"})
REPROVISION_PROOF = "provisiond-reprovision-proof"


class TbCredentialsType(StrEnum):
    ACCESS_TOKEN = "ACCESS_TOKEN"  # noqa: S105 - a type name, not a password
    MQTT_BASIC = "MQTT_BASIC"
    X509_CERTIFICATE = "X509_CERTIFICATE"


class Refused(Exception):
    """The request is refused with this status (NOT_FOUND or FAILURE) and message."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(slots=True)  # not frozen: one per request, and a frozen __init__ costs a µs
class ProvisionRequest:
    key: str
    secret: str
    device_name: str | None  # None: the server names the device
    credentials_type: TbCredentialsType | None  # None: the profile's default
    token: str | None = None  # ACCESS_TOKEN chosen by the device
    client_id: str | None = None  # MQTT_BASIC chosen by the device
    username: str | None = None
    password: str | None = None
    certificate: str | None = None  # X509_CERTIFICATE: PEM
    retry_key: str | None = None
    certificate_proof: str | None = None  # base64 signature by the key of ``certificate``
    current_certificate: str | None = None  # PEM: a factory reset's current certificate
    reprovision_proof: str | None = None  # base64 signature by its key

    @property
    def device_chose_credentials(self) -> bool:
        return any(
            v is not None
            for v in (self.token, self.username, self.password, self.client_id, self.certificate)
        )


def _text(body: dict[str, Any], name: str, limit: int = FIELD_MAX) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise Refused(FAILURE, f"{name} must be a string")
    if len(value) > limit:
        raise Refused(FAILURE, f"{name} is longer than {limit} characters")
    return value if value.strip() else None


def parse_request(body: object) -> ProvisionRequest:
    """Validate a decoded provision request. Missing key or secret answer NOT_FOUND (as an
    unknown key does); anything else malformed answers FAILURE naming the field."""
    if not isinstance(body, dict):
        raise Refused(FAILURE, "the request must be a JSON object")
    key = _text(body, "provisionDeviceKey")
    secret = _text(body, "provisionDeviceSecret")
    if key is None or secret is None:
        raise Refused(NOT_FOUND, "Provision data was not found!")
    name = _text(body, "deviceName")
    ctype = _credentials_type(body)
    mqtt = ctype is TbCredentialsType.MQTT_BASIC
    request = ProvisionRequest(
        key=key,
        secret=secret,
        device_name=name,
        credentials_type=ctype,
        token=_text(body, "token") if ctype is TbCredentialsType.ACCESS_TOKEN else None,
        client_id=_text(body, "clientId") if mqtt else None,
        username=_text(body, "username") if mqtt else None,
        password=_text(body, "password") if mqtt else None,
        certificate=(
            _text(body, "hash", PEM_MAX) if ctype is TbCredentialsType.X509_CERTIFICATE else None
        ),
    )
    if _EXTENSIONS.isdisjoint(body):  # what ThingsBoard's SDKs send: nothing more to read
        return request
    retry_key = _text(body, "retryKey")
    if retry_key is not None and len(retry_key) < RETRY_KEY_MIN:
        raise Refused(
            FAILURE,
            f"retryKey must be at least {RETRY_KEY_MIN} characters: "
            "16 random bytes or more, generated by the device",
        )
    return replace(
        request,
        retry_key=retry_key,
        certificate_proof=_text(body, "certificateProof", SIGNATURE_MAX),
        current_certificate=_text(body, "currentCertificate", PEM_MAX),
        reprovision_proof=_text(body, "reprovisionProof", SIGNATURE_MAX),
    )


@dataclass(slots=True)
class AttestedRequest:
    """A provision request from a device that proved itself by its TLS client certificate
    (certificate-chain attestation): no secret. Each field is optional."""

    device_name: str | None  # must be the certificate's subject CN when given
    key: str | None  # provisionDeviceKey: names the profile when its device CA has several
    credentials_type: TbCredentialsType | None  # X509_CERTIFICATE (the certificate) or none


def carries_secret(body: object) -> bool:
    """Whether a decoded request presents a profile's secret (the secret-based flow)."""
    return isinstance(body, dict) and body.get("provisionDeviceSecret") not in (None, "")


def _credentials_type(body: dict[str, Any]) -> TbCredentialsType | None:
    raw_type = _text(body, "credentialsType")
    if raw_type is None:
        return None
    try:
        return TbCredentialsType(raw_type.strip().upper())
    except ValueError:
        allowed = ", ".join(t.value for t in TbCredentialsType)
        raise Refused(FAILURE, f"credentialsType {raw_type!r} is not one of {allowed}") from None


def parse_attested_request(body: object) -> AttestedRequest:
    """Validate a decoded request without a secret (an empty body is one); anything
    malformed answers FAILURE naming the field."""
    if not isinstance(body, dict):
        raise Refused(FAILURE, "the request must be a JSON object")
    return AttestedRequest(
        _text(body, "deviceName"), _text(body, "provisionDeviceKey"), _credentials_type(body)
    )


def proof_message(
    purpose: str, provision_key: str, device_name: str | None, pem: str | None
) -> bytes:
    """What a device signs: the purpose, the profile's key, ``deviceName`` exactly as sent
    and the SHA-256 (hex) of the PEM in ``hash``, one per line. A signature is therefore
    good for this profile, this device and this certificate or CSR only."""
    digest = hashlib.sha256((pem or "").encode()).hexdigest()
    return f"{purpose}\n{provision_key}\n{device_name or ''}\n{digest}".encode()


def success(ctype: TbCredentialsType, value: str | dict[str, str | None]) -> dict[str, Any]:
    """ThingsBoard's success answer; MQTT_BASIC's value is ``{clientId, userName, password}``."""
    return {"status": SUCCESS, "credentialsType": ctype.value, "credentialsValue": value}


def failure(status: str, message: str) -> dict[str, Any]:
    return {"status": status, "errorMsg": message}
