"""Device self-provisioning: a device's profile and provisioning time; credentials' first use
and MQTT client id.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 10:08:56.446527
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import provisiond.store.types

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("credentials", schema=None) as batch_op:
        batch_op.add_column(sa.Column("client_id", sa.String(length=256), nullable=True))
        batch_op.add_column(
            sa.Column(
                "first_used_at", provisiond.store.types.UtcDateTime(timezone=True), nullable=True
            )
        )

    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("profile_id", sa.Uuid(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "provisioned_at", provisiond.store.types.UtcDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(sa.Column("provision_credential_id", sa.Uuid(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_devices_profile_id_provision_profiles"),
            "provision_profiles",
            ["profile_id"],
            ["id"],
            ondelete="RESTRICT",
        )


def downgrade() -> None:
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_devices_profile_id_provision_profiles"), type_="foreignkey"
        )
        batch_op.drop_column("provision_credential_id")
        batch_op.drop_column("provisioned_at")
        batch_op.drop_column("profile_id")

    with op.batch_alter_table("credentials", schema=None) as batch_op:
        batch_op.drop_column("first_used_at")
        batch_op.drop_column("client_id")
