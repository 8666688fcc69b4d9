"""Claiming by people: claims, web sessions, sign-in lock-out, profiles' claim settings,
devices' claim code, device-opened claim window and history start.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 12:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import provisiond.store.types

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_Utc = provisiond.store.types.UtcDateTime
_EventId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_LIVE = sa.text("status IN ('open', 'proven')")


def upgrade() -> None:
    op.create_table(
        "claims",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("device_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("target", sa.String(length=8), nullable=False),
        sa.Column("proof", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("started_at", _Utc(timezone=True), nullable=False),
        sa.Column("expires_at", _Utc(timezone=True), nullable=False),
        sa.Column("proven_at", _Utc(timezone=True), nullable=True),
        sa.Column("ended_at", _Utc(timezone=True), nullable=True),
        sa.Column("code_attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.CheckConstraint("target IN ('me', 'group')", name=op.f("ck_claims_target")),
        sa.CheckConstraint(
            "status IN ('open', 'proven', 'completed', 'expired', 'failed', 'cancelled')",
            name=op.f("ck_claims_status"),
        ),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_claims_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_claims_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_claims")),
    )
    op.create_index(
        "uq_claims_live_device",
        "claims",
        ["device_id"],
        unique=True,
        sqlite_where=_LIVE,
        postgresql_where=_LIVE,
    )
    op.create_index(op.f("ix_claims_device_id_started_at"), "claims", ["device_id", "started_at"])
    op.create_index(op.f("ix_claims_user_id_started_at"), "claims", ["user_id", "started_at"])

    op.create_table(
        "web_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("csrf", sa.String(length=64), nullable=False),
        sa.Column("created_at", _Utc(timezone=True), nullable=False),
        sa.Column("last_seen_at", _Utc(timezone=True), nullable=False),
        sa.Column("expires_at", _Utc(timezone=True), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_web_sessions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_sessions")),
    )
    op.create_index(op.f("ix_web_sessions_user_id"), "web_sessions", ["user_id"])
    op.create_index(op.f("ix_web_sessions_expires_at"), "web_sessions", ["expires_at"])

    op.create_index(op.f("ix_events_group_id_id"), "events", ["group_id", "id"])
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("failed_logins", sa.Integer(), server_default=sa.text("0"), nullable=False)
        )
        batch_op.add_column(sa.Column("locked_until", _Utc(timezone=True), nullable=True))
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claim_code_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("claim_secret_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("claim_secret_expires_at", _Utc(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("history_since_event_id", _EventId, nullable=True))
    with op.batch_alter_table("provision_profiles", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claim_proof", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("claim_window_seconds", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "release_policy",
                sa.String(length=8),
                server_default=sa.text("'keep'"),
                nullable=False,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("provision_profiles", schema=None) as batch_op:
        batch_op.drop_column("release_policy")
        batch_op.drop_column("claim_window_seconds")
        batch_op.drop_column("claim_proof")
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_column("history_since_event_id")
        batch_op.drop_column("claim_secret_expires_at")
        batch_op.drop_column("claim_secret_hash")
        batch_op.drop_column("claim_code_hash")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("locked_until")
        batch_op.drop_column("failed_logins")
    op.drop_index(op.f("ix_events_group_id_id"), table_name="events")
    op.drop_index(op.f("ix_web_sessions_expires_at"), table_name="web_sessions")
    op.drop_index(op.f("ix_web_sessions_user_id"), table_name="web_sessions")
    op.drop_table("web_sessions")
    op.drop_index(op.f("ix_claims_user_id_started_at"), table_name="claims")
    op.drop_index(op.f("ix_claims_device_id_started_at"), table_name="claims")
    op.drop_index("uq_claims_live_device", table_name="claims")
    op.drop_table("claims")
