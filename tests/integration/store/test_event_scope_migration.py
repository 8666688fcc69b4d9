"""Migration 0015 on both backends: events written before it get their group's path (if
the group still exists), webhooks keep theirs, and a downgrade drops operator-wide ones."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy import create_engine

from provisiond.store import migrate
from provisiond.store.database import sync_url
from provisiond.store.types import UtcDateTime
from tests.integration.store.test_migrations import empty_database  # noqa: F401 (fixture)

groups = sa.table(
    "groups",
    sa.column("id", sa.Uuid()),
    sa.column("name"),
    sa.column("path"),
    sa.column("depth"),
    sa.column("created_at", UtcDateTime()),
)
events = sa.table(
    "events",
    sa.column("id"),
    sa.column("type"),
    sa.column("at", UtcDateTime()),
    sa.column("actor"),
    sa.column("group_id", sa.Uuid()),
    sa.column("data", sa.JSON()),
)
webhooks = sa.table(
    "webhooks",
    sa.column("id", sa.Uuid()),
    sa.column("group_id", sa.Uuid()),
    sa.column("url"),
    sa.column("secret_sealed"),
    sa.column("event_types", sa.JSON()),
    sa.column("created_at", UtcDateTime()),
)


def test_0015_gives_old_events_their_groups_path(empty_database: str) -> None:  # noqa: F811
    now = datetime(2026, 1, 1, tzinfo=UTC)
    acme, gone, hook = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    migrate.upgrade(empty_database, "0013")
    engine = create_engine(sync_url(empty_database))
    try:
        with engine.begin() as conn:
            conn.execute(
                groups.insert().values(id=acme, name="Acme", path="Acme", depth=0, created_at=now)
            )
            conn.execute(
                webhooks.insert().values(
                    id=hook,
                    group_id=acme,
                    url="https://x",
                    secret_sealed="s",
                    event_types=[],
                    created_at=now,
                )
            )
            for group in (acme, gone, None):
                conn.execute(
                    events.insert().values(
                        type="group.created", at=now, actor="old", group_id=group, data={}
                    )
                )
        migrate.upgrade(empty_database)
        with engine.begin() as conn:
            paths = [
                r[0] for r in conn.execute(sa.text("SELECT group_path FROM events ORDER BY id"))
            ]
            conn.execute(
                webhooks.insert().values(
                    id=uuid.uuid4(),
                    group_id=None,
                    url="https://all",
                    secret_sealed="s",
                    event_types=[],
                    created_at=now,
                )
            )
        assert paths == ["Acme", None, None]  # a deleted group's events: operator-wide
        migrate.downgrade(empty_database, "0013")
        with engine.connect() as conn:
            kept = [r[0] for r in conn.execute(sa.text("SELECT id FROM webhooks"))]
    finally:
        engine.dispose()
    assert [uuid.UUID(str(k)) for k in kept] == [hook]
