"""Indexes for the console at a million devices (issue 23): the audit log of a period is
read newest first by (at, id), which replaces the index on at alone; a webhook's delivery
log counts and lists by status from (webhook_id, status, id) instead of reading each of
its deliveries' rows; the index the deliverer finds due deliveries by, (status,
next_attempt_at), also holds webhook_id and attempts, so the integrations' status (and the
metrics) count the waiting and failed deliveries per webhook from it alone.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-05 18:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(op.f("ix_events_at_id"), "events", ["at", "id"])
    op.drop_index(op.f("ix_events_at"), table_name="events")
    op.create_index(
        op.f("ix_webhook_deliveries_webhook_id_status_id"),
        "webhook_deliveries",
        ["webhook_id", "status", "id"],
    )
    op.create_index(
        "ix_webhook_deliveries_due",
        "webhook_deliveries",
        ["status", "next_attempt_at", "webhook_id", "attempts"],
    )
    op.drop_index(
        op.f("ix_webhook_deliveries_status_next_attempt_at"), table_name="webhook_deliveries"
    )


def downgrade() -> None:
    op.create_index(
        op.f("ix_webhook_deliveries_status_next_attempt_at"),
        "webhook_deliveries",
        ["status", "next_attempt_at"],
    )
    op.drop_index("ix_webhook_deliveries_due", table_name="webhook_deliveries")
    op.drop_index(
        op.f("ix_webhook_deliveries_webhook_id_status_id"), table_name="webhook_deliveries"
    )
    op.create_index(op.f("ix_events_at"), "events", ["at"])
    op.drop_index(op.f("ix_events_at_id"), table_name="events")
