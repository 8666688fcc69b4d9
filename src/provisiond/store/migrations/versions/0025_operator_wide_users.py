"""users.group_id nullable: NULL is an operator-wide admin, who signs in to the console and
sees every group and the devices of none (until now only the command line and operator
tokens could). Only an admin can be one (check ``operator_wide_admin``). A downgrade refuses
while operator-wide users exist: move them to a group or delete them first.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-05 18:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _rebuilding_users() -> None:
    """SQLite rebuilds the table (copy, drop, rename). The overview's summary triggers
    (0020) name ``users`` in their bodies; SQLite's checked rename would refuse them while
    the old table is gone, so the rename is the legacy one: the names stay as written and
    point at the new table once it is renamed."""
    if op.get_bind().dialect.name == "sqlite":
        op.execute("PRAGMA legacy_alter_table=ON")


def _rebuilt() -> None:
    """The rebuild dropped the triggers on ``users``: 0020's, made again as it made them."""
    if op.get_bind().dialect.name == "sqlite":
        op.execute("PRAGMA legacy_alter_table=OFF")
        op.execute(
            "CREATE TRIGGER users_claims_first BEFORE DELETE ON users"
            " BEGIN DELETE FROM claims WHERE user_id = OLD.id; END"
        )


def upgrade() -> None:
    _rebuilding_users()
    with op.batch_alter_table("users") as batch:
        batch.alter_column("group_id", existing_type=sa.Uuid(), nullable=True)
        batch.create_check_constraint(
            op.f("ck_users_operator_wide_admin"), "group_id IS NOT NULL OR role = 'admin'"
        )
    _rebuilt()


def downgrade() -> None:
    count = op.get_bind().execute(sa.text("SELECT count(*) FROM users WHERE group_id IS NULL"))
    if count.scalar():
        raise RuntimeError(
            "operator-wide users exist (users with no group): move them to a group "
            "(provisiond users move EMAIL --group PATH) or delete them before downgrading"
        )
    _rebuilding_users()
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint(op.f("ck_users_operator_wide_admin"), type_="check")
        batch.alter_column("group_id", existing_type=sa.Uuid(), nullable=False)
    _rebuilt()
