"""Event scope: every event keeps the path of the group it belongs to (who may read it,
which webhooks receive it), indexes for reading the audit log by serial, actor and subtree
(the subtree index by path replaces the one by group id), and operator-wide webhooks (no
group).

Events written before this revision get the path of their group if it still exists; those
without a group (claim proofs, unclaimed stock) stay readable by operator-wide callers only.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-12 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("group_path", sa.String(length=1040), nullable=True))
    op.execute(
        "UPDATE events SET group_path = (SELECT g.path FROM groups g"
        " WHERE g.id = events.group_id) WHERE group_id IS NOT NULL"
    )
    op.create_index("ix_events_group_path_id", "events", ["group_path", "id"])
    op.drop_index("ix_events_group_id_id", table_name="events")  # subtrees go by path now
    op.create_index("ix_events_serial_id", "events", ["serial", "id"])
    op.create_index("ix_events_actor_id", "events", ["actor", "id"])
    with op.batch_alter_table("webhooks") as batch:
        batch.alter_column("group_id", existing_type=sa.Uuid(), nullable=True)


def downgrade() -> None:
    # operator-wide webhooks have no group to go back to
    op.execute(
        "DELETE FROM webhook_deliveries WHERE webhook_id IN"
        " (SELECT id FROM webhooks WHERE group_id IS NULL)"
    )
    op.execute("DELETE FROM webhooks WHERE group_id IS NULL")
    with op.batch_alter_table("webhooks") as batch:
        batch.alter_column("group_id", existing_type=sa.Uuid(), nullable=False)
    op.drop_index("ix_events_actor_id", table_name="events")
    op.drop_index("ix_events_serial_id", table_name="events")
    op.create_index("ix_events_group_id_id", "events", ["group_id", "id"])
    op.drop_index("ix_events_group_path_id", table_name="events")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("group_path")
