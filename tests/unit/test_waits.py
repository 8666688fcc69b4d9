"""A wait a person reads: minutes and seconds, never "299 s"."""

from __future__ import annotations

import pytest

from provisiond.domain.text import format_wait


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0, "1 s"),
        (0.2, "1 s"),
        (1, "1 s"),
        (44.6, "45 s"),
        (59, "59 s"),
        (59.6, "1 min"),
        (60, "1 min"),
        (61, "1 min 1 s"),
        (119.4, "1 min 59 s"),
        (299, "4 min 59 s"),
        (300, "5 min"),
        (3600, "60 min"),
        (3601, "60 min 1 s"),
    ],
)
def test_a_wait_reads_in_minutes_and_seconds(seconds: float, shown: str) -> None:
    assert format_wait(seconds) == shown
