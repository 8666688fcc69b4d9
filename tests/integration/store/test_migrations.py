"""The migrations create exactly the schema of store/schema.py, on both backends, and undo it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from alembic import command
from sqlalchemy import create_engine, inspect

from provisiond.errors import SchemaOutdated
from provisiond.store import migrate
from provisiond.store.database import sync_url
from tests.support.postgres import with_database


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    server = request.getfixturevalue("postgres_template")
    name = f"provisiond_m_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield with_database(server, name)
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


LATER = {
    "provision_profiles",
    "registration_tokens",
    "certificate_authorities",
    "claims",
    "web_sessions",
    "outbox",
    "pending_work",
    "broker_accounts",
    "leases",
    "webhooks",
    "webhook_deliveries",
    "tts_devices",
    "dps_enrollments",
    "association_tokens",
    "issued_certificates",
    "sign_in_addresses",
    "invitations",
    "funnel_days",
    "device_days",
    "aws_pending_certificates",
}


def tables(url: str) -> set[str]:
    engine = create_engine(sync_url(url))
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


@pytest.mark.slow
def test_upgrade_check_downgrade_upgrade(empty_database: str) -> None:
    with pytest.raises(SchemaOutdated, match="run `provisiond db upgrade`"):
        migrate.check_current(empty_database)

    migrate.upgrade(empty_database)
    migrate.check_current(empty_database)
    # The migrated schema matches the SQLAlchemy metadata (alembic check = no autogenerate diff).
    command.check(migrate.alembic_config(empty_database))
    first = {
        "groups",
        "users",
        "device_models",
        "devices",
        "device_tags",
        "credentials",
        "api_tokens",
        "events",
    }
    assert tables(empty_database) == first | LATER

    migrate.downgrade(empty_database, "0001")  # each revision downgrades on its own
    assert tables(empty_database) == first
    migrate.upgrade(empty_database)
    assert tables(empty_database) == first | LATER

    migrate.downgrade(empty_database, "base")
    assert tables(empty_database) == set()
    assert migrate.current_revision(empty_database) is None

    migrate.upgrade(empty_database)
    assert migrate.current_revision(empty_database) == migrate.head_revision()


def test_a_new_sqlite_file_gets_the_page_size_setting_and_an_old_one_keeps_its_own(
    tmp_path,
) -> None:
    import sqlite3

    def page_size(path) -> int:
        with sqlite3.connect(path) as conn:
            return int(conn.execute("PRAGMA page_size").fetchone()[0])

    new = tmp_path / "new.db"
    migrate.upgrade(f"sqlite:///{new}", sqlite_page_size=16384)
    assert page_size(new) == 16384
    assert migrate.current_revision(f"sqlite:///{new}") == migrate.head_revision()

    old = tmp_path / "old.db"
    migrate.upgrade(f"sqlite:///{old}", "0001")
    migrate.upgrade(f"sqlite:///{old}", sqlite_page_size=16384)
    assert page_size(old) == 4096
    assert migrate.current_revision(f"sqlite:///{old}") == migrate.head_revision()


def test_a_profile_secret_moves_off_the_registration_key_and_is_sealed_on_upgrade(
    empty_database: str,
) -> None:
    """Before 0011 the stored SHA-256 of a profile secret was also the HS256 key: the
    migration re-hashes it and keeps the key apart; `db upgrade` seals the key."""
    import asyncio
    import hashlib
    import time
    from datetime import UTC, datetime

    import jwt
    from sqlalchemy import insert, text
    from typer.testing import CliRunner

    from provisiond.bootstrap import open_container
    from provisiond.cli.app import app
    from provisiond.services import profiles, registration_tokens
    from provisiond.services.ratelimit import RateLimiter
    from provisiond.settings import load_settings
    from provisiond.store.schema import provision_profiles

    migrate.upgrade(empty_database, "0010")
    secret = "old-firmware-secret-0001"
    old_hash = hashlib.sha256(secret.encode()).hexdigest()
    now = datetime.now(UTC)
    engine = create_engine(sync_url(empty_database))
    with engine.begin() as conn:  # a profile as provisiond 0010 wrote it
        conn.execute(
            insert(provision_profiles).values(
                id=uuid.uuid4(),
                name="old",
                key="old-key-0001",
                secret_hash=old_hash,
                strategy="allow-create",
                credential_types="access-token",
                rate_per_minute=60,
                source_rate_per_minute=60,
                enabled=True,
                created_at=now,
                updated_at=now,
                secret_rotated_at=now,
            )
        )
    result = CliRunner().invoke(
        app,
        ["db", "upgrade", "--database", empty_database],
        env={"PROVISIOND_DEVICE_KEY_PASSPHRASE": "sealed at upgrade"},
    )
    assert result.exit_code == 0, result.stderr
    assert "sealed the registration keys of 1 profile(s)" in result.output
    with engine.connect() as conn:
        stored, sealed = conn.execute(
            text("SELECT secret_hash, jwt_key_sealed FROM provision_profiles")
        ).one()
    engine.dispose()
    assert old_hash not in stored + sealed
    assert sealed.startswith("aesgcm1:")

    settings = load_settings(database_url=empty_database, device_key_passphrase="sealed at upgrade")

    async def check() -> str:
        async with open_container(settings) as c:
            assert (
                await profiles.authenticate_profile(c.uow(), key="old-key-0001", secret=secret)
                is not None
            )
            token = jwt.encode(
                {"serial": "OLD-1", "exp": int(time.time()) + 60, "jti": "j-1"},
                bytes.fromhex(old_hash),
                algorithm="HS256",
                headers={"kid": "old-key-0001"},
            )
            done = await registration_tokens.register_with_token(
                c.uow(),
                RateLimiter(),
                token=token,
                source="test",
                unknown_source_rate_per_minute=10,
                now=c.now(),
                keys=c.sealer,
            )
            return done.device.serial

    assert asyncio.run(check()) == "OLD-1"  # firmware keeps signing with the same key


def test_0012_keeps_what_provisiond_registered_in_the_things_stack_as_legacy(
    empty_database: str,
) -> None:
    """Records from before 0012 become legacy (their end devices lack the mark) and get
    their device's serial; a downgrade forgets conflicts, which were never registered."""
    from datetime import UTC, datetime

    import sqlalchemy as sa

    from provisiond.store.types import UtcDateTime

    devices = sa.table(
        "devices",
        sa.column("id", sa.Uuid()),
        sa.column("serial"),
        sa.column("name"),
        sa.column("state"),
        sa.column("created_at", UtcDateTime()),
        sa.column("updated_at", UtcDateTime()),
    )
    records = sa.table(
        "tts_devices",
        sa.column("device_id", sa.Uuid()),
        sa.column("application_id"),
        sa.column("end_device_id"),
        sa.column("dev_eui"),
        sa.column("status"),
        sa.column("updated_at", UtcDateTime()),
        sa.column("serial"),
        sa.column("origin"),
    )
    now = datetime(2026, 1, 1, tzinfo=UTC)
    device, gone = uuid.uuid4(), uuid.uuid4()
    migrate.upgrade(empty_database, "0011")
    engine = create_engine(sync_url(empty_database))
    try:
        with engine.begin() as conn:
            conn.execute(
                devices.insert().values(
                    id=device,
                    serial="0018B20000000101",
                    name="meter",
                    state="registered",
                    created_at=now,
                    updated_at=now,
                )
            )
            for device_id in (device, gone):
                conn.execute(
                    records.insert().values(
                        device_id=device_id,
                        application_id="kanarra-meters",
                        end_device_id="eui-0018b20000000101",
                        dev_eui="0018B20000000101",
                        status="registered",
                        updated_at=now,
                    )
                )
        migrate.upgrade(empty_database)
        with engine.begin() as conn:
            rows = conn.execute(
                sa.select(records.c.device_id, records.c.serial, records.c.origin)
            ).all()
            assert {tuple(r) for r in rows} == {
                (device, "0018B20000000101", "legacy"),
                (gone, None, "legacy"),
            }
            conn.execute(
                records.update().where(records.c.device_id == gone).values(status="conflict")
            )
        migrate.downgrade(empty_database, "0011")
        with engine.begin() as conn:
            left = conn.execute(sa.select(records.c.device_id, records.c.status)).all()
            assert [tuple(r) for r in left] == [(device, "registered")]
    finally:
        engine.dispose()


