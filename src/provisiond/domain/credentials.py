"""Credentials: what a device uses to connect. Secrets are shown once and stored hashed."""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

# A token provisiond issues is ``<selector>.<verifier>``: the selector is the credential's id
# (16 bytes of base64url, unpadded: 22 characters) and not secret; the verifier is.
SELECTOR = re.compile(r"[A-Za-z0-9_-]{21}[AQgw]")


class CredentialType(StrEnum):
    ACCESS_TOKEN = "access-token"
    MQTT_BASIC = "mqtt-basic"
    X509 = "x509"
    LORAWAN = "lorawan"


@dataclass(frozen=True, slots=True)
class Credential:
    id: uuid.UUID
    device_id: uuid.UUID
    type: CredentialType
    created_at: datetime
    revoked_at: datetime | None = None
    first_used_at: datetime | None = None  # the first time a device authenticated with it


@dataclass(frozen=True, slots=True)
class IssuedCredential:
    """A credential just issued, with its secret: the only time the secret exists in clear."""

    credential: Credential
    serial: str
    secret: str


def token_selector(credential_id: uuid.UUID) -> str:
    """The public half of a token provisiond issued: its credential's id, base64url."""
    return base64.urlsafe_b64encode(credential_id.bytes).decode().rstrip("=")


def selector_credential(selector: str) -> uuid.UUID | None:
    """The credential id a selector stands for, or None when ``selector`` is not one."""
    if SELECTOR.fullmatch(selector) is None:
        return None
    try:
        return uuid.UUID(bytes=base64.urlsafe_b64decode(selector + "=="))
    except (ValueError, binascii.Error):
        return None
