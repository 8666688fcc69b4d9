"""Provisioning profiles: how devices running one generic firmware register themselves.

A profile is what a device presents on its first contact: a provision key (which profile)
and a provision secret (proof that the firmware is ours), as in ThingsBoard's device
provisioning. The profile decides whether unknown devices may be created (``allow-create``)
or only devices registered beforehand may provision (``pre-provisioned``), which group and
model new devices get, which credential types it hands out, and how fast it may be used.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from provisiond.domain.claims import ClaimProof, ReleasePolicy
from provisiond.domain.credentials import PROVISIONABLE, CredentialType
from provisiond.domain.limits import (
    DEVICE_SECRET_MIN_LENGTH_DEFAULT,
    DEVICE_SECRET_MIN_LENGTH_MAX,
    PROFILE_KEY_MAX,
    PROFILE_KEY_MIN,
    PROFILE_NAME_MAX,
    PROFILE_RATE_MAX,
)
from provisiond.domain.tts import NetworkSettings
from provisiond.errors import InvalidInput, Problem

_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
# Keys and secrets travel in JSON and MQTT payloads, typed into firmware configs: visible
# ASCII without spaces or quotes.
_KEY = re.compile(r"[A-Za-z0-9_.:~+/=\-]+")

DEFAULT_RATE_PER_MINUTE = 60_000
DEFAULT_SOURCE_RATE_PER_MINUTE = 600


class Strategy(StrEnum):
    ALLOW_CREATE = "allow-create"  # a device not yet registered is created on provisioning
    PRE_PROVISIONED = "pre-provisioned"  # only devices registered beforehand may provision


class ReprovisionPolicy(StrEnum):
    """Whether a device already provisioned may provision again (Azure's provisioning
    service has the same choice). services/provisioning.py says what counts as a proof."""

    NEVER = "never"  # ThingsBoard's contract: a name provisions once, then FAILURE
    WITH_PROOF = "with-proof"  # a repeat that proves it is the first requester is answered
    # ...and a device that proves itself (its current certificate's key, its retry key) may
    # get new credentials after a factory reset, the old ones revoked
    FACTORY_RESET = "factory-reset"


@dataclass(frozen=True, slots=True)
class Profile:
    id: uuid.UUID
    name: str
    key: str  # the provision key devices send: it names the profile, it is not a secret
    strategy: Strategy
    group_id: uuid.UUID | None  # devices created by this profile are claimed for this group
    group_path: str | None
    model_id: uuid.UUID | None
    model: str | None
    credential_types: tuple[CredentialType, ...]  # the first is the default
    rate_per_minute: int  # provisioning requests per minute, all sources together
    source_rate_per_minute: int  # per source address
    enabled: bool
    created_at: datetime
    updated_at: datetime
    secret_rotated_at: datetime
    jwt_public_key: str | None = None  # ES256 public key (PEM) for signed-token registration
    ca_id: uuid.UUID | None = None  # the CA that signs device CSRs
    ca_name: str | None = None
    certificate_days: int = 365  # lifetime of the certificates it signs
    claim_proof: ClaimProof | None = None  # None: the instance default (settings)
    claim_window_seconds: int | None = None  # None: the instance default (settings)
    release_policy: ReleasePolicy = ReleasePolicy.KEEP
    network: NetworkSettings = field(default_factory=NetworkSettings)  # The Things Stack
    reprovision: ReprovisionPolicy = ReprovisionPolicy.NEVER
    device_secret_min_length: int = DEVICE_SECRET_MIN_LENGTH_DEFAULT  # chosen tokens/passwords
    device_ca_id: uuid.UUID | None = None  # the manufacturer CA vouching for brought certs
    device_ca_name: str | None = None


@dataclass(frozen=True, slots=True)
class ProfileSpec:
    """What creating a profile takes, as given (unchecked): the CLI's options and the API's
    body both build one, services.profiles.create_profile checks every field at once.
    None and empty values mean "generate" (key, secret) or "the instance default"."""

    name: str
    strategy: str = Strategy.ALLOW_CREATE.value
    key: str | None = None
    secret: str | None = None
    group: str | None = None  # a group path
    model: str | None = None
    credentials: Sequence[str] = ()  # credential type names; the first is the default
    rate_per_minute: int = DEFAULT_RATE_PER_MINUTE
    source_rate_per_minute: int = DEFAULT_SOURCE_RATE_PER_MINUTE
    jwt_public_key: str | None = None  # PEM
    ca: str | None = None  # the CA that signs CSRs, by name
    certificate_days: int = 365
    claim_proof: str | None = None
    claim_window: int | None = None  # seconds
    release_policy: str = ReleasePolicy.KEEP.value
    lorawan: Mapping[str, Any] | None = None  # domain.tts.parse_network_settings' arguments
    reprovision: str = ReprovisionPolicy.NEVER.value
    device_secret_min_length: int = DEVICE_SECRET_MIN_LENGTH_DEFAULT
    device_ca: str | None = None  # the CA vouching for certificates devices bring, by name


@dataclass(frozen=True, slots=True)
class ProfileChanges:
    """What updating a profile takes, as given (unchecked): its identity rules, its signing
    CA and certificates' lifetime, how its devices are claimed. None leaves a field as it
    is; a ``clear_`` flag removes the CA, or returns the claim proof or window to the
    instance's default."""

    reprovision: str | None = None
    device_secret_min_length: int | None = None
    device_ca: str | None = None
    clear_device_ca: bool = False
    ca: str | None = None  # the CA that signs CSRs, by name
    clear_ca: bool = False
    certificate_days: int | None = None
    claim_proof: str | None = None
    clear_claim_proof: bool = False
    claim_window: int | None = None  # seconds
    clear_claim_window: bool = False
    release_policy: str | None = None


