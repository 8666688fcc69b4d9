"""Scoped operator tokens: a role, a group subtree (NULL: operator-wide) and an expiry.

Tokens made before this revision were superuser keys: they become operator-wide admins,
which is what they could do. A group with unrevoked tokens scoped to it cannot be deleted
(RESTRICT; services/directory.py says so first and deletes the group's revoked tokens with
it). A downgrade cannot express a scope, so it revokes every token that is not an
operator-wide admin without expiry rather than widen it.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 10:00:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import provisiond.store.types

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(
            sa.Column(
                "role", sa.String(length=16), nullable=False, server_default=sa.text("'admin'")
            )
        )
        batch.add_column(sa.Column("group_id", sa.Uuid(), nullable=True))
        batch.add_column(
            sa.Column(
                "expires_at", provisiond.store.types.UtcDateTime(timezone=True), nullable=True
            )
        )
        batch.create_foreign_key(
            batch.f("fk_api_tokens_group_id_groups"),
            "groups",
            ["group_id"],
            ["id"],
            ondelete="RESTRICT",
        )
        batch.create_check_constraint("role", "role IN ('admin', 'installer', 'viewer')")
        batch.create_index(batch.f("ix_api_tokens_group_id"), ["group_id"])
    with op.batch_alter_table("api_tokens") as batch:
        batch.alter_column("role", existing_type=sa.String(length=16), server_default=None)


def downgrade() -> None:
    tokens = sa.table(
        "api_tokens",
        sa.column("role", sa.String()),
        sa.column("group_id", sa.Uuid()),
        sa.column("expires_at", provisiond.store.types.UtcDateTime()),
        sa.column("revoked_at", provisiond.store.types.UtcDateTime()),
    )
    op.get_bind().execute(
        tokens.update()
        .where(
            tokens.c.revoked_at.is_(None),
            sa.or_(
                tokens.c.role != "admin",
                tokens.c.group_id.is_not(None),
                tokens.c.expires_at.is_not(None),
            ),
        )
        .values(revoked_at=datetime.now(UTC))
    )
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_index(batch.f("ix_api_tokens_group_id"))
        batch.drop_constraint(batch.f("ck_api_tokens_role"), type_="check")
        batch.drop_constraint(batch.f("fk_api_tokens_group_id_groups"), type_="foreignkey")
        batch.drop_column("expires_at")
        batch.drop_column("group_id")
        batch.drop_column("role")
