"""CRL publication: each CA's CRL for its distribution point (with an Issuing Distribution
Point), and the counters that say when a new CRL is due.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("certificate_authorities") as batch:
        batch.add_column(sa.Column("crl_dp_pem", sa.Text(), nullable=True))
        batch.add_column(
            sa.Column("crl_requested", sa.BigInteger(), server_default=sa.text("0"), nullable=False)
        )
        batch.add_column(
            sa.Column("crl_covers", sa.BigInteger(), server_default=sa.text("0"), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("certificate_authorities") as batch:
        batch.drop_column("crl_covers")
        batch.drop_column("crl_requested")
        batch.drop_column("crl_dp_pem")
