"""Sign-in lock-out per e-mail and client address (the account's own count slows it down).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import provisiond.store.types

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_Utc = provisiond.store.types.UtcDateTime


def upgrade() -> None:
    op.create_table(
        "sign_in_addresses",
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", _Utc(timezone=True), nullable=True),
        sa.Column("signed_in_at", _Utc(timezone=True), nullable=True),
        sa.Column("updated_at", _Utc(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("email", "address", name=op.f("pk_sign_in_addresses")),
    )
    op.create_index(op.f("ix_sign_in_addresses_updated_at"), "sign_in_addresses", ["updated_at"])
    # the account's count now means "since the last sign-in" and no longer locks it
    op.execute("UPDATE users SET failed_logins = 0, locked_until = NULL")


def downgrade() -> None:
    op.drop_index(op.f("ix_sign_in_addresses_updated_at"), table_name="sign_in_addresses")
    op.drop_table("sign_in_addresses")
