"""Credentials: what a device uses to connect. Secrets are shown once and stored hashed."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


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
