"""Provisioning profiles: create, list, show, enable or disable, rotate the secret; and
checking the key and secret a device presents."""

from __future__ import annotations

import secrets
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TypeVar

from provisiond.domain.catalog import parse_model_name
from provisiond.domain.claims import (
    ReleasePolicy,
    check_claim_window,
    parse_claim_proof,
    parse_release_policy,
)
from provisiond.domain.credentials import CredentialType
from provisiond.domain.events import EventType, NewEvent
from provisiond.domain.groups import parse_group_path
from provisiond.domain.limits import CERTIFICATE_DAYS_MAX, PAGE_SIZE_DEFAULT
from provisiond.domain.profiles import (
    Profile,
    ProfileChanges,
    ProfileSpec,
    ReprovisionPolicy,
    Strategy,
    parse_credential_types,
    parse_device_secret_min_length,
    parse_key,
    parse_profile_name,
    parse_rate,
    parse_reprovision_policy,
    parse_strategy,
)
from provisiond.domain.scope import Scope
from provisiond.domain.tts import NetworkSettings, parse_network_settings
from provisiond.domain.users import Role
from provisiond.errors import (
    CaNotFound,
    GroupNotFound,
    InvalidInput,
    ModelNotFound,
    Problem,
    ProfileExists,
    ProfileNotFound,
    ProfileSecretChanged,
)
from provisiond.services.hashing import hash_profile_secret, hs256_key, tokens_equal
from provisiond.services.ids import new_id
from provisiond.services.paging import Page, page_of, start
from provisiond.services.registration_tokens import parse_public_key
from provisiond.services.scoping import group_in_scope, require, require_group
from provisiond.services.sealing import Sealer
from provisiond.store.profiles import StoredCa
from provisiond.store.uow import UnitOfWork

_ALPHANUMERIC = string.ascii_letters + string.digits
_LOWER = string.ascii_lowercase + string.digits
GENERATED_LENGTH = 20  # 20 alphanumerics: about 119 bits
# Compared when the key is unknown, so a wrong key costs what a wrong secret costs.
_DUMMY_HASH = hash_profile_secret("provisiond-no-such-profile")
_DEV_SEALER = Sealer(None, production=False)  # callers that pass none: development, tests

T = TypeVar("T")


def generate_key() -> str:
    """A provision key or secret: 20 random letters and digits (ThingsBoard's form)."""
    return "".join(secrets.choice(_ALPHANUMERIC) for _ in range(GENERATED_LENGTH))


@dataclass(frozen=True, slots=True)
class ProfileWithSecret:
    """A profile just created or given a new secret: the only time the secret is shown."""

    profile: Profile
    secret: str


