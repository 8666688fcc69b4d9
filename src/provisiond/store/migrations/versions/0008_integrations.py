"""Integrations: the outbox (filled by a trigger on events), pending work, broker accounts,
leases, webhooks and their deliveries, The Things Stack end devices, profiles' LoRaWAN
network settings.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import provisiond.store.types

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_Utc = provisiond.store.types.UtcDateTime
_EventId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_Json = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")
# The event types the outbox receives (store/schema.py OUTBOX_EVENT_TYPES at this revision).
_TYPES = (
    "device.registered",
    "devices.imported",
    "device.provisioned",
    "device.deleted",
    "device.claimed",
    "device.released",
    "credentials.issued",
    "credentials.revoked",
    "claim.started",
    "claim.proven",
)
_IN = ", ".join(f"'{t}'" for t in _TYPES)


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", _EventId, autoincrement=True, nullable=False),
        sa.Column("event_id", _EventId, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    op.create_table(
        "pending_work",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("device_id", sa.Uuid(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", _Utc(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("kind", "device_id", name=op.f("pk_pending_work")),
    )
    op.create_table(
        "broker_accounts",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.Uuid(), nullable=False),
        sa.Column("credential_id", sa.Uuid(), nullable=False),
        sa.Column("username_sealed", sa.String(length=512), nullable=False),
        sa.Column("created_at", _Utc(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_broker_accounts")),
    )
    op.create_index(op.f("ix_broker_accounts_device_id"), "broker_accounts", ["device_id"])
    op.create_table(
        "leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=False),
        sa.Column("expires_at", _Utc(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_leases")),
    )
    op.create_table(
        "webhooks",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("group_id", sa.Uuid(), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("secret_sealed", sa.String(length=512), nullable=False),
        sa.Column("event_types", _Json, nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("disabled_reason", sa.String(length=500), nullable=True),
        sa.Column(
            "consecutive_failures", sa.Integer(), server_default=sa.text("0"), nullable=False
        ),
        sa.Column("created_at", _Utc(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["groups.id"],
            name=op.f("fk_webhooks_group_id_groups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhooks")),
    )
    op.create_index(op.f("ix_webhooks_group_id"), "webhooks", ["group_id"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", _EventId, autoincrement=True, nullable=False),
        sa.Column("webhook_id", sa.Uuid(), nullable=False),
        sa.Column("event_id", _EventId, nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("body", _Json, nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", _Utc(timezone=True), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("created_at", _Utc(timezone=True), nullable=False),
        sa.Column("finished_at", _Utc(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'failed')",
            name=op.f("ck_webhook_deliveries_status"),
        ),
        sa.ForeignKeyConstraint(
            ["webhook_id"],
            ["webhooks.id"],
            name=op.f("fk_webhook_deliveries_webhook_id_webhooks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
    )
    op.create_index(
        op.f("ix_webhook_deliveries_status_next_attempt_at"),
        "webhook_deliveries",
        ["status", "next_attempt_at"],
    )
    op.create_index(
        op.f("ix_webhook_deliveries_webhook_id_id"), "webhook_deliveries", ["webhook_id", "id"]
    )
    op.create_table(
        "tts_devices",
        sa.Column("device_id", sa.Uuid(), nullable=False),
        sa.Column("application_id", sa.String(length=36), nullable=False),
        sa.Column("end_device_id", sa.String(length=64), nullable=False),
        sa.Column("dev_eui", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("updated_at", _Utc(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('registered', 'failed')", name=op.f("ck_tts_devices_status")
        ),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_tts_devices")),
    )
    with op.batch_alter_table("provision_profiles", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lorawan", _Json, nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION provisiond_outbox() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN INSERT INTO outbox (event_id) VALUES (NEW.id); RETURN NULL; END $$"
        )
        op.execute(
            f"CREATE TRIGGER events_outbox AFTER INSERT ON events FOR EACH ROW "
            f"WHEN (NEW.type IN ({_IN})) EXECUTE FUNCTION provisiond_outbox()"
        )
    else:
        op.execute(
            f"CREATE TRIGGER events_outbox AFTER INSERT ON events "  # noqa: S608
            f"WHEN NEW.type IN ({_IN}) "
            f"BEGIN INSERT INTO outbox (event_id) VALUES (NEW.id); END"
        )


def downgrade() -> None:
    op.execute(
        "DROP TRIGGER IF EXISTS events_outbox"
        + (" ON events" if op.get_bind().dialect.name == "postgresql" else "")
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS provisiond_outbox()")
    with op.batch_alter_table("provision_profiles", schema=None) as batch_op:
        batch_op.drop_column("lorawan")
    op.drop_table("tts_devices")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhooks")
    op.drop_table("leases")
    op.drop_index(op.f("ix_broker_accounts_device_id"), table_name="broker_accounts")
    op.drop_table("broker_accounts")
    op.drop_table("pending_work")
    op.drop_table("outbox")
