"""devices.owner_group_id: the group that owns a device claimed for "my group" (the claimer's
group), apart from the site it sits in (group_id). NULL, as every device before, keeps the
old meaning: the group it sits in owns it. A downgrade forgets the owning group (the site
owns those devices again).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("owner_group_id", sa.Uuid(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_devices_owner_group_id_groups"),
            "groups",
            ["owner_group_id"],
            ["id"],
            ondelete="RESTRICT",
        )


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.drop_constraint(op.f("fk_devices_owner_group_id_groups"), type_="foreignkey")
        batch.drop_column("owner_group_id")
