"""Identity integrity: reprovisioning policy and retry keys, device-chosen secret length,
manufacturer CAs, the certificates each CA issued and its CRL, HS256 keys kept sealed.

The profile secret's stored hash changes from SHA-256(secret) — which was also the HS256 key
of signed-token registration, so a copy of the database could mint tokens — to
SHA-256("provisiond profile secret" NUL SHA-256(secret)), computed here from the old hash.
The HS256 key moves to ``jwt_key_sealed``, written here as ``plain:``; ``provisiond db
upgrade`` seals it when ``device_key_passphrase`` is set. A downgrade restores the old
hash from a key still in ``plain:`` (a sealed one cannot be opened here: such a profile's
secret must then be rotated).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 05:00:00
"""

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import provisiond.store.types

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_Utc = provisiond.store.types.UtcDateTime
_PREFIX = b"provisiond profile secret\0"
_PLAIN = "plain:"


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("provision_retry_hash", sa.String(length=64), nullable=True))
        batch.add_column(
            sa.Column("provision_answer_sealed", sa.String(length=8192), nullable=True)
        )
    with op.batch_alter_table("certificate_authorities") as batch:
        batch.alter_column("private_key_pem", existing_type=sa.String(length=16384), nullable=True)
        batch.add_column(
            sa.Column("crl_number", sa.BigInteger(), server_default=sa.text("0"), nullable=False)
        )
        batch.add_column(sa.Column("crl_pem", sa.Text(), nullable=True))
        batch.add_column(sa.Column("crl_this_update", _Utc(timezone=True), nullable=True))
        batch.add_column(sa.Column("crl_next_update", _Utc(timezone=True), nullable=True))
    op.create_table(
        "issued_certificates",
        sa.Column("ca_id", sa.Uuid(), nullable=False),
        sa.Column("serial_number", sa.String(length=40), nullable=False),
        sa.Column("credential_id", sa.Uuid(), nullable=False),
        sa.Column("device_id", sa.Uuid(), nullable=False),
        sa.Column("device_serial", sa.String(length=64), nullable=False),
        sa.Column("certificate_pem", sa.String(length=8192), nullable=False),
        sa.Column("not_before", _Utc(timezone=True), nullable=False),
        sa.Column("not_after", _Utc(timezone=True), nullable=False),
        sa.Column("revoked_at", _Utc(timezone=True), nullable=True),
        sa.Column("revocation_reason", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("ca_id", "serial_number", name=op.f("pk_issued_certificates")),
        sa.UniqueConstraint("credential_id", name=op.f("uq_issued_certificates_credential_id")),
    )
    op.create_index(op.f("ix_issued_certificates_device_id"), "issued_certificates", ["device_id"])
    op.create_index(
        "ix_issued_certificates_revoked",
        "issued_certificates",
        ["ca_id", "revoked_at"],
        sqlite_where=sa.text("revoked_at IS NOT NULL"),
        postgresql_where=sa.text("revoked_at IS NOT NULL"),
    )
    with op.batch_alter_table("provision_profiles") as batch:
        batch.add_column(
            sa.Column(
                "reprovision_policy",
                sa.String(length=16),
                server_default=sa.text("'never'"),
                nullable=False,
            )
        )
        batch.add_column(
            sa.Column(
                "device_secret_min_length",
                sa.Integer(),
                server_default=sa.text("16"),
                nullable=False,
            )
        )
        batch.add_column(sa.Column("device_ca_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("jwt_key_sealed", sa.String(length=512), nullable=True))
        batch.create_foreign_key(
            batch.f("fk_provision_profiles_device_ca_id_certificate_authorities"),
            "certificate_authorities",
            ["device_ca_id"],
            ["id"],
            ondelete="RESTRICT",
        )
        batch.create_check_constraint(
            "reprovision_policy", "reprovision_policy IN ('never', 'with-proof', 'factory-reset')"
        )
    conn = op.get_bind()
    profiles = sa.table(
        "provision_profiles",
        sa.column("id", sa.Uuid()),
        sa.column("secret_hash", sa.String()),
        sa.column("jwt_key_sealed", sa.String()),
    )
    for row in conn.execute(sa.select(profiles.c.id, profiles.c.secret_hash)).all():
        new = hashlib.sha256(_PREFIX + bytes.fromhex(row.secret_hash)).hexdigest()
        conn.execute(
            profiles.update()
            .where(profiles.c.id == row.id)
            .values(secret_hash=new, jwt_key_sealed=_PLAIN + row.secret_hash)
        )


def downgrade() -> None:
    conn = op.get_bind()
    profiles = sa.table(
        "provision_profiles",
        sa.column("id", sa.Uuid()),
        sa.column("secret_hash", sa.String()),
        sa.column("jwt_key_sealed", sa.String()),
    )
    for row in conn.execute(sa.select(profiles.c.id, profiles.c.jwt_key_sealed)).all():
        if row.jwt_key_sealed and row.jwt_key_sealed.startswith(_PLAIN):
            conn.execute(
                profiles.update()
                .where(profiles.c.id == row.id)
                .values(secret_hash=row.jwt_key_sealed[len(_PLAIN) :])
            )
    with op.batch_alter_table("provision_profiles") as batch:
        batch.drop_constraint(op.f("ck_provision_profiles_reprovision_policy"), type_="check")
        batch.drop_constraint(
            "fk_provision_profiles_device_ca_id_certificate_authorities", type_="foreignkey"
        )
        batch.drop_column("jwt_key_sealed")
        batch.drop_column("device_ca_id")
        batch.drop_column("device_secret_min_length")
        batch.drop_column("reprovision_policy")
    op.drop_index("ix_issued_certificates_revoked", table_name="issued_certificates")
    op.drop_index(op.f("ix_issued_certificates_device_id"), table_name="issued_certificates")
    op.drop_table("issued_certificates")
    with op.batch_alter_table("certificate_authorities") as batch:
        batch.drop_column("crl_next_update")
        batch.drop_column("crl_this_update")
        batch.drop_column("crl_pem")
        batch.drop_column("crl_number")
        batch.alter_column("private_key_pem", existing_type=sa.String(length=16384), nullable=False)
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("provision_answer_sealed")
        batch.drop_column("provision_retry_hash")
