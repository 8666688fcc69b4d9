"""The overview's period rules and time-to-claim buckets (domain/funnel.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from provisiond.domain.funnel import (
    DELAY_BOUNDS,
    Period,
    bucket_label,
    delay_bucket,
    delay_seconds,
    median_bucket,
    parse_period,
)
from provisiond.errors import InvalidInput

TODAY = date(2026, 12, 5)


def test_presets_and_the_default_end_today() -> None:
    assert parse_period(days="7", first="", last="", today=TODAY) == Period(
        date(2026, 11, 29), TODAY, 7
    )
    default = parse_period(days=None, first=None, last=None, today=TODAY)
    assert (default.days, default.last, default.preset) == (30, TODAY, 30)
    # a preset wins over dates left in the form
    assert parse_period(days="90", first="2026-01-01", last="2026-01-02", today=TODAY).days == 90


def test_a_range_covers_whole_utc_days_both_included() -> None:
    p = parse_period(days="custom", first=" 2026-02-01 ", last="2026-02-28", today=TODAY)
    assert (p.days, p.preset) == (28, None)
    assert p.start == datetime(2026, 2, 1, tzinfo=UTC)
    assert p.end == datetime(2026, 3, 1, tzinfo=UTC)
    assert p.day_keys()[0] == "2026-02-01"
    assert p.day_keys()[-1] == "2026-02-28"
    one = parse_period(days="", first="2026-12-05", last="2026-12-05", today=TODAY)
    assert one.days == 1


@pytest.mark.parametrize(
    ("days", "first", "last", "problems"),
    [
        ("5", "", "", {"days"}),
        ("custom", "", "", {"from"}),
        ("", "2026-02-30", "2026-03-01", {"from"}),
        ("", "2026-03-01", "yesterday", {"to"}),
        ("", "2026-03-01", "", {"to"}),
        ("", "", "2026-03-01", {"from"}),
        ("", "2026-03-02", "2026-03-01", {"to"}),
        ("", "2025-01-01", "2026-01-02", {"to"}),  # 367 days
        ("", "2026-12-06", "2026-12-07", {"from", "to"}),  # after today
        ("", "nope", "never", {"from", "to"}),
    ],
)
def test_a_bad_period_names_its_fields(
    days: str, first: str, last: str, problems: set[str]
) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_period(days=days, first=first, last=last, today=TODAY)
    assert {p.field for p in err.value.problems} == problems


def test_a_year_and_a_day_is_the_longest_range() -> None:
    assert parse_period(days="", first="2025-12-05", last="2026-12-05", today=TODAY).days == 366


def test_time_to_claim_in_whole_seconds_and_its_buckets() -> None:
    t = datetime(2026, 1, 1, 0, 0, 0, 900_000, tzinfo=UTC)
    assert delay_seconds(t, t + timedelta(milliseconds=200)) == 1  # whole seconds apart
    assert delay_bucket(0) == 0
    assert delay_bucket(59) == 0
    assert delay_bucket(60) == 1
    assert delay_bucket(10**9) == len(DELAY_BOUNDS)
    assert bucket_label(0) == "under 1 min"
    assert bucket_label(6) == "2 h to 4 h"
    assert bucket_label(10) == "1 day to 2 days"
    assert bucket_label(len(DELAY_BOUNDS)) == "180 days or more"


def test_the_median_is_the_bucket_of_the_lower_middle_claim() -> None:
    assert median_bucket({}) is None
    assert median_bucket({3: 1}) == 3
    assert median_bucket({1: 2, 5: 2}) == 1  # four claims: the second is the lower middle
    assert median_bucket({1: 2, 5: 3}) == 5