class _Checks:
    """Runs parsers, keeping every problem; a failed parser yields a placeholder value that
    is never used (the caller raises when there are problems)."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def __call__(self, parse: Callable[[], T], placeholder: T) -> T:
        try:
            return parse()
        except InvalidInput as err:
            self.problems.extend(err.problems)
            return placeholder


async def create_profile(  # noqa: PLR0915 - one validation per profile field, in the transaction that writes them
    uow: UnitOfWork,
    *,
    scope: Scope,
    spec: ProfileSpec,
    sealer: Sealer | None = None,
    actor: str,
    now: datetime,
) -> ProfileWithSecret:
    """A new, enabled profile. Every input problem is reported at once; nothing is created
    then. Key and secret are generated when not given; the secret is stored hashed, and the
    HS256 key of its registration tokens sealed with ``sealer`` (device_key_passphrase).
    A scoped admin makes profiles for groups of its subtree only."""
    require(scope, Role.ADMIN, "creating profiles")
    if not spec.group:
        require_group(scope, None, "a profile without a group")
    check = _Checks()
    name_ = check(lambda: parse_profile_name(spec.name), "")
    strategy_ = check(lambda: parse_strategy(spec.strategy), Strategy.ALLOW_CREATE)
    key, secret = spec.key, spec.secret
    key_ = check(lambda: parse_key(key, field="key"), "") if key is not None else generate_key()
    secret_ = (
        check(lambda: parse_key(secret, field="secret"), "")
        if secret is not None
        else generate_key()
    )
    no_types: tuple[CredentialType, ...] = ()
    types = check(lambda: parse_credential_types(tuple(spec.credentials)), no_types)
    rate = check(lambda: parse_rate(spec.rate_per_minute, field="rate_per_minute"), 0)
    source_rate = check(
        lambda: parse_rate(spec.source_rate_per_minute, field="source_rate_per_minute"), 0
    )
    group, model, pem = spec.group, spec.model, spec.jwt_public_key
    path = check(lambda: parse_group_path(group), None) if group else None
    model_name = check(lambda: parse_model_name(model), None) if model else None
    public_key = check(lambda: parse_public_key(pem), None) if pem else None
    if not 1 <= spec.certificate_days <= CERTIFICATE_DAYS_MAX:
        check.problems.append(
            Problem(f"must be between 1 and {CERTIFICATE_DAYS_MAX}", field="certificate_days")
        )
    if key_ and key_ == secret_:
        check.problems.append(Problem("must differ from the key", field="secret"))
    claim_proof, claim_window = spec.claim_proof, spec.claim_window
    proof = check(lambda: parse_claim_proof(claim_proof), None) if claim_proof else None
    window = (
        check(lambda: check_claim_window(claim_window), None) if claim_window is not None else None
    )
    policy = check(lambda: parse_release_policy(spec.release_policy), ReleasePolicy.KEEP)
    lorawan = check(lambda: parse_network_settings(**(spec.lorawan or {})), NetworkSettings())
    reprovision_ = check(
        lambda: parse_reprovision_policy(spec.reprovision), ReprovisionPolicy.NEVER
    )
    secret_min = check(lambda: parse_device_secret_min_length(spec.device_secret_min_length), 0)
    if check.problems:
        n = len(check.problems)
        detail = str(check.problems[0]) if n == 1 else f"{n} problems; the profile was not created"
        raise InvalidInput(detail, problems=check.problems)

    async with uow:
        exists = ProfileExists(
            f"a profile named {name_!r} or with this key already exists", name=name_
        )
        uow.conflicts_as(exists)
        taken = await uow.profiles.name_or_key_taken(name_, key_)
        if taken == "name":
            raise ProfileExists(f"a profile named {name_!r} already exists", name=name_)
        if taken == "key":
            raise ProfileExists(
                "another profile has this provision key; choose another or "
                "leave --key out to have one generated",
                field="key",
            )
        group_ = await group_in_scope(uow, scope, path) if path else None
        model_ = await uow.models.find_by_name(model_name) if model_name else None
        if model_name and model_ is None:
            raise ModelNotFound(f"no model {model_name!r} in the catalogue", name=model_name)
        ca_ = await _signing_ca(uow, spec.ca)
        device_ca_ = await _ca(uow, spec.device_ca, "device_ca")
        profile = Profile(
            id=new_id(),
            name=name_,
            key=key_,
            strategy=strategy_,
            group_id=group_.id if group_ else None,
            group_path=group_.path if group_ else None,
            model_id=model_.id if model_ else None,
            model=model_.name if model_ else None,
            credential_types=types,
            rate_per_minute=rate,
            source_rate_per_minute=source_rate,
            enabled=True,
            created_at=now,
            updated_at=now,
            secret_rotated_at=now,
            jwt_public_key=public_key,
            ca_id=ca_.id if ca_ else None,
            ca_name=ca_.name if ca_ else None,
            certificate_days=spec.certificate_days,
            claim_proof=proof,
            claim_window_seconds=window,
            release_policy=policy,
            network=lorawan,
            reprovision=reprovision_,
            device_secret_min_length=secret_min,
            device_ca_id=device_ca_.id if device_ca_ else None,
            device_ca_name=device_ca_.name if device_ca_ else None,
        )
        await uow.profiles.add(
            profile, hash_profile_secret(secret_), _seal_jwt_key(sealer, secret_)
        )
        await uow.events.add(
            NewEvent(
                EventType.PROFILE_CREATED,
                now,
                actor,
                group_id=profile.group_id,
                data={
                    "name": name_,
                    "strategy": strategy_.value,
                    "group": profile.group_path,
                    "model": profile.model,
                    "credentials": [t.value for t in types],
                    "claim_proof": proof.value if proof else None,
                    "claim_window": window,
                    "release_policy": policy.value,
                    "lorawan": lorawan.to_json() or None,
                    "reprovision": reprovision_.value,
                    "device_secret_min_length": secret_min,
                    "device_ca": profile.device_ca_name,
                },
            )
        )
        await uow.commit()
    return ProfileWithSecret(profile, secret_)


def _seal_jwt_key(sealer: Sealer | None, secret: str) -> str:
    return (sealer or _DEV_SEALER).seal(hs256_key(secret).hex())


async def _ca(uow: UnitOfWork, name: str | None, field: str) -> StoredCa | None:
    if not name:
        return None
    found = await uow.cas.find_by_name(name.strip())
    if found is None:
        raise CaNotFound(f"no certificate authority {name!r} ({field})", name=name)
    return found


async def _signing_ca(uow: UnitOfWork, name: str | None) -> StoredCa | None:
    """The CA that signs this profile's device CSRs: one whose key provisiond holds."""
    found = await _ca(uow, name, "ca")
    if found is not None and found.private_key_pem is None:
        problem = Problem(
            f"CA {found.name!r} is known by its certificate only and cannot "
            "sign; give it as device_ca to vouch for certificates devices bring",
            field="ca",
        )
        raise InvalidInput(str(problem), problems=[problem])
    return found


