"""Indexes for the console's device list (issue 23): its orders by name and by registration
time, and its profile filter, read one page of a million devices from an index instead of
sorting or scanning them.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-05 16:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    ("ix_devices_name_serial", ["name", "serial"]),
    ("ix_devices_created_at_serial", ["created_at", "serial"]),
    ("ix_devices_profile_id_serial", ["profile_id", "serial"]),
)


def upgrade() -> None:
    for name, columns in INDEXES:
        op.create_index(op.f(name), "devices", columns)


def downgrade() -> None:
    for name, _columns in INDEXES:
        op.drop_index(op.f(name), table_name="devices")
