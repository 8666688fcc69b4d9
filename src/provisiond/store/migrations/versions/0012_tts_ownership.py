"""The Things Stack: which end devices are provisiond's, the ones that wait for an operator,
LoRaWAN 1.1 NwkKeys.

``tts_devices`` gains the device's ``serial`` (filled in here: an event about an end device
names its device after the device is deleted), ``origin`` (created, adopted, legacy) and the
end device in the way of a device whose status is the new ``conflict``. Records from before are ``legacy``: their end
devices carry ``provisiond-serial`` but not yet the ``provisiond-device-id`` mark, which the
next registration (``provisiond lorawan sync``) adds. ``credentials`` gains ``nwk_key_sealed``.
A downgrade forgets conflicts (those devices were never registered) and NwkKeys.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-12 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tts_devices") as batch:
        batch.add_column(sa.Column("serial", sa.String(length=64), nullable=True))
        batch.add_column(
            sa.Column(
                "origin", sa.String(length=8), nullable=False, server_default=sa.text("'legacy'")
            )
        )
        batch.add_column(sa.Column("foreign_application_id", sa.String(length=36), nullable=True))
        batch.add_column(sa.Column("foreign_end_device_id", sa.String(length=64), nullable=True))
        batch.drop_constraint(op.f("ck_tts_devices_status"), type_="check")
        batch.create_check_constraint("status", "status IN ('registered', 'failed', 'conflict')")
        batch.create_check_constraint("origin", "origin IN ('created', 'adopted', 'legacy')")
    with op.batch_alter_table("tts_devices") as batch:
        batch.alter_column("origin", existing_type=sa.String(length=8), server_default=None)
    op.execute(
        "UPDATE tts_devices SET serial = (SELECT devices.serial FROM devices "
        "WHERE devices.id = tts_devices.device_id)"
    )
    with op.batch_alter_table("credentials") as batch:
        batch.add_column(sa.Column("nwk_key_sealed", sa.String(length=512), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("credentials") as batch:
        batch.drop_column("nwk_key_sealed")
    op.execute("DELETE FROM tts_devices WHERE status = 'conflict'")
    with op.batch_alter_table("tts_devices") as batch:
        batch.drop_constraint(op.f("ck_tts_devices_origin"), type_="check")
        batch.drop_constraint(op.f("ck_tts_devices_status"), type_="check")
        batch.create_check_constraint("status", "status IN ('registered', 'failed')")
        batch.drop_column("foreign_end_device_id")
        batch.drop_column("foreign_application_id")
        batch.drop_column("origin")
        batch.drop_column("serial")
