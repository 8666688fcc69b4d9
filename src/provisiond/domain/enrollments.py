"""Azure DPS enrollments in provisiond's words (services/dps.py).

An **enrollment group** is a profile's: its devices attest with a key derived from the
group's symmetric key (HMAC-SHA256 of the registration id, as DPS derives it) or with a
certificate chaining to the profile's device CA (X.509). An **individual enrollment** is one
registered device's, with its own symmetric key. Either names the broker host the device is
assigned to (DPS's ``assignedHub``); the profile's reprovisioning policy decides what a
second registration of the same device gets.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from provisiond.domain.profiles import Profile


class Attestation(StrEnum):
    SYMMETRIC_KEY = "symmetric-key"
    X509 = "x509"


@dataclass(frozen=True, slots=True)
class Enrollment:
    id: uuid.UUID
    profile: Profile
    device_id: uuid.UUID | None  # None: the profile's enrollment group
    serial: str | None  # the enrolled device's (individual enrollments)
    attestation: Attestation
    key_sealed: str | None  # the symmetric key, sealed (None for X.509)
    assigned_hub: str
    created_at: datetime
    allocation_webhook: str | None = None  # DPS's custom allocation (services/dps.py)

    @property
    def is_group(self) -> bool:
        return self.device_id is None
