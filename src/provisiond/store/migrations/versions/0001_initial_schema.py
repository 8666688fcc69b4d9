"""Initial schema: groups, users, device models, devices, tags, credentials, API tokens, events.

Revision ID: 0001
Revises:
Create Date: 2026-11-24 02:30:21.706611
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import provisiond.store.types

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", provisiond.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", provisiond.store.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", provisiond.store.types.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("name", name=op.f("uq_api_tokens_name")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_table(
        "device_models",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("created_at", provisiond.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_models")),
        sa.UniqueConstraint("name", name=op.f("uq_device_models_name")),
    )
    op.create_table(
        "events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("at", provisiond.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=300), nullable=False),
        sa.Column("device_id", sa.Uuid(), nullable=True),
        sa.Column("serial", sa.String(length=64), nullable=True),
        sa.Column("group_id", sa.Uuid(), nullable=True),
        sa.Column(
            "data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_events_at"), ["at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_events_device_id_id"), ["device_id", "id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_events_type_id"), ["type", "id"], unique=False)

    op.create_table(
        "groups",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("parent_id", sa.Uuid(), nullable=True),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("path", sa.String(length=1040), nullable=False),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.Column("created_at", provisiond.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["groups.id"],
            name=op.f("fk_groups_parent_id_groups"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_groups")),
        sa.UniqueConstraint("path", name=op.f("uq_groups_path")),
    )
    with op.batch_alter_table("groups", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_groups_parent_id"), ["parent_id"], unique=False)

    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("group_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", provisiond.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("role IN ('admin', 'installer', 'viewer')", name=op.f("ck_users_role")),
        sa.ForeignKeyConstraint(
            ["group_id"], ["groups.id"], name=op.f("fk_users_group_id_groups"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_users_group_id"), ["group_id"], unique=False)

    op.create_table(
        "devices",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("model_id", sa.Uuid(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("group_id", sa.Uuid(), nullable=True),
        sa.Column("owner_user_id", sa.Uuid(), nullable=True),
        sa.Column(
            "registered_event_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("created_at", provisiond.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", provisiond.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("claimed_at", provisiond.store.types.UtcDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "(state = 'claimed') = (group_id IS NOT NULL)",
            name=op.f("ck_devices_claimed_has_group"),
        ),
        sa.CheckConstraint(
            "state IN ('registered', 'claimed', 'released')", name=op.f("ck_devices_state")
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["groups.id"],
            name=op.f("fk_devices_group_id_groups"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["device_models.id"],
            name=op.f("fk_devices_model_id_device_models"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["owner_user_id"],
            ["users.id"],
            name=op.f("fk_devices_owner_user_id_users"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_devices")),
        sa.UniqueConstraint("serial", name=op.f("uq_devices_serial")),
    )
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_devices_group_id_serial"),
            ["group_id", "serial"],
            unique=False,
            sqlite_where=sa.text("group_id IS NOT NULL"),
            postgresql_where=sa.text("group_id IS NOT NULL"),
        )
        batch_op.create_index(
            batch_op.f("ix_devices_model_id_serial"), ["model_id", "serial"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_devices_owner_user_id"),
            ["owner_user_id"],
            unique=False,
            sqlite_where=sa.text("owner_user_id IS NOT NULL"),
            postgresql_where=sa.text("owner_user_id IS NOT NULL"),
        )
        batch_op.create_index(
            batch_op.f("ix_devices_state_serial"), ["state", "serial"], unique=False
        )

    op.create_table(
        "credentials",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("device_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("lookup", sa.String(length=128), nullable=True),
        sa.Column("secret_hash", sa.String(length=255), nullable=True),
        sa.Column("created_at", provisiond.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", provisiond.store.types.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_credentials_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credentials")),
    )
    with op.batch_alter_table("credentials", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_credentials_device_id"), ["device_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_credentials_type_lookup"),
            ["type", "lookup"],
            unique=True,
            sqlite_where=sa.text("lookup IS NOT NULL"),
            postgresql_where=sa.text("lookup IS NOT NULL"),
        )

    op.create_table(
        "device_tags",
        sa.Column("device_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=256), nullable=False),
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_device_tags_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("device_id", "key", name=op.f("pk_device_tags")),
    )
    with op.batch_alter_table("device_tags", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_device_tags_key_value_serial"), ["key", "value", "serial"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("device_tags", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_device_tags_key_value_serial"))

    op.drop_table("device_tags")
    with op.batch_alter_table("credentials", schema=None) as batch_op:
        batch_op.drop_index(
            batch_op.f("ix_credentials_type_lookup"),
            sqlite_where=sa.text("lookup IS NOT NULL"),
            postgresql_where=sa.text("lookup IS NOT NULL"),
        )
        batch_op.drop_index(batch_op.f("ix_credentials_device_id"))

    op.drop_table("credentials")
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_devices_state_serial"))
        batch_op.drop_index(
            batch_op.f("ix_devices_owner_user_id"),
            sqlite_where=sa.text("owner_user_id IS NOT NULL"),
            postgresql_where=sa.text("owner_user_id IS NOT NULL"),
        )
        batch_op.drop_index(batch_op.f("ix_devices_model_id_serial"))
        batch_op.drop_index(
            batch_op.f("ix_devices_group_id_serial"),
            sqlite_where=sa.text("group_id IS NOT NULL"),
            postgresql_where=sa.text("group_id IS NOT NULL"),
        )

    op.drop_table("devices")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_users_group_id"))

    op.drop_table("users")
    with op.batch_alter_table("groups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_groups_parent_id"))

    op.drop_table("groups")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_events_type_id"))
        batch_op.drop_index(batch_op.f("ix_events_device_id_id"))
        batch_op.drop_index(batch_op.f("ix_events_at"))

    op.drop_table("events")
    op.drop_table("device_models")
    op.drop_table("api_tokens")