async def update_profile(
    uow: UnitOfWork,
    *,
    scope: Scope,
    name: str,
    changes: ProfileChanges,
    actor: str,
    now: datetime,
) -> Profile:
    """Change a profile's rules: its reprovisioning policy, the shortest secret a device may
    choose, the manufacturer CA that vouches for certificates devices bring; the CA that
    signs its devices' CSRs and their certificates' lifetime; the proof its devices' claims
    need, their window and the release policy. What is not given stays; every problem is
    reported at once; one event records it."""
    name = parse_profile_name(name)
    require(scope, Role.ADMIN, "changing profiles")
    ch = changes
    check = _Checks()
    policy = _parsed(check, parse_reprovision_policy, ch.reprovision)
    secret_min = _parsed(check, parse_device_secret_min_length, ch.device_secret_min_length)
    proof = _parsed(check, parse_claim_proof, ch.claim_proof)
    window = _parsed(check, check_claim_window, ch.claim_window)
    release = _parsed(check, parse_release_policy, ch.release_policy)
    days = ch.certificate_days
    if days is not None and not 1 <= days <= CERTIFICATE_DAYS_MAX:
        check.problems.append(
            Problem(f"must be between 1 and {CERTIFICATE_DAYS_MAX}", field="certificate_days")
        )
    for given, cleared, field, what in (
        (ch.device_ca, ch.clear_device_ca, "device_ca", "a device CA or remove it"),
        (ch.ca, ch.clear_ca, "ca", "a signing CA or remove it"),
        (ch.claim_proof, ch.clear_claim_proof, "claim_proof", "a claim proof or the default"),
        (ch.claim_window, ch.clear_claim_window, "claim_window", "a claim window or the default"),
    ):
        if given is not None and cleared:
            check.problems.append(Problem(f"give {what}, not both", field=field))
    if check.problems:
        raise InvalidInput("; ".join(str(p) for p in check.problems), problems=check.problems)
    async with uow:
        profile = await _existing(uow, scope, name)
        device_ca_ = await _ca(uow, ch.device_ca, "device_ca")
        ca_ = await _signing_ca(uow, ch.ca)
        changed = replace(
            profile,
            reprovision=policy or profile.reprovision,
            device_secret_min_length=secret_min or profile.device_secret_min_length,
            device_ca_id=(
                None
                if ch.clear_device_ca
                else device_ca_.id
                if device_ca_
                else profile.device_ca_id
            ),
            device_ca_name=(
                None
                if ch.clear_device_ca
                else device_ca_.name
                if device_ca_
                else profile.device_ca_name
            ),
            ca_id=None if ch.clear_ca else ca_.id if ca_ else profile.ca_id,
            ca_name=None if ch.clear_ca else ca_.name if ca_ else profile.ca_name,
            certificate_days=days or profile.certificate_days,
            claim_proof=None if ch.clear_claim_proof else proof or profile.claim_proof,
            claim_window_seconds=(
                None if ch.clear_claim_window else window or profile.claim_window_seconds
            ),
            release_policy=release or profile.release_policy,
            updated_at=now,
        )
        if changed == replace(profile, updated_at=now):
            return profile
        await uow.profiles.set_rules(changed, now)
        await uow.events.add(
            NewEvent(
                EventType.PROFILE_UPDATED,
                now,
                actor,
                group_id=profile.group_id,
                data={
                    "name": name,
                    "reprovision": changed.reprovision.value,
                    "device_secret_min_length": changed.device_secret_min_length,
                    "device_ca": changed.device_ca_name,
                    "ca": changed.ca_name,
                    "certificate_days": changed.certificate_days,
                    "claim_proof": changed.claim_proof.value if changed.claim_proof else None,
                    "claim_window": changed.claim_window_seconds,
                    "release_policy": changed.release_policy.value,
                },
            )
        )
        await uow.commit()
    return changed


V = TypeVar("V")


def _parsed(check: _Checks, parse: Callable[[V], T], given: V | None) -> T | None:
    """``given`` parsed (its problems kept by ``check``), or None when not given."""
    if given is None:
        return None
    return check(lambda: parse(given), None)


