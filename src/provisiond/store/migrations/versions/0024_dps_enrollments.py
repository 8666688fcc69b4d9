"""dps_enrollments: Azure DPS enrollment groups (a profile's symmetric group key, or X.509
attestation by its device CA) and individual enrollments (a registered device's own key),
keys sealed, and an optional custom-allocation webhook. A downgrade drops them (devices and profiles stay).

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-05 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from provisiond.store.types import UtcDateTime

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dps_enrollments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("profile_id", sa.Uuid(), nullable=False),
        sa.Column("device_id", sa.Uuid(), nullable=True),
        sa.Column("attestation", sa.String(16), nullable=False),
        sa.Column("key_sealed", sa.String(1024), nullable=True),
        sa.Column("assigned_hub", sa.String(255), nullable=False),
        sa.Column("allocation_webhook", sa.String(2048), nullable=True),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "attestation IN ('symmetric-key', 'x509')", name=op.f("ck_dps_enrollments_attestation")
        ),
        sa.CheckConstraint(
            "attestation = 'x509' OR key_sealed IS NOT NULL", name=op.f("ck_dps_enrollments_key")
        ),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["provision_profiles.id"],
            name=op.f("fk_dps_enrollments_profile_id_provision_profiles"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_dps_enrollments_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dps_enrollments")),
    )
    op.create_index(
        op.f("ix_dps_enrollments_device_id"), "dps_enrollments", ["device_id"], unique=True
    )
    op.create_index(
        "ix_dps_enrollments_group",
        "dps_enrollments",
        ["profile_id"],
        unique=True,
        sqlite_where=sa.text("device_id IS NULL"),
        postgresql_where=sa.text("device_id IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_dps_enrollments_group", table_name="dps_enrollments")
    op.drop_index(op.f("ix_dps_enrollments_device_id"), table_name="dps_enrollments")
    op.drop_table("dps_enrollments")