def test_0014_makes_old_tokens_operator_wide_admins_and_a_downgrade_never_widens_one(
    empty_database: str,
) -> None:
    """Tokens from before 0014 could do everything: they stay able to. A downgrade cannot
    express a scope, so it revokes the tokens that have one rather than widen them."""
    from datetime import UTC, datetime

    import sqlalchemy as sa

    from provisiond.store.types import UtcDateTime

    now = datetime(2026, 1, 1, tzinfo=UTC)
    group = uuid.uuid4()
    old = sa.table(
        "api_tokens",
        sa.column("id", sa.Uuid()),
        sa.column("name"),
        sa.column("token_hash"),
        sa.column("created_at", UtcDateTime()),
        sa.column("revoked_at", UtcDateTime()),
    )
    new = sa.table(
        "api_tokens",
        sa.column("id", sa.Uuid()),
        sa.column("name"),
        sa.column("token_hash"),
        sa.column("created_at", UtcDateTime()),
        sa.column("role"),
        sa.column("group_id", sa.Uuid()),
        sa.column("expires_at", UtcDateTime()),
        sa.column("revoked_at", UtcDateTime()),
    )
    groups = sa.table(
        "groups",
        sa.column("id", sa.Uuid()),
        sa.column("name"),
        sa.column("path"),
        sa.column("depth"),
        sa.column("created_at", UtcDateTime()),
    )
    migrate.upgrade(empty_database, "0013")
    engine = create_engine(sync_url(empty_database))
    try:
        with engine.begin() as conn:
            conn.execute(
                old.insert().values(
                    id=uuid.uuid4(), name="old", token_hash="a" * 64, created_at=now
                )
            )
        migrate.upgrade(empty_database)
        with engine.begin() as conn:
            if engine.dialect.name == "sqlite":  # as provisiond's own connections do
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
            row = conn.execute(sa.select(new.c.role, new.c.group_id, new.c.expires_at)).one()
            assert tuple(row) == ("admin", None, None)
            conn.execute(
                groups.insert().values(id=group, name="Acme", path="Acme", depth=0, created_at=now)
            )
            for name, role, group_id in (("scoped", "admin", group), ("viewer", "viewer", None)):
                conn.execute(
                    new.insert().values(
                        id=uuid.uuid4(),
                        name=name,
                        role=role,
                        token_hash=name[0] * 64,
                        group_id=group_id,
                        created_at=now,
                    )
                )
            # a live token keeps its group
            with pytest.raises(sa.exc.IntegrityError), conn.begin_nested():
                conn.execute(groups.delete())
        migrate.downgrade(empty_database, "0013")
        with engine.begin() as conn:
            left = dict(conn.execute(sa.select(old.c.name, old.c.revoked_at)).all())
        assert left["old"] is None
        assert left["scoped"] is not None
        assert left["viewer"] is not None
    finally:
        engine.dispose()


