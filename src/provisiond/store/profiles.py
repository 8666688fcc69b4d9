"""Queries for provisioning profiles."""

from __future__ import annotations

import builtins
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import aliased

from provisiond.domain.claims import ClaimProof, ReleasePolicy
from provisiond.domain.credentials import CredentialType
from provisiond.domain.profiles import Profile, ReprovisionPolicy, Strategy
from provisiond.domain.tts import NetworkSettings
from provisiond.store.directory import keyset, subtree_clause
from provisiond.store.schema import (
    certificate_authorities,
    device_models,
    groups,
    provision_profiles,
    registration_tokens,
)

_p = provision_profiles
_device_ca = aliased(certificate_authorities, name="device_ca")


def _query() -> Any:
    return (
        select(
            _p,
            groups.c.path.label("group_path"),
            device_models.c.name.label("model"),
            certificate_authorities.c.name.label("ca_name"),
            _device_ca.c.name.label("device_ca_name"),
        )
        .select_from(_p)
        .outerjoin(groups, groups.c.id == _p.c.group_id)
        .outerjoin(device_models, device_models.c.id == _p.c.model_id)
        .outerjoin(certificate_authorities, certificate_authorities.c.id == _p.c.ca_id)
        .outerjoin(_device_ca, _device_ca.c.id == _p.c.device_ca_id)
    )


def profile_from_row(row: Any) -> Profile:
    return Profile(
        id=row.id,
        name=row.name,
        key=row.key,
        strategy=Strategy(row.strategy),
        group_id=row.group_id,
        group_path=row.group_path,
        model_id=row.model_id,
        model=row.model,
        credential_types=tuple(CredentialType(t) for t in row.credential_types.split(",")),
        rate_per_minute=row.rate_per_minute,
        source_rate_per_minute=row.source_rate_per_minute,
        enabled=row.enabled,
        created_at=row.created_at,
        updated_at=row.updated_at,
        secret_rotated_at=row.secret_rotated_at,
        jwt_public_key=row.jwt_public_key,
        ca_id=row.ca_id,
        ca_name=row.ca_name,
        certificate_days=row.certificate_days,
        claim_proof=ClaimProof(row.claim_proof) if row.claim_proof else None,
        claim_window_seconds=row.claim_window_seconds,
        release_policy=ReleasePolicy(row.release_policy),
        network=NetworkSettings.from_json(getattr(row, "lorawan", None)),
        reprovision=ReprovisionPolicy(row.reprovision_policy),
        device_secret_min_length=row.device_secret_min_length,
        device_ca_id=row.device_ca_id,
        device_ca_name=row.device_ca_name,
    )


class ProfileRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def find_by_name(self, name: str) -> Profile | None:
        row = (await self._conn.execute(_query().where(_p.c.name == name))).first()
        return profile_from_row(row) if row else None

    async def find_by_key(self, key: str) -> tuple[Profile, str] | None:
        """The profile with this provision key, and the stored hash of its secret."""
        row = (await self._conn.execute(_query().where(_p.c.key == key))).first()
        return (profile_from_row(row), row.secret_hash) if row else None

    async def jwt_key_sealed(self, profile_id: uuid.UUID) -> str | None:
        """The sealed HS256 key of signed-token registration."""
        return (
            await self._conn.execute(select(_p.c.jwt_key_sealed).where(_p.c.id == profile_id))
        ).scalar()

    async def plainly_kept_jwt_keys(self) -> list[tuple[uuid.UUID, str]]:
        """Profiles whose HS256 key is not sealed yet (a migrated database), with it."""
        rows = await self._conn.execute(
            select(_p.c.id, _p.c.jwt_key_sealed).where(_p.c.jwt_key_sealed.like("plain:%"))
        )
        return [(r.id, r.jwt_key_sealed) for r in rows]

    async def set_jwt_key_sealed(self, profile_id: uuid.UUID, sealed: str) -> None:
        await self._conn.execute(
            update(_p).where(_p.c.id == profile_id).values(jwt_key_sealed=sealed)
        )

    async def name_or_key_taken(self, name: str, key: str) -> str | None:
        """Which of ``name`` and ``key`` another profile has ("name", "key"), if any."""
        rows = await self._conn.execute(
            select(_p.c.name, _p.c.key).where((_p.c.name == name) | (_p.c.key == key))
        )
        for row in rows:
            return "name" if row.name == name else "key"
        return None

    async def list(
        self, under: str | None = None, *, after: str | None = None, limit: int | None = None
    ) -> list[Profile]:
        """Profiles in name order: all, or those of groups within ``under`` (never the
        ones without a group); after the name ``after``; ``limit`` of them."""
        query = keyset(_query(), _p.c.name, after, limit)
        if under is not None:
            query = query.where(subtree_clause(groups.c.path, under))
        return [profile_from_row(r) for r in await self._conn.execute(query)]

    async def add(self, profile: Profile, secret_hash: str, jwt_key_sealed: str) -> None:
        await self._conn.execute(
            insert(_p).values(
                id=profile.id,
                name=profile.name,
                key=profile.key,
                secret_hash=secret_hash,
                jwt_key_sealed=jwt_key_sealed,
                reprovision_policy=profile.reprovision.value,
                device_secret_min_length=profile.device_secret_min_length,
                device_ca_id=profile.device_ca_id,
                strategy=profile.strategy.value,
                group_id=profile.group_id,
                model_id=profile.model_id,
                credential_types=",".join(t.value for t in profile.credential_types),
                rate_per_minute=profile.rate_per_minute,
                source_rate_per_minute=profile.source_rate_per_minute,
                enabled=profile.enabled,
                created_at=profile.created_at,
                updated_at=profile.updated_at,
                secret_rotated_at=profile.secret_rotated_at,
                jwt_public_key=profile.jwt_public_key,
                ca_id=profile.ca_id,
                certificate_days=profile.certificate_days,
                claim_proof=profile.claim_proof.value if profile.claim_proof else None,
                claim_window_seconds=profile.claim_window_seconds,
                release_policy=profile.release_policy.value,
                lorawan=None if profile.network.empty else profile.network.to_json(),
            )
        )

    async def set_enabled(self, profile_id: uuid.UUID, enabled: bool, now: datetime) -> None:
        await self._conn.execute(
            update(_p).where(_p.c.id == profile_id).values(enabled=enabled, updated_at=now)
        )

    async def set_jwt_public_key(
        self, profile_id: uuid.UUID, pem: str | None, now: datetime
    ) -> None:
        await self._conn.execute(
            update(_p).where(_p.c.id == profile_id).values(jwt_public_key=pem, updated_at=now)
        )

    async def use_registration_token(
        self, profile_id: uuid.UUID, jti: str, expires_at: datetime, now: datetime
    ) -> None:
        """Record a registration token's use (a second use violates the primary key); forget
        this profile's expired ones."""
        await self._conn.execute(
            delete(registration_tokens).where(
                registration_tokens.c.profile_id == profile_id,
                registration_tokens.c.expires_at < now,
            )
        )
        await self._conn.execute(
            insert(registration_tokens).values(
                profile_id=profile_id, jti=jti, expires_at=expires_at, used_at=now
            )
        )

    async def set_secret(
        self,
        profile_id: uuid.UUID,
        secret_hash: str,
        jwt_key_sealed: str,
        now: datetime,
        *,
        replacing: datetime | None = None,
    ) -> bool:
        """Store a new secret; with ``replacing``, only over the secret set then (False:
        another replaced it first, nothing written)."""
        query = update(_p).where(_p.c.id == profile_id)
        if replacing is not None:
            query = query.where(_p.c.secret_rotated_at == replacing)
        result = await self._conn.execute(
            query.values(
                secret_hash=secret_hash,
                jwt_key_sealed=jwt_key_sealed,
                secret_rotated_at=now,
                updated_at=now,
            )
        )
        return bool(result.rowcount)

    async def set_rules(self, profile: Profile, now: datetime) -> None:
        """Store what services.profiles.update_profile changes: the profile's reprovisioning
        policy, device-secret length, device CA, signing CA and certificates' lifetime, claim
        proof, claim window and release policy."""
        await self._conn.execute(
            update(_p)
            .where(_p.c.id == profile.id)
            .values(
                reprovision_policy=profile.reprovision.value,
                device_secret_min_length=profile.device_secret_min_length,
                device_ca_id=profile.device_ca_id,
                ca_id=profile.ca_id,
                certificate_days=profile.certificate_days,
                claim_proof=profile.claim_proof.value if profile.claim_proof else None,
                claim_window_seconds=profile.claim_window_seconds,
                release_policy=profile.release_policy.value,
                updated_at=now,
            )
        )


@dataclass(frozen=True, slots=True)
class StoredCa:
    id: uuid.UUID
    name: str
    certificate_pem: str
    private_key_pem: str | None  # None: a manufacturer's CA, known by its certificate only
    key_encrypted: bool
    created_at: datetime


# A CA's identity and key, not its CRL (which may be megabytes: store/certificates.py).
_CA = select(
    certificate_authorities.c.id,
    certificate_authorities.c.name,
    certificate_authorities.c.certificate_pem,
    certificate_authorities.c.private_key_pem,
    certificate_authorities.c.key_encrypted,
    certificate_authorities.c.created_at,
)


class CaRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def find_by_name(self, name: str) -> StoredCa | None:
        row = (await self._conn.execute(_CA.where(certificate_authorities.c.name == name))).first()
        return ca_from_row(row) if row else None

    async def find_by_id(self, ca_id: uuid.UUID) -> StoredCa | None:
        row = (await self._conn.execute(_CA.where(certificate_authorities.c.id == ca_id))).first()
        return ca_from_row(row) if row else None

    async def list(self) -> list[StoredCa]:
        rows = await self._conn.execute(_CA.order_by(certificate_authorities.c.name))
        return [ca_from_row(r) for r in rows]

    async def device_ca_pems(self) -> builtins.list[str]:
        """The certificates (PEM) of the CAs that are an enabled profile's device CA."""
        rows = await self._conn.execute(
            select(certificate_authorities.c.certificate_pem)
            .join(_p, _p.c.device_ca_id == certificate_authorities.c.id)
            .where(_p.c.enabled.is_(True))
            .distinct()
        )
        return [r[0] for r in rows]

    async def add(self, ca: StoredCa) -> None:
        await self._conn.execute(
            insert(certificate_authorities).values(
                id=ca.id,
                name=ca.name,
                certificate_pem=ca.certificate_pem,
                private_key_pem=ca.private_key_pem,
                key_encrypted=ca.key_encrypted,
                created_at=ca.created_at,
            )
        )


def ca_from_row(row: Any) -> StoredCa:
    return StoredCa(
        row.id,
        row.name,
        row.certificate_pem,
        row.private_key_pem,
        row.key_encrypted,
        row.created_at,
    )
