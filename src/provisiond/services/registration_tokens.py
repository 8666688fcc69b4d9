"""Signed-token registration: firmware carries a JWT signed by the manufacturer and trades
it for a device and its credentials (the webinar's dynamic registration).

The token's header names the profile (``kid`` = the profile's provision key). A profile with
an ES256 public key accepts ES256 only; one without accepts HS256 only, keyed with the
32-byte SHA-256 of the profile secret — a key provisiond keeps sealed with the
``device_key_passphrase`` setting, so nothing in a copy of the database signs a token (the
secret itself is stored as another hash: services/hashing.py). Pinning one algorithm per
profile refuses ``none`` and the HS/ES confusion (a token HMAC-signed with the public key as
the secret). An unknown ``kid``, a disabled profile, another algorithm and a bad signature
get one answer, after the same work, so tokens cannot probe which provision keys exist.
Claims: ``serial`` (required), ``model`` (optional, from the catalogue), ``exp``
(required, at most a day ahead) and ``jti`` (required): a token is used once.
"""

from __future__ import annotations

import binascii
import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from provisiond.domain.catalog import parse_model_name
from provisiond.domain.credentials import IssuedCredential
from provisiond.domain.device import Device
from provisiond.domain.events import EventType, NewEvent
from provisiond.domain.profiles import Profile
from provisiond.domain.serials import parse_serial
from provisiond.errors import (
    DeviceExists,
    InvalidInput,
    ModelNotFound,
    Problem,
    ProvisiondError,
    RegistrationRefused,
    TooManyRequests,
)
from provisiond.services.devices import add_profile_device, issue_access_token
from provisiond.services.ratelimit import RateLimiter, log_refused, profile_wait
from provisiond.services.sealing import Sealer
from provisiond.store.uow import UnitOfWork

NOT_SIGNED = "the token is not signed by the key of an enabled profile (its kid)"
LEEWAY = timedelta(seconds=30)  # clock skew between the manufacturer and this server
MAX_LIFETIME = timedelta(days=1)  # how far ahead exp may be: a token is not a credential
JTI_MAX = 128
ES256 = "ES256"
HS256 = "HS256"


def parse_public_key(pem: str, *, field: str = "jwt_public_key") -> str:
    """A PEM public key on P-256 (what ES256 needs), normalised; or InvalidInput."""
    try:
        key = serialization.load_pem_public_key(pem.strip().encode())
    except (ValueError, TypeError, binascii.Error) as err:
        problem = Problem(f"is not a PEM public key: {err}", field=field)
        raise InvalidInput(str(problem), problems=[problem]) from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        problem = Problem("must be an EC public key on P-256 (ES256)", field=field)
        raise InvalidInput(str(problem), problems=[problem])
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def algorithm_for(profile: Profile) -> str:
    return ES256 if profile.jwt_public_key else HS256


@functools.cache
def _nobodys_key() -> str:
    """A public key nobody holds the private half of: what a token naming no profile is
    checked against, so that it costs what a bad signature costs."""
    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


async def _verifier(uow: UnitOfWork, kid: str, keys: Sealer) -> tuple[Profile | None, str, Any]:
    """The enabled profile of this kid (or None), its algorithm and verifying key."""
    async with uow.read():
        found = await uow.profiles.find_by_key(kid)
        profile = found[0] if found and found[0].enabled else None
        sealed = await uow.profiles.jwt_key_sealed(profile.id) if profile else None
    if profile is None:
        return None, ES256, _nobodys_key()
    if profile.jwt_public_key:
        return profile, ES256, profile.jwt_public_key
    if sealed is None:
        return None, ES256, _nobodys_key()
    return profile, HS256, bytes.fromhex(keys.unseal(sealed))


@dataclass(frozen=True, slots=True)
class Registered:
    device: Device
    credential: IssuedCredential


