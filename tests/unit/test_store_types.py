"""Timestamps written by the raw SQLite paths are the text SQLAlchemy writes for the ORM."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite

from provisiond.store.types import UtcDateTime, sqlite_timestamp, utc_datetime

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
