"""Alembic environment: runs migrations on a synchronous connection (pysqlite or psycopg)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine, pool

from provisiond.store.database import ensure_sqlite_dir, sync_url
from provisiond.store.schema import metadata

config = context.config


def _url() -> str:
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    if not url:
        # Developers running plain `alembic`: the same resolution as provisiond itself.
        from provisiond.settings import load_settings

        url = load_settings().effective_database_url
    return str(url)


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = sync_url(_url())
    ensure_sqlite_dir(url)
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        page_size = int(config.attributes.get("sqlite_page_size", 0))
        if url.get_backend_name() == "sqlite" and page_size:
            # The sqlite_page_size setting, for a file the migrations create (a file that
            # has pages already keeps their size).
            conn.exec_driver_sql(f"PRAGMA page_size={page_size}")
            conn.commit()
        _run(conn)
    engine.dispose()


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(
        url=_url(), target_metadata=metadata, literal_binds=True, render_as_batch=True
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
