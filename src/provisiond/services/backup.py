"""Backing up the registry and restoring it (`provisiond backup`, `provisiond restore`).

SQLite: an online copy of the database file while `serve` runs and writes (one consistent
snapshot, store/backup.py). PostgreSQL: ``pg_dump --format=custom`` and ``pg_restore``.

A backup holds secrets sealed with ``device_key_passphrase`` (services/sealing.py: LoRaWAN
keys, broker passwords, registration-token keys, webhook secrets); only that passphrase
opens them. Restoring checks, before anything is replaced, that the passphrase configured
now opens every kind of sealed value the backup holds: a wrong one stops the restore with
``passphrase-mismatch`` and the current database as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import make_url

from provisiond.domain.events import EventType, NewEvent
from provisiond.errors import (
    BackupInvalid,
    ConfigurationError,
    InvalidInput,
    PassphraseMismatch,
    TargetExists,
)
from provisiond.services.sealing import Sealer
from provisiond.store import backup as files
from provisiond.store import migrate
from provisiond.store.database import DatabaseOptions, create_engine, parse_database_url
from provisiond.store.uow import UnitOfWork

SEALED_WARNING = (
    "the backup's sealed secrets (device keys, broker passwords, registration-token keys, "
    "webhook secrets) open only with the same device_key_passphrase: restoring it needs that "
    "passphrase. Keep the passphrase safe, and apart from the backup"
)

UNSEALED_WARNING = (
    "device_key_passphrase is not set: the device secrets provisiond keeps are in the backup "
    "unencrypted. Keep it as safe as the database"
)


@dataclass(frozen=True, slots=True)
class BackupDone:
    path: Path
    backend: str  # sqlite | postgresql
    size: int


@dataclass(frozen=True, slots=True)
class RestoreDone:
    database: str  # where it was restored (masked URL or path)
    revision: str  # the backup's schema revision
    head: str  # the revision after restoring (migrated when older)
    sealed_checked: int  # kinds of sealed values the passphrase was checked against


def sqlite_path(database_url: str) -> Path | None:
    """The file of a SQLite database URL (None: PostgreSQL)."""
    url = parse_database_url(database_url)
    if url.get_backend_name() != "sqlite":
        return None
    if not url.database or url.database == ":memory:":
        raise InvalidInput("an in-memory SQLite database cannot be backed up or restored")
    return Path(url.database).expanduser()


def _check_out(out: Path, *, force: bool) -> None:
    if out.exists() and not force:
        raise TargetExists(f"{out} exists: choose another name, or --force to replace it")
    if out.is_dir():
        raise InvalidInput(f"{out} is a directory: give the backup's file name")
    if not out.parent.is_dir():
        raise InvalidInput(f"{out.parent} is not a directory")


def back_up(database_url: str, out: Path, *, force: bool = False) -> BackupDone:
    """Write a consistent backup of the database to ``out`` (mode 0600)."""
    _check_out(out, force=force)
    path = sqlite_path(database_url)
    if path is None:
        files.pg_dump(database_url, out)
        return BackupDone(out, "postgresql", out.stat().st_size)
    if path.resolve() == out.resolve():
        raise InvalidInput(f"{out} is the database itself")
    files.copy_database(path, out)
    return BackupDone(out, "sqlite", out.stat().st_size)


def check_passphrase(sealed: list[str], passphrase: str | None) -> None:
    """PassphraseMismatch unless ``passphrase`` opens every one of ``sealed``."""
    sealer = Sealer(passphrase, production=False)
    for value in sealed:
        try:
            sealer.unseal(value)
        except ConfigurationError as err:
            given = "is not set" if passphrase is None else "is not the one it was sealed with"
            raise PassphraseMismatch(
                f"the backup holds secrets sealed with a device_key_passphrase; the one "
                f"configured now {given}. Set PROVISIOND_DEVICE_KEY_PASSPHRASE to the "
                "passphrase of the deployment the backup was taken from; nothing was changed"
            ) from err


def _check_revision(revision: str, backup: Path) -> None:
    if revision not in migrate.known_revisions():
        raise BackupInvalid(
            f"{backup} is at schema revision {revision}, which this provisiond does not know "
            f"(its newest is {migrate.head_revision()}): restore it with the provisiond "
            "version that wrote it, or a newer one"
        )


async def restore(
    database_url: str,
    backup: Path,
    *,
    passphrase: str | None,
    force: bool = False,
    actor: str,
    now: datetime,
) -> RestoreDone:
    """Put ``backup`` in place of the configured database: checked (a provisiond database,
    intact, a known revision, sealed with this passphrase) before anything is replaced,
    migrated to this version's schema, with a ``database.restored`` event, then renamed
    over the database at once (SQLite) or restored in one transaction (PostgreSQL)."""
    path = sqlite_path(database_url)
    if path is None:
        return await _restore_postgres(
            database_url, backup, passphrase=passphrase, force=force, actor=actor, now=now
        )
    found = files.inspect_backup(backup)
    _check_revision(found.revision, backup)
    check_passphrase(found.sealed, passphrase)
    if path.exists() and not force:
        raise TargetExists(f"the database {path} exists: --force replaces it with the backup")
    with files.database_to_itself(path):
        staged = files.stage_restore(backup, path)
        try:
            staged_url = f"sqlite:///{staged}"
            migrate.upgrade(staged_url)
            await _record(staged_url, backup, found.revision, actor, now)
            files.put_in_place(staged, path)
        finally:
            files.discard(staged)
    return RestoreDone(str(path), found.revision, migrate.head_revision(), len(found.sealed))


async def _record(
    database_url: str, backup: Path, revision: str, actor: str, now: datetime
) -> None:
    """The restored database's ``database.restored`` event."""
    engine = create_engine(database_url, DatabaseOptions())
    try:
        uow = UnitOfWork(engine)
        async with uow:
            await uow.events.add(
                NewEvent(
                    EventType.DATABASE_RESTORED,
                    now,
                    actor,
                    data={"backup": backup.name, "revision": revision},
                )
            )
            await uow.commit()
    finally:
        await engine.dispose()


async def _restore_postgres(
    database_url: str,
    backup: Path,
    *,
    passphrase: str | None,
    force: bool,
    actor: str,
    now: datetime,
) -> RestoreDone:
    found = files.inspect_dump(backup)
    _check_revision(found.revision, backup)
    check_passphrase(found.sealed, passphrase)
    if files.pg_has_tables(database_url) and not force:
        raise TargetExists(
            "the database has provisiond's tables: --force replaces them with the backup"
        )
    files.pg_restore(database_url, backup)
    migrate.upgrade(database_url)
    await _record(database_url, backup, found.revision, actor, now)
    masked = make_url(database_url).render_as_string(hide_password=True)
    return RestoreDone(masked, found.revision, migrate.head_revision(), len(found.sealed))
