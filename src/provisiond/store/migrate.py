"""Running the Alembic migrations from provisiond itself (``provisiond db upgrade``)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import create_engine, pool
from sqlalchemy.exc import DBAPIError

from provisiond.errors import SchemaOutdated, Unavailable
from provisiond.store.database import ensure_sqlite_dir, sync_url, translate

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic is imported inside the functions: every CLI command would otherwise pay its import.
MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["database_url"] = database_url
    return config


@functools.cache
def head_revision() -> str:
    """The newest migration of this code. Reading it loads every migration script (~20 ms),
    and every command checks it: read once, the scripts do not change while we run."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found in {MIGRATIONS}")
    return head


def known_revisions() -> set[str]:
    """Every schema revision this provisiond has a migration for (an older database's is
    one of them; a newer provisiond's is not)."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return {s.revision for s in scripts.walk_revisions()}


def upgrade(database_url: str, revision: str = "head", *, sqlite_page_size: int = 0) -> None:
    """Migrate to ``revision``; an SQLite file created now gets ``sqlite_page_size`` (0: the
    SQLite default)."""
    from alembic import command

    config = alembic_config(database_url)
    config.attributes["sqlite_page_size"] = sqlite_page_size
    try:
        command.upgrade(config, revision)
        _use_wal(database_url)
    except DBAPIError as err:
        raise (translate(err) or Unavailable(str(err))) from err


def _use_wal(database_url: str) -> None:
    """Leave a SQLite file in WAL mode (the mode is stored in the file). Every connection
    asks for WAL anyway, but switching needs the file to itself: processes opening a fresh
    file at the same moment would otherwise race for that switch, and SQLite answers the
    losers "database is locked" at once instead of waiting."""
    url = sync_url(database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
    finally:
        engine.dispose()


def downgrade(database_url: str, revision: str = "base") -> None:
    from alembic import command

    try:
        command.downgrade(alembic_config(database_url), revision)
    except DBAPIError as err:
        raise (translate(err) or Unavailable(str(err))) from err


def current_revision(database_url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    url = sync_url(database_url)
    ensure_sqlite_dir(url)
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except DBAPIError as err:
        raise (translate(err) or Unavailable(str(err))) from err
    finally:
        engine.dispose()


def check_current(database_url: str) -> None:
    """Refuse to serve on a database whose schema is not at this version's head."""
    current, head = current_revision(database_url), head_revision()
    if current != head:
        raise SchemaOutdated(
            f"the database is at schema revision {current or 'none'}, this provisiond needs "
            f"{head}: run `provisiond db upgrade` (or `provisiond serve --migrate`)",
            current=current,
            head=head,
        )