def _fail(field: str, problem: str) -> InvalidInput:
    return InvalidInput(f"{field} {problem}", problems=[Problem(problem, field=field)])


def parse_profile_name(text: str, *, field: str = "name") -> str:
    name = text.strip()
    if not name:
        raise _fail(field, "is empty")
    if len(name) > PROFILE_NAME_MAX:
        raise _fail(field, f"is longer than {PROFILE_NAME_MAX} characters")
    if _NAME.fullmatch(name) is None:
        raise _fail(field, "may hold only letters, digits, '_', '.' and '-'")
    return name


def parse_key(text: str, *, field: str) -> str:
    """A provision key or secret chosen by the operator (generated ones always pass)."""
    if len(text) < PROFILE_KEY_MIN:
        raise _fail(
            field,
            f"is shorter than {PROFILE_KEY_MIN} characters; leave it out to have one generated",
        )
    if len(text) > PROFILE_KEY_MAX:
        raise _fail(field, f"is longer than {PROFILE_KEY_MAX} characters")
    if _KEY.fullmatch(text) is None:
        raise _fail(field, "may hold only letters, digits and _ . : ~ + / = -")
    return text


def parse_strategy(text: str, *, field: str = "strategy") -> Strategy:
    try:
        return Strategy(text.strip().lower())
    except ValueError:
        allowed = ", ".join(s.value for s in Strategy)
        raise _fail(field, f"{text!r} is not a strategy; use {allowed}") from None


def parse_credential_types(
    texts: list[str] | tuple[str, ...], *, field: str = "credentials"
) -> tuple[CredentialType, ...]:
    """The credential types a profile accepts, in order (the first is the default)."""
    if not texts:
        return (CredentialType.ACCESS_TOKEN,)
    out: list[CredentialType] = []
    allowed = ", ".join(t.value for t in PROVISIONABLE)
    for text in texts:
        for part in text.split(","):
            try:
                ctype = CredentialType(part.strip().lower())
            except ValueError:
                raise _fail(
                    field, f"{part.strip()!r} is not a credential type; use {allowed}"
                ) from None
            if ctype not in PROVISIONABLE:
                raise _fail(
                    field,
                    f"{ctype.value} credentials are not issued by provisioning; use {allowed}",
                )
            if ctype not in out:
                out.append(ctype)
    return tuple(out)


def parse_reprovision_policy(text: str, *, field: str = "reprovision") -> ReprovisionPolicy:
    try:
        return ReprovisionPolicy(text.strip().lower())
    except ValueError:
        allowed = ", ".join(p.value for p in ReprovisionPolicy)
        raise _fail(field, f"{text!r} is not a reprovisioning policy; use {allowed}") from None


def parse_device_secret_min_length(value: int, *, field: str = "device_secret_min_length") -> int:
    if not 1 <= value <= DEVICE_SECRET_MIN_LENGTH_MAX:
        raise _fail(field, f"must be between 1 and {DEVICE_SECRET_MIN_LENGTH_MAX} characters")
    return value


def parse_rate(value: int, *, field: str) -> int:
    if not 1 <= value <= PROFILE_RATE_MAX:
        raise _fail(field, f"must be between 1 and {PROFILE_RATE_MAX} per minute")
    return value
