"""The one JSON shape of a domain object that more than one adapter shows.

The admin API (``DeviceRead``, ``ProfileRead``, ``UserRead``, ``TokenRead``) and the
command line (``--json``) render a device, a profile, a user and a token from the same
dicts. Ids and times stay Python values (``uuid.UUID``, ``datetime``): each adapter's
encoder writes them (pydantic for the API, orjson for the CLI), so the fields and what they
hold are defined once and neither output changes.

A group is not here: the API's ``GroupRead`` always has ``devices`` (null when not
counted) before ``created_at``, the CLI's ``--json`` only when counted, last.
"""

from __future__ import annotations

from typing import Any

from provisiond.domain.device import Device
from provisiond.domain.profiles import Profile
from provisiond.domain.tokens import ApiToken
from provisiond.domain.users import User


def device_fields(d: Device) -> dict[str, Any]:
    """A device as the API's device responses and the CLI's ``--json`` show it."""
    return {
        "id": d.id,
        "serial": d.serial,
        "name": d.name,
        "model": d.model,
        "state": d.state.value,
        "group": d.group_path,
        "owner_kind": d.owner_kind,
        "owner": d.owner_email if d.owner_user_id else d.owner_group,
        "tags": d.tags,
        "created_at": d.created_at,
        "updated_at": d.updated_at,
        "claimed_at": d.claimed_at,
    }


def profile_fields(p: Profile) -> dict[str, Any]:
    """A profile (never its secret) as the API's profile responses show it. The CLI's
    ``--json`` names ``claim_window`` ``claim_window_seconds`` (cli.output.profile_dict)."""
    return {
        "id": p.id,
        "name": p.name,
        "key": p.key,
        "strategy": p.strategy.value,
        "group": p.group_path,
        "model": p.model,
        "credentials": [t.value for t in p.credential_types],
        "rate_per_minute": p.rate_per_minute,
        "source_rate_per_minute": p.source_rate_per_minute,
        "enabled": p.enabled,
        "created_at": p.created_at,
        "updated_at": p.updated_at,
        "secret_rotated_at": p.secret_rotated_at,
        "registration_algorithm": "ES256" if p.jwt_public_key else "HS256",
        "ca": p.ca_name,
        "certificate_days": p.certificate_days,
        "claim_proof": p.claim_proof.value if p.claim_proof else None,
        "claim_window": p.claim_window_seconds,
        "release_policy": p.release_policy.value,
        "lorawan": p.network.to_json(),
        "reprovision": p.reprovision.value,
        "device_secret_min_length": p.device_secret_min_length,
        "device_ca": p.device_ca_name,
    }


def user_fields(u: User) -> dict[str, Any]:
    """A user as the API's user responses and the CLI's ``--json`` show it."""
    return {
        "id": u.id,
        "email": u.email,
        "role": u.role.value,
        "group": u.group_path,
        "created_at": u.created_at,
        "disabled_at": u.disabled_at,
    }


def token_fields(t: ApiToken) -> dict[str, Any]:
    """An operator token (never its secret) as the API's token responses and the CLI's
    ``--json`` show it."""
    return {
        "id": t.id,
        "name": t.name,
        "role": t.role.value,
        "group": t.group_path,
        "expires_at": t.expires_at,
        "created_at": t.created_at,
        "last_used_at": t.last_used_at,
        "revoked_at": t.revoked_at,
    }
