"""Queries for invitation and password-reset links (domain/invitations.py)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from provisiond.domain.invitations import Link, LinkPurpose
from provisiond.domain.users import Role
from provisiond.store.directory import subtree_clause
from provisiond.store.schema import groups, invitations


def _link(row: Any) -> Link:
    return Link(
        row.id,
        LinkPurpose(row.purpose),
        row.email,
        Role(row.role) if row.role else None,
        row.group_id,
        row.group_path,
        row.user_id,
        row.created_at,
        row.expires_at,
        row.created_by,
        row.used_at,
        row.revoked_at,
    )


def _query() -> Any:
    return select(invitations, groups.c.path.label("group_path")).select_from(
        invitations.outerjoin(groups, groups.c.id == invitations.c.group_id)
    )


class InvitationRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, link: Link, token_hash: str) -> None:
        await self._conn.execute(
            insert(invitations).values(
                id=link.id,
                token_hash=token_hash,
                purpose=link.purpose.value,
                email=link.email,
                role=link.role.value if link.role else None,
                group_id=link.group_id,
                user_id=link.user_id,
                created_at=link.created_at,
                expires_at=link.expires_at,
                created_by=link.created_by,
            )
        )

    async def find_by_hash(self, token_hash: str) -> Link | None:
        row = (
            await self._conn.execute(_query().where(invitations.c.token_hash == token_hash))
        ).first()
        return _link(row) if row else None

    async def find_by_id(self, link_id: uuid.UUID) -> Link | None:
        row = (await self._conn.execute(_query().where(invitations.c.id == link_id))).first()
        return _link(row) if row else None

    async def revoke(self, link_id: uuid.UUID, now: datetime) -> bool:
        """Revoke an unused link; False when it was used or revoked already."""
        result = await self._conn.execute(
            update(invitations)
            .where(
                invitations.c.id == link_id,
                invitations.c.used_at.is_(None),
                invitations.c.revoked_at.is_(None),
            )
            .values(revoked_at=now)
        )
        return int(result.rowcount or 0) == 1

    async def use(self, link_id: uuid.UUID, now: datetime) -> bool:
        """Mark the link used, if it still may be: True for exactly one caller however many
        use it at once (a guarded update; PostgreSQL re-checks the guard after a concurrent
        writer commits, SQLite has one writer)."""
        result = await self._conn.execute(
            update(invitations)
            .where(
                invitations.c.id == link_id,
                invitations.c.used_at.is_(None),
                invitations.c.revoked_at.is_(None),
                invitations.c.expires_at > now,
            )
            .values(used_at=now)
        )
        return int(result.rowcount or 0) == 1

    async def revoke_pending(self, email: str, purpose: LinkPurpose, now: datetime) -> int:
        """Revoke the unused links of this purpose for this e-mail (a new one replaces them)."""
        result = await self._conn.execute(
            update(invitations)
            .where(
                invitations.c.email == email,
                invitations.c.purpose == purpose.value,
                invitations.c.used_at.is_(None),
                invitations.c.revoked_at.is_(None),
            )
            .values(revoked_at=now)
        )
        return int(result.rowcount or 0)

    async def pending(self, under: str | None, now: datetime, limit: int = 200) -> list[Link]:
        """The usable invitations into the subtree ``under`` (None: all), newest first."""
        query = (
            _query()
            .where(
                invitations.c.purpose == LinkPurpose.INVITATION.value,
                invitations.c.used_at.is_(None),
                invitations.c.revoked_at.is_(None),
                invitations.c.expires_at > now,
            )
            .order_by(invitations.c.created_at.desc(), invitations.c.email)
            .limit(limit)
        )
        if under is not None:
            query = query.where(subtree_clause(groups.c.path, under))
        return [_link(r) for r in await self._conn.execute(query)]
