"""One-time user-node association tokens (claiming through Wi-Fi provisioning).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import provisiond.store.types

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_Utc = provisiond.store.types.UtcDateTime


def upgrade() -> None:
    op.create_table(
        "association_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", _Utc(timezone=True), nullable=False),
        sa.Column("expires_at", _Utc(timezone=True), nullable=False),
        sa.Column("used_at", _Utc(timezone=True), nullable=True),
        sa.Column("device_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_association_tokens_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_association_tokens")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_association_tokens_secret_hash")),
    )
    op.create_index(op.f("ix_association_tokens_user_id"), "association_tokens", ["user_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_association_tokens_user_id"), table_name="association_tokens")
    op.drop_table("association_tokens")
