"""Provisioning profiles: how devices with one generic firmware register themselves.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 09:56:19.109116
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import provisiond.store.types

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "provision_profiles",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("strategy", sa.String(length=16), nullable=False),
        sa.Column("group_id", sa.Uuid(), nullable=True),
        sa.Column("model_id", sa.Uuid(), nullable=True),
        sa.Column("credential_types", sa.String(length=64), nullable=False),
        sa.Column("rate_per_minute", sa.Integer(), nullable=False),
        sa.Column("source_rate_per_minute", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", provisiond.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", provisiond.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column(
            "secret_rotated_at", provisiond.store.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.CheckConstraint(
            "strategy IN ('allow-create', 'pre-provisioned')",
            name=op.f("ck_provision_profiles_strategy"),
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["groups.id"],
            name=op.f("fk_provision_profiles_group_id_groups"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["device_models.id"],
            name=op.f("fk_provision_profiles_model_id_device_models"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provision_profiles")),
        sa.UniqueConstraint("key", name=op.f("uq_provision_profiles_key")),
        sa.UniqueConstraint("name", name=op.f("uq_provision_profiles_name")),
    )


def downgrade() -> None:
    op.drop_table("provision_profiles")
