"""Credentials: what a device uses to connect. Secrets are shown once and stored hashed.

Every credential type is described once, in :data:`KINDS`: where it is issued, whether a
rotation or a revocation ends it, and what it becomes on the MQTT broker. Code that treats
the types differently reads the table (and services/credential_kinds.py keys the I/O-bound
halves by it), so a new type is one entry here, its handler there, and their tests.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Callable, Mapping
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


class BrokerLogin(StrEnum):
    """What a credential is on the MQTT broker (domain/broker.py names the accounts)."""

    NONE = "none"  # no account: a certificate, a radio's root keys
    TOKEN = "token"  # the token is the password; named by its selector (or the chooser's serial)
    BASIC = "basic"  # a user name and password as issued, bound to a client id


@dataclass(frozen=True, slots=True)
class CredentialKind:
    """One credential type, described: the row of :data:`KINDS` for it."""

    type: CredentialType
    #: ThingsBoard's ``credentialsType`` for it: provisioning issues it under this name
    #: (None: provisioning does not issue it, and a profile cannot hand it out).
    thingsboard_name: str | None
    #: What a repeated provisioning that chose its credential must present again, said when
    #: it presents something else ("another token").
    reissue: str | None
    #: Why ``devices rotate`` does not rotate it (None: it rotates, to a fresh secret).
    not_rotated: str | None
    #: Whether revoking a device's credentials, a rotation or a provisioning that replaces
    #: them ends it (False: LoRaWAN root keys stay, they are the radio's identity).
    revoke: bool
    broker_account: BrokerLogin
    #: What its ``lookup`` column holds (the value found by index, unique per type).
    lookup: str

    @property
    def provisioned(self) -> bool:
        return self.thingsboard_name is not None

    @property
    def rotatable(self) -> bool:
        return self.not_rotated is None

    @property
    def sealed_for_broker(self) -> bool:
        """Whether its secret is kept sealed for the broker while it is active (a revoked
        one's is dropped)."""
        return self.broker_account is not BrokerLogin.NONE


KINDS: Mapping[CredentialType, CredentialKind] = {
    k.type: k
    for k in (
        CredentialKind(
            CredentialType.ACCESS_TOKEN,
            thingsboard_name="ACCESS_TOKEN",
            reissue="another token",
            not_rotated=None,
            revoke=True,
            broker_account=BrokerLogin.TOKEN,
            lookup="the hash of a token the device chose (None: provisiond issued it)",
        ),
        CredentialKind(
            CredentialType.MQTT_BASIC,
            thingsboard_name="MQTT_BASIC",
            reissue="other MQTT credentials",
            not_rotated=None,
            revoke=True,
            broker_account=BrokerLogin.BASIC,
            lookup="the MQTT user name",
        ),
        CredentialKind(
            CredentialType.X509,
            thingsboard_name="X509_CERTIFICATE",
            reissue="another certificate",
            not_rotated="the device provisions again with a new CSR",
            revoke=True,
            broker_account=BrokerLogin.NONE,
            lookup="the certificate's SHA-256 fingerprint",
        ),
        CredentialKind(
            CredentialType.LORAWAN,
            thingsboard_name=None,
            reissue=None,
            not_rotated="LoRaWAN root keys are the radio's identity",
            revoke=False,
            broker_account=BrokerLogin.NONE,
            lookup="the DevEUI",
        ),
    )
}


def kind_of(ctype: CredentialType | str) -> CredentialKind:
    """The table's row for a type (or its stored value)."""
    return KINDS[CredentialType(ctype)]


def types_where(wanted: Callable[[CredentialKind], bool]) -> tuple[CredentialType, ...]:
    """The types whose row satisfies ``wanted``, in the table's order."""
    return tuple(t for t, k in KINDS.items() if wanted(k))


#: The credential types a profile can hand out on provisioning.
PROVISIONABLE = types_where(lambda k: k.provisioned)
#: The types ``devices rotate`` issues; a rotation replaces the active ones, whichever kind.
ROTATABLE = types_where(lambda k: k.rotatable)
#: The types revoking a device's credentials ends.
REVOCABLE = types_where(lambda k: k.revoke)


def mqtt_username(serial: str, suffix: str) -> str:
    """The MQTT user name provisiond makes for a device's MQTT-basic credential (provisioning
    and rotation alike): its serial, cut to 40 characters, and a random ``suffix``."""
    return f"{serial[:40]}-{suffix}"


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