def _triggers(url: str) -> set[str]:
    import sqlalchemy as sa

    engine = create_engine(sync_url(url))
    query = (
        "SELECT name FROM sqlite_master WHERE type = 'trigger'"
        if url.startswith("sqlite")
        else "SELECT DISTINCT trigger_name FROM information_schema.triggers"
    )
    try:
        with engine.connect() as conn:
            return {str(name) for (name,) in conn.execute(sa.text(query))}
    finally:
        engine.dispose()


def test_0025_lets_an_admin_have_no_group_keeps_every_trigger_and_downgrades_only_without_one(
    empty_database: str,
) -> None:
    """Operator-wide users: group_id NULL, only for admins. SQLite rebuilds the users table
    for it, which must keep the overview's summary triggers (on users and naming users)."""
    from datetime import UTC, datetime

    import sqlalchemy as sa

    from provisiond.store.types import UtcDateTime

    users = sa.table(
        "users",
        sa.column("id", sa.Uuid()),
        sa.column("email"),
        sa.column("password_hash"),
        sa.column("role"),
        sa.column("group_id", sa.Uuid()),
        sa.column("created_at", UtcDateTime()),
    )
    now = datetime(2026, 1, 1, tzinfo=UTC)

    def user(email: str, role: str) -> dict[str, object]:
        return {"id": uuid.uuid4(), "email": email, "password_hash": "x", "role": role,
                "group_id": None, "created_at": now}  # fmt: skip

    migrate.upgrade(empty_database, "0024")
    before = _triggers(empty_database)
    assert "users_claims_first" in before
    engine = create_engine(sync_url(empty_database))
    try:
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.execute(users.insert().values(user("early@example.com", "admin")))

        migrate.upgrade(empty_database)
        assert _triggers(empty_database) == before
        with engine.begin() as conn:
            conn.execute(users.insert().values(user("ops@example.com", "admin")))
        for role in ("installer", "viewer"):
            with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
                conn.execute(users.insert().values(user(f"{role}@example.com", role)))

        migrate.downgrade(empty_database, "0025")  # the later revisions, if any
        with pytest.raises(Exception, match="operator-wide users exist"):
            migrate.downgrade(empty_database, "0024")
        assert migrate.current_revision(empty_database) == "0025"
        with engine.begin() as conn:
            conn.execute(users.delete())
        migrate.downgrade(empty_database, "0024")
        assert _triggers(empty_database) == before
    finally:
        engine.dispose()