async def register_with_token(
    uow: UnitOfWork,
    limiter: RateLimiter,
    *,
    token: str,
    source: str,
    unknown_source_rate_per_minute: int,
    now: datetime,
    keys: Sealer,
    sealer: Sealer | None = None,
) -> Registered:
    """Create the device a registration token names, with a fresh access token. ``keys``
    opens the profiles' sealed HS256 keys; ``sealer`` keeps the new token for the broker."""

    def refused(message: str) -> ProvisiondError:
        """The refusal, or 429 once this address has been refused too often."""
        wait = limiter.take(("registration-refused", source), unknown_source_rate_per_minute)
        if wait:
            return TooManyRequests(
                f"too many refused registrations: retry in {wait:.0f} s",
                retry_after=max(1, round(wait)),
            )
        log_refused("registration", message, source=source)
        return RegistrationRefused(message)

    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise refused("the token is not a JWT") from None
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise refused("the token's header has no kid (the profile's provision key)")
    profile, expected, key = await _verifier(uow, kid, keys)
    try:  # PyJWT checks exp and the claims only once the signature verified
        claims = jwt.decode(
            token,
            key,
            algorithms=[expected],
            leeway=LEEWAY,
            options={"require": ["exp", "jti", "serial"]},
        )
    except jwt.ExpiredSignatureError:
        raise refused("the token has expired") from None
    except jwt.MissingRequiredClaimError as err:
        raise refused(f"the token has no {err.claim!r} claim") from None
    except jwt.InvalidTokenError:
        raise refused(NOT_SIGNED) from None
    if profile is None:  # nobody's key verified it: cannot happen, answered alike anyway
        raise refused(NOT_SIGNED)
    wait = profile_wait(limiter, profile, source)
    if wait:
        raise TooManyRequests(
            f"too many registrations: retry in {wait:.0f} s", retry_after=max(1, round(wait))
        )
    return await _register(uow, profile, claims, now, sealer)


async def _register(
    uow: UnitOfWork, profile: Profile, claims: dict[str, Any], now: datetime, sealer: Sealer | None
) -> Registered:
    problems: list[Problem] = []
    expires = datetime.fromtimestamp(int(claims["exp"]), UTC)
    if expires - now > MAX_LIFETIME + LEEWAY:
        raise RegistrationRefused(
            "the token's exp is more than a day ahead: registration tokens must be short-lived"
        )
    jti = claims["jti"]
    if not isinstance(jti, str) or not 0 < len(jti) <= JTI_MAX:
        problems.append(Problem(f"must be a string of 1 to {JTI_MAX} characters", "jti"))
    serial = ""
    try:
        serial = parse_serial(str(claims["serial"]))
    except InvalidInput as err:
        problems.extend(err.problems)
    model_name = claims.get("model")
    if model_name is not None:
        try:
            model_name = parse_model_name(str(model_name))
        except InvalidInput as err:
            problems.extend(err.problems)
    if problems:
        raise InvalidInput("; ".join(f"claim {p}" for p in problems), problems=problems)

    actor = f"registration:{profile.name}"
    async with uow:
        uow.conflicts_as(RegistrationRefused("the token was already used"))
        await uow.profiles.use_registration_token(profile.id, jti, expires, now)
        model = await uow.models.find_by_name(model_name) if model_name else None
        if model_name and model is None:
            raise ModelNotFound(
                f"no model {model_name!r} in the catalogue (claim model)", name=model_name
            )
        if await uow.devices.find_by_serial(serial) is not None:
            raise DeviceExists(f"device {serial} is already registered", serial=serial)
        device = await add_profile_device(
            uow,
            profile,
            serial=serial,
            name=serial,
            model=model,
            actor=actor,
            now=now,
            data={"registration_token": jti},
        )
        issued, verifier_hash = issue_access_token(device.id, serial, now)
        await uow.credentials.add(
            issued.credential,
            lookup=None,
            secret_hash=verifier_hash,
            secret_sealed=sealer.seal(issued.secret) if sealer else None,
        )
        await uow.devices.mark_provisioned(
            device.id, profile_id=profile.id, credential_id=issued.credential.id, now=now
        )
        await uow.events.add(
            NewEvent(
                EventType.CREDENTIALS_ISSUED,
                now,
                actor,
                device_id=device.id,
                serial=serial,
                group_id=device.group_id,
                data={"type": issued.credential.type.value},
            )
        )
        await uow.commit()
    return Registered(device, issued)
