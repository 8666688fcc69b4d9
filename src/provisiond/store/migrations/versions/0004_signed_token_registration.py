"""Signed-token registration: a profile's ES256 public key, and the registration tokens used.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 10:24:32.310247
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import provisiond.store.types

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "registration_tokens",
        sa.Column("profile_id", sa.Uuid(), nullable=False),
        sa.Column("jti", sa.String(length=128), nullable=False),
        sa.Column("expires_at", provisiond.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("used_at", provisiond.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("device_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["provision_profiles.id"],
            name=op.f("fk_registration_tokens_profile_id_provision_profiles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("profile_id", "jti", name=op.f("pk_registration_tokens")),
    )
    with op.batch_alter_table("registration_tokens", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_registration_tokens_expires_at"), ["expires_at"], unique=False
        )

    with op.batch_alter_table("provision_profiles", schema=None) as batch_op:
        batch_op.add_column(sa.Column("jwt_public_key", sa.String(length=1024), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("provision_profiles", schema=None) as batch_op:
        batch_op.drop_column("jwt_public_key")

    with op.batch_alter_table("registration_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_registration_tokens_expires_at"))

    op.drop_table("registration_tokens")