# ThingsBoard's provision strategies, as its profile request names them.
THINGSBOARD_STRATEGIES = {
    "CHECK_NEW_DEVICE": Strategy.ALLOW_CREATE,
    "CHECK_PRE_PROVISIONED_DEVICE": Strategy.PRE_PROVISIONED,
}


async def create_thingsboard_profile(  # noqa: C901, PLR0913 - ThingsBoard's profile request maps field by field onto a profile
    uow: UnitOfWork,
    *,
    scope: Scope,
    key: str | None,
    secret: str | None,
    strategy: str | None,
    customer_id: str | None,
    group_name: str | None,
    actor: str,
    now: datetime,
    customer_entity_type: str | None = None,
    sealer: Sealer | None = None,
) -> ProfileWithSecret:
    """A profile from ThingsBoard's profile request (``POST /api/device/provision``).

    ThingsBoard's customer is a provisiond group, named by its id (``customerId.id``) or its
    path (``groupName``); given both, the group must lie in the customer's subtree. The
    profile is named ``tb-`` and 8 random characters (the request names none).
    """
    require(scope, Role.ADMIN, "creating profiles")
    check = _Checks()
    mapped = Strategy.ALLOW_CREATE
    if strategy is not None:
        if strategy not in THINGSBOARD_STRATEGIES:
            allowed = ", ".join(THINGSBOARD_STRATEGIES)
            check.problems.append(
                Problem(
                    f"{strategy!r} is not a strategy; use {allowed}",
                    field="strategy.validationStrategyType",
                )
            )
        else:
            mapped = THINGSBOARD_STRATEGIES[strategy]
    if customer_entity_type not in (None, "CUSTOMER"):
        check.problems.append(Problem("must be CUSTOMER", field="customerId.entityType"))
    customer = None
    if customer_id is not None:
        try:
            customer = uuid.UUID(customer_id)
        except ValueError:
            check.problems.append(
                Problem(f"{customer_id!r} is not a group id (a UUID)", field="customerId.id")
            )
    path = check(lambda: parse_group_path(group_name), None) if group_name else None
    if check.problems:
        raise InvalidInput("; ".join(str(p) for p in check.problems), problems=check.problems)
    if customer is not None:
        async with uow.read():
            group = await uow.groups.find_by_id(customer)
        if group is None or not scope.covers(group.path):
            raise GroupNotFound(
                f"no group with id {customer} (customerId.id)", field="customerId.id"
            )
        if path is None:
            path = group.path
        elif not (path == group.path or path.startswith(group.path + "/")):
            problem = Problem(
                f"group {path!r} is not in the customer's group {group.path!r}", field="groupName"
            )
            raise InvalidInput(str(problem), problems=[problem])
    name = f"tb-{''.join(secrets.choice(_LOWER) for _ in range(8))}"
    return await create_profile(
        uow,
        spec=ProfileSpec(name, mapped.value, key=key, secret=secret, group=path),
        sealer=sealer,
        actor=actor,
        now=now,
        scope=scope,
    )


async def list_profiles(
    uow: UnitOfWork, *, scope: Scope, cursor: str | None = None, limit: int = PAGE_SIZE_DEFAULT
) -> Page[Profile]:
    """A page of the profiles of the caller's subtree (all for an operator-wide caller;
    profiles without a group are the operator's), in name order."""
    after = start(cursor, limit)
    async with uow.read():
        profiles = await uow.profiles.list(scope.group_path, after=after, limit=limit + 1)
    return page_of(profiles, limit, lambda p: p.name)


async def _existing(uow: UnitOfWork, scope: Scope, name: str) -> Profile:
    """The profile named so, in the open transaction; ProfileNotFound, in the same words,
    when there is none or it is outside the caller's scope."""
    profile = await uow.profiles.find_by_name(name)
    if profile is None or not scope.covers(profile.group_path):
        raise ProfileNotFound(f"no profile {name!r}", name=name)
    return profile


async def get_profile(uow: UnitOfWork, *, scope: Scope, name: str) -> Profile:
    name = parse_profile_name(name)
    async with uow.read():
        return await _existing(uow, scope, name)


async def set_profile_enabled(
    uow: UnitOfWork, *, scope: Scope, name: str, enabled: bool, actor: str, now: datetime
) -> Profile:
    """Enable or disable a profile (a disabled profile provisions nothing). Idempotent: a
    profile already in that state is returned unchanged, with no event."""
    name = parse_profile_name(name)
    require(scope, Role.ADMIN, "enabling and disabling profiles")
    async with uow:
        profile = await _existing(uow, scope, name)
        if profile.enabled == enabled:
            return profile
        await uow.profiles.set_enabled(profile.id, enabled, now)
        event = EventType.PROFILE_ENABLED if enabled else EventType.PROFILE_DISABLED
        await uow.events.add(
            NewEvent(event, now, actor, group_id=profile.group_id, data={"name": name})
        )
        await uow.commit()
    return replace(profile, enabled=enabled, updated_at=now)


