"""Certificate authorities that sign device CSRs; a profile's CA and certificate lifetime.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 10:31:01.414082
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import provisiond.store.types

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "certificate_authorities",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("certificate_pem", sa.String(length=16384), nullable=False),
        sa.Column("private_key_pem", sa.String(length=16384), nullable=False),
        sa.Column("key_encrypted", sa.Boolean(), nullable=False),
        sa.Column("created_at", provisiond.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certificate_authorities")),
        sa.UniqueConstraint("name", name=op.f("uq_certificate_authorities_name")),
    )
    with op.batch_alter_table("provision_profiles", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ca_id", sa.Uuid(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "certificate_days", sa.Integer(), server_default=sa.text("(365)"), nullable=False
            )
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_provision_profiles_ca_id_certificate_authorities"),
            "certificate_authorities",
            ["ca_id"],
            ["id"],
            ondelete="RESTRICT",
        )


def downgrade() -> None:
    with op.batch_alter_table("provision_profiles", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_provision_profiles_ca_id_certificate_authorities"), type_="foreignkey"
        )
        batch_op.drop_column("certificate_days")
        batch_op.drop_column("ca_id")

    op.drop_table("certificate_authorities")
