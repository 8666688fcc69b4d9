"""Timestamps written by the raw SQLite paths are the text SQLAlchemy writes for the ORM; a
subtree clause is cached with its statement."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Column, MetaData, String, Table, create_engine, event, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine.interfaces import CacheStats

from provisiond.store.directory import subtree_clause
from provisiond.store.types import UtcDateTime, bytewise, sqlite_timestamp, utc_datetime

DIALECT = sqlite.dialect()
ORM_TEXT = sqlite.DATETIME().bind_processor(DIALECT)
ZONES = st.builds(
    lambda minutes: timezone(timedelta(minutes=minutes)), st.integers(-14 * 60, 14 * 60)
) | st.just(UTC)
# hypothesis bounds are naive; the zones make each moment aware
MOMENTS = st.datetimes(
    min_value=datetime(1000, 1, 2),  # noqa: DTZ001
    max_value=datetime(9999, 12, 30),  # noqa: DTZ001
    timezones=ZONES,
)


@given(MOMENTS)
def test_raw_timestamps_are_the_orms_text(moment: datetime) -> None:
    assert ORM_TEXT is not None
    stored = UtcDateTime().process_bind_param(moment, DIALECT)
    assert sqlite_timestamp(moment) == ORM_TEXT(stored)
    assert utc_datetime(sqlite_timestamp(moment)) == moment


def test_whole_seconds_keep_their_microseconds() -> None:
    """Text comparison orders rows only if every timestamp has the same shape."""
    moment = datetime(2026, 12, 1, 4, 0, tzinfo=UTC)
    assert sqlite_timestamp(moment) == "2026-12-01 04:00:00.000000"
    assert (
        sqlite_timestamp(moment.astimezone(timezone(timedelta(hours=-5))))
        == "2026-12-01 04:00:00.000000"
    )


def test_a_scoped_read_is_compiled_once_and_its_cache_tells_columns_apart() -> None:
    """A subtree clause (``bytewise``) is part of its statement's cache key: the statement is
    compiled on its first execution only, and two clauses over different columns never share
    compiled SQL (which would scope a read by the wrong column)."""
    meta = MetaData()
    things = Table("things", meta, Column("path", String), Column("owner", String))
    engine = create_engine("sqlite://")
    meta.create_all(engine)
    seen: list[CacheStats] = []
    event.listen(engine, "after_cursor_execute", lambda *a: seen.append(a[4].cache_hit))
    rows = [("a/b", "x/y"), ("a/b/c", "x"), ("a/bc", "x/y/z"), ("x/y", "a/b")]
    with engine.begin() as conn:
        conn.execute(things.insert(), [{"path": p, "owner": o} for p, o in rows])
        seen.clear()

        def below(column: Column[str], path: str) -> list[tuple[str, str]]:
            query = select(things.c.path, things.c.owner).where(subtree_clause(column, path))
            return sorted(tuple(row) for row in conn.execute(query.order_by(bytewise(column))))

        assert below(things.c.path, "a/b") == [("a/b", "x/y"), ("a/b/c", "x")]
        assert below(things.c.path, "x") == [("x/y", "a/b")]  # the same statement, cached
        assert below(things.c.owner, "x/y") == [("a/b", "x/y"), ("a/bc", "x/y/z")]
        assert below(things.c.owner, "a") == [("x/y", "a/b")]
    assert seen == [CacheStats.CACHE_MISS, CacheStats.CACHE_HIT] * 2
