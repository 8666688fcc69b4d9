"""An index on tts_devices.status: the metrics count the failed and conflicting end devices at
each scrape without reading every registered one.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05 14:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(op.f("ix_tts_devices_status"), "tts_devices", ["status"])


def downgrade() -> None:
    op.drop_index(op.f("ix_tts_devices_status"), table_name="tts_devices")
