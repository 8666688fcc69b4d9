"""aws_pending_certificates: certificates AWS IoT fleet provisioning made, waiting for
RegisterThing with their ownership token (transports/aws). A downgrade forgets them (their
tokens stop working; the certificates were never registered).

Revision ID: 0023
Revises: 0021
Create Date: 2026-12-05 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from provisiond.store.types import UtcDateTime

revision: str = "0023"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "aws_pending_certificates",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("certificate_id", sa.String(64), nullable=False),
        sa.Column("ca_id", sa.Uuid(), nullable=False),
        sa.Column("serial_number", sa.String(40), nullable=False),
        sa.Column("certificate_pem", sa.String(8192), nullable=False),
        sa.Column("not_before", UtcDateTime(timezone=True), nullable=False),
        sa.Column("not_after", UtcDateTime(timezone=True), nullable=False),
        sa.Column("claim", sa.String(64), nullable=False),
        sa.Column("expires_at", UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_aws_pending_certificates")),
        sa.UniqueConstraint(
            "certificate_id", name=op.f("uq_aws_pending_certificates_certificate_id")
        ),
    )
    op.create_index(
        op.f("ix_aws_pending_certificates_expires_at"),
        "aws_pending_certificates",
        ["expires_at"],
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_aws_pending_certificates_expires_at"), table_name="aws_pending_certificates"
    )
    op.drop_table("aws_pending_certificates")