async def set_profile_jwt_key(
    uow: UnitOfWork, *, scope: Scope, name: str, public_key: str | None, actor: str, now: datetime
) -> Profile:
    """Register (or replace) the ES256 public key that registration tokens of this profile
    are signed with; None removes it (the profile then accepts HS256 tokens)."""
    name = parse_profile_name(name)
    pem = parse_public_key(public_key) if public_key else None
    require(scope, Role.ADMIN, "changing profiles")
    async with uow:
        profile = await _existing(uow, scope, name)
        await uow.profiles.set_jwt_public_key(profile.id, pem, now)
        await uow.events.add(
            NewEvent(
                EventType.PROFILE_JWT_KEY_SET,
                now,
                actor,
                group_id=profile.group_id,
                data={"name": name, "algorithm": "ES256" if pem else "HS256"},
            )
        )
        await uow.commit()
    return replace(profile, jwt_public_key=pem, updated_at=now)


async def rotate_profile_secret(
    uow: UnitOfWork,
    *,
    scope: Scope,
    name: str,
    secret: str | None = None,
    sealer: Sealer | None = None,
    replacing: datetime | None = None,
    actor: str,
    now: datetime,
) -> ProfileWithSecret:
    """Give a profile a new secret (generated unless given); the old one stops working at
    once. Firmware carrying the old secret can no longer provision. With ``replacing`` (the
    ``secret_rotated_at`` of the secret the caller means to replace), a secret set since —
    by a repeated request, or by someone else meanwhile — is kept: ProfileSecretChanged."""
    name = parse_profile_name(name)
    new_secret = parse_key(secret, field="secret") if secret is not None else generate_key()
    require(scope, Role.ADMIN, "changing profiles")
    async with uow:
        profile = await _existing(uow, scope, name)
        if new_secret == profile.key:
            problem = Problem("must differ from the key", field="secret")
            raise InvalidInput(str(problem), problems=[problem])
        changed = ProfileSecretChanged(
            f"the secret of profile {name!r} was changed after "
            f"{replacing.isoformat() if replacing else 'it was read'}; nothing was changed",
            name=name,
        )
        if replacing is not None and profile.secret_rotated_at != replacing:
            raise changed
        stored = await uow.profiles.set_secret(
            profile.id,
            hash_profile_secret(new_secret),
            _seal_jwt_key(sealer, new_secret),
            now,
            replacing=replacing,
        )
        if not stored:
            raise changed
        await uow.events.add(
            NewEvent(
                EventType.PROFILE_SECRET_ROTATED,
                now,
                actor,
                group_id=profile.group_id,
                data={"name": name},
            )
        )
        await uow.commit()
    return ProfileWithSecret(replace(profile, secret_rotated_at=now, updated_at=now), new_secret)


async def seal_registration_keys(uow: UnitOfWork, sealer: Sealer) -> int:
    """Seal the HS256 keys kept in clear (migration 0011 moves them so, having no
    passphrase); how many. ``provisiond db upgrade`` runs it when device_key_passphrase is
    set."""
    if not sealer.encrypts:
        return 0
    async with uow:
        plain = await uow.profiles.plainly_kept_jwt_keys()
        for profile_id, value in plain:
            await uow.profiles.set_jwt_key_sealed(profile_id, sealer.seal(sealer.unseal(value)))
        await uow.commit()
    return len(plain)


async def authenticate_profile(uow: UnitOfWork, *, key: str, secret: str) -> Profile | None:
    """The enabled profile whose key and secret these are, or None.

    The secret's SHA-256 is compared in constant time, also when the key is unknown, so the
    answer's timing tells nothing about which part was wrong.
    """
    async with uow.read():
        found = await uow.profiles.find_by_key(key)
    return check_profile_secret(found, secret)


def check_profile_secret(found: tuple[Profile, str] | None, secret: str) -> Profile | None:
    """``found`` (a profile and its secret's stored hash, or None) if enabled and ``secret``
    is its secret, compared in constant time (also when nothing was found)."""
    profile, secret_hash = found if found else (None, _DUMMY_HASH)
    matches = tokens_equal(hash_profile_secret(secret), secret_hash)
    if profile is None or not matches or not profile.enabled:
        return None
    return profile
