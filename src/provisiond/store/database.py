"""Engines for SQLite and PostgreSQL, and the translation of driver failures."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from provisiond.errors import ConfigurationError, Unavailable


@dataclass(frozen=True, slots=True)
class DatabaseOptions:
    sqlite_synchronous: str = "FULL"
    sqlite_busy_timeout_ms: int = 10_000
    pool_size: int = 10


def parse_database_url(url: str) -> URL:
    """Accept ``sqlite:///…`` and ``postgresql://…`` (drivers are chosen here)."""
    try:
        parsed = make_url(url)
    except Exception as err:
        raise ConfigurationError(f"database URL {url!r} is not a valid URL") from err
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ConfigurationError(
            f"database URL uses {backend!r}; provisiond supports sqlite:/// and postgresql://"
        )
    return parsed


def sync_url(url: str) -> URL:
    """The URL for synchronous use (migrations): pysqlite or psycopg."""
    parsed = parse_database_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.set(drivername="sqlite")
    return parsed.set(drivername="postgresql+psycopg")


def async_url(url: str) -> URL:
    parsed = parse_database_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    return parsed.set(drivername="postgresql+psycopg")


def ensure_sqlite_dir(url: URL) -> None:
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def sqlite_pragmas(options: DatabaseOptions) -> list[str]:
    """What every provisiond connection to a SQLite file runs first."""
    # The busy timeout first: even switching to WAL may meet another connection's lock.
    return [
        f"PRAGMA busy_timeout={int(options.sqlite_busy_timeout_ms)}",
        "PRAGMA journal_mode=WAL",
        f"PRAGMA synchronous={options.sqlite_synchronous}",
        "PRAGMA foreign_keys=ON",
    ]


def install_sqlite_pragmas(sync_engine: Any, options: DatabaseOptions) -> None:
    """WAL, foreign keys, busy timeout; explicit BEGIN so SQLAlchemy, not pysqlite, decides.

    Write transactions start with BEGIN IMMEDIATE: a writer takes the lock at once and waits
    for it (busy_timeout) instead of failing when it later upgrades from a read lock.
    """

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in sqlite_pragmas(options):
            cursor.execute(pragma)
        cursor.execute("PRAGMA cache_size=-65536")  # 64 MiB of pages, for large imports
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        write = conn.get_execution_options().get("provisiond_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def create_engine(url: str, options: DatabaseOptions) -> AsyncEngine:
    aurl = async_url(url)
    ensure_sqlite_dir(aurl)
    if aurl.get_backend_name() == "sqlite":
        engine = create_async_engine(aurl)
        install_sqlite_pragmas(engine.sync_engine, options)
        return engine
    return create_async_engine(
        aurl, pool_size=options.pool_size, max_overflow=options.pool_size, pool_pre_ping=True
    )


def translate(err: DBAPIError) -> Unavailable | None:
    """Map a driver failure that means "the database is not there" to Unavailable."""
    if isinstance(err, OperationalError) or err.connection_invalidated:
        return unavailable(str(err.orig) if err.orig is not None else str(err))
    return None


def unavailable(message: str) -> Unavailable:
    """The Unavailable for a driver's operational failure (its message)."""
    lowered = message.lower()
    if "locked" in lowered or "busy" in lowered:
        return Unavailable("the database is busy; try again", retry_after=1)
    if "disk is full" in lowered or "no space left" in lowered:
        # SQLite's SQLITE_FULL, PostgreSQL's "could not extend file … No space left"
        return Unavailable(
            "the database's disk is full: nothing was written. Free space on it, then try again",
            retry_after=30,
        )
    return Unavailable(f"the database is unavailable: {message.strip()}", retry_after=5)


async def ping(engine: AsyncEngine) -> None:
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except DBAPIError as err:
        raise (translate(err) or Unavailable(str(err))) from err
    except OSError as err:
        raise Unavailable(f"the database is unavailable: {err}") from err
