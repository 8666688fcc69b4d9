"""When an operator token expires: `--expires 30d`, an ISO date, or a date and time."""

from datetime import UTC, datetime, timedelta

import pytest

from provisiond.domain.tokens import parse_expiry
from provisiond.errors import InvalidInput

NOW = datetime(2026, 12, 5, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12h", NOW + timedelta(hours=12)),
        ("30d", NOW + timedelta(days=30)),
        (" 8W ", NOW + timedelta(weeks=8)),
        ("2027-01-31", datetime(2027, 1, 31, tzinfo=UTC)),
        ("2027-01-31T12:00", datetime(2027, 1, 31, 12, tzinfo=UTC)),
        ("2027-01-31T12:00:00+02:00", datetime(2027, 1, 31, 10, tzinfo=UTC)),
        ("2027-01-31 12:00Z", datetime(2027, 1, 31, 12, tzinfo=UTC)),
    ],
)
def test_spans_dates_and_times(text: str, expected: datetime) -> None:
    at = parse_expiry(text, now=NOW)
    assert at == expected
    assert at.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    [
        "",
        "soon",
        "0d",
        "30",
        "30y",
        "-1d",
        "2026-12-05",
        "2026-12-05T09:30:00Z",
        "2027-02-30",
        "1234567d",
    ],
)
def test_anything_else_or_not_in_the_future_is_refused_naming_the_field(text: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_expiry(text, now=NOW, field="--expires")
    assert err.value.problems[0].field == "--expires"
