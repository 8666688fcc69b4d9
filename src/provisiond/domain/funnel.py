"""The onboarding funnel's rules: the period an admin looks at, and how the time from a
device's registration to its claim is measured and grouped.

The funnel follows a cohort: the devices *registered* in the period, and of those, how many
have been *provisioned* (a device's first self-provisioning) and *claimed* (owned by a user
or a group) so far. Its rates are over the registered: a device may be claimed before it
ever provisions (an imported device with its credentials), so "claimed of provisioned" would
not be a share of anything.

The time to claim is counted in whole seconds (the difference of the two moments' whole
Unix seconds) and kept in the buckets of :data:`DELAY_BOUNDS`, so that a summary of a
million devices can give it: the median is the bucket that holds the middle claim (the
lower middle of an even number).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from provisiond.domain.claims import ClaimProof, ClaimStatus
from provisiond.errors import InvalidInput, Problem

#: The periods offered as presets, in days (ending today).
PRESETS = (7, 30, 90)
DEFAULT_DAYS = 30
#: The longest period a custom range may cover, in days.
MAX_DAYS = 366

_MIN = 60
_HOUR = 3600
_DAY = 86400
#: Upper bounds (exclusive, seconds) of the time-to-claim buckets; the last bucket has none.
#: Migration 0020 copies them into its triggers: change both, and rebuild the summary.
DELAY_BOUNDS = (
    _MIN,
    5 * _MIN,
    15 * _MIN,
    30 * _MIN,
    _HOUR,
    2 * _HOUR,
    4 * _HOUR,
    8 * _HOUR,
    12 * _HOUR,
    _DAY,
    2 * _DAY,
    3 * _DAY,
    7 * _DAY,
    14 * _DAY,
    30 * _DAY,
    60 * _DAY,
    90 * _DAY,
    180 * _DAY,
)


def delay_seconds(registered: datetime, claimed: datetime) -> int:
    """The time to claim, as the summary counts it: whole Unix seconds apart."""
    return int(claimed.timestamp() // 1) - int(registered.timestamp() // 1)


def delay_bucket(seconds: int) -> int:
    """The bucket of a time to claim: how many bounds it has reached."""
    return sum(1 for bound in DELAY_BOUNDS if seconds >= bound)


def _span(seconds: int) -> str:
    if seconds % _DAY == 0:
        n, unit = seconds // _DAY, "day"
    elif seconds % _HOUR == 0:
        n, unit = seconds // _HOUR, "h"
    else:
        n, unit = seconds // _MIN, "min"
    if unit == "day":
        return f"{n} day" + ("s" if n != 1 else "")
    return f"{n} {unit}"


def bucket_label(bucket: int) -> str:
    """A bucket as people read it: "under 1 min", "2 h to 4 h", "180 days or more"."""
    if bucket <= 0:
        return f"under {_span(DELAY_BOUNDS[0])}"
    if bucket >= len(DELAY_BOUNDS):
        return f"{_span(DELAY_BOUNDS[-1])} or more"
    return f"{_span(DELAY_BOUNDS[bucket - 1])} to {_span(DELAY_BOUNDS[bucket])}"


def median_bucket(counts: dict[int, int]) -> int | None:
    """The bucket of the middle claim (the lower middle of an even number), or None."""
    total = sum(counts.values())
    if total == 0:
        return None
    middle = (total - 1) // 2  # 0-based rank of the lower middle
    seen = 0
    for bucket in sorted(counts):
        seen += counts[bucket]
        if seen > middle:
            return bucket
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class Period:
    """Whole UTC days, ``first`` to ``last`` included; ``preset`` when chosen as one."""

    first: date
    last: date
    preset: int | None = None

    @property
    def start(self) -> datetime:
        return datetime(self.first.year, self.first.month, self.first.day, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """The first moment after the period."""
        return self.start + timedelta(days=self.days)

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def day_keys(self) -> list[str]:
        return [(self.first + timedelta(days=i)).isoformat() for i in range(self.days)]


def _problem(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", problems=[Problem(message, field=field)])


def _date(text: str, field: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise _problem(field, f"{text.strip()!r} is not a date; write it as YYYY-MM-DD") from None


def parse_period(*, days: str | None, first: str | None, last: str | None, today: date) -> Period:
    """The period a form asks for: a preset (``days``: 7, 30 or 90, ending today) or a range
    (``first`` and ``last``, both included, at most MAX_DAYS, not after today); nothing
    given: the last DEFAULT_DAYS days. Problems name their field."""
    days = (days or "").strip()
    first = (first or "").strip()
    last = (last or "").strip()
    if days and days != "custom":
        if days not in {str(p) for p in PRESETS}:
            choices = ", ".join(str(p) for p in PRESETS)
            raise _problem("days", f"choose {choices} days, or a custom range")
        n = int(days)
        return Period(today - timedelta(days=n - 1), today, n)
    if not first and not last:
        if days == "custom":
            raise _problem("from", "give the first day of the range (YYYY-MM-DD)")
        return Period(today - timedelta(days=DEFAULT_DAYS - 1), today, DEFAULT_DAYS)
    return _range(first, last, today)


def _range(first: str, last: str, today: date) -> Period:
    problems: list[Problem] = []
    given: dict[str, date] = {}
    for field, text in (("from", first), ("to", last)):
        if not text:
            problems.append(Problem("give both days of the range (YYYY-MM-DD)", field=field))
            continue
        try:
            parsed = _date(text, field)
        except InvalidInput as err:
            problems.extend(err.problems)
            continue
        if parsed > today:
            problems.append(Problem(f"is after today ({today.isoformat()})", field=field))
        else:
            given[field] = parsed
    start, end = given.get("from"), given.get("to")
    if start is not None and end is not None:
        if end < start:
            problems.append(Problem("is before the first day of the range", field="to"))
        elif (end - start).days + 1 > MAX_DAYS:
            problems.append(Problem(f"the range may cover at most {MAX_DAYS} days", field="to"))
    if problems or start is None or end is None:
        raise InvalidInput(
            "the period is not valid: " + "; ".join(f"{p.field} {p.message}" for p in problems),
            problems=problems,
        )
    return Period(start, end)


@dataclass(frozen=True, slots=True)
class Counts:
    """A cohort's devices: registered, and of them provisioned and claimed so far."""

    registered: int = 0
    provisioned: int = 0
    claimed: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.registered + other.registered,
            self.provisioned + other.provisioned,
            self.claimed + other.claimed,
        )

    def rate(self, part: int) -> float | None:
        """``part`` as a share of the registered (None: nothing registered)."""
        return part / self.registered if self.registered else None


@dataclass(frozen=True, slots=True)
class ClaimEnding:
    """Claims that ended without a claim, alike in who, what and why: the claimer's group,
    the device's model (None: none), ``failed`` or ``expired``, the proof asked and whether
    it was given."""

    group_id: uuid.UUID | None
    model_id: uuid.UUID | None
    status: ClaimStatus
    proof: ClaimProof
    proven: bool
    count: int

    @property
    def reason(self) -> str:
        return reason_key(self.status, self.proof, proven=self.proven)


#: Why claims end without a claim (the claim state machine, domain/claims.py): a claim fails
#: only on too many wrong proofs; it expires when its window closes, before the proof or
#: after it (proven, but the device was not named and placed in time). Key (the summary's
#: column), status, words.
REASONS: tuple[tuple[str, ClaimStatus, str], ...] = (
    ("failed_codes", ClaimStatus.FAILED, "too many wrong claim codes"),
    ("failed_secrets", ClaimStatus.FAILED, "too many wrong device secrets"),
    ("expired_button", ClaimStatus.EXPIRED, "button not pressed in time"),
    ("expired_code", ClaimStatus.EXPIRED, "claim code not given in time"),
    ("expired_secret", ClaimStatus.EXPIRED, "device secret not given in time"),
    ("expired_none", ClaimStatus.EXPIRED, "not finished in time"),
    ("expired_proven", ClaimStatus.EXPIRED, "proven, not finished in time"),
)
REASON_LABELS = {key: label for key, _, label in REASONS}
REASON_STATUS = {key: status for key, status, _ in REASONS}


def reason_key(status: ClaimStatus, proof: ClaimProof, *, proven: bool) -> str:
    """The reason a failed or expired claim ended without a claim (a key of REASONS)."""
    if status is ClaimStatus.FAILED:
        return "failed_secrets" if proof is ClaimProof.DEVICE_SECRET else "failed_codes"
    if proven:
        return "expired_proven"
    return {
        ClaimProof.BUTTON: "expired_button",
        ClaimProof.CODE: "expired_code",
        ClaimProof.DEVICE_SECRET: "expired_secret",
        ClaimProof.NONE: "expired_none",
    }[proof]


def ending_reason(status: ClaimStatus, proof: ClaimProof, *, proven: bool) -> str:
    """The words of :func:`reason_key`."""
    return REASON_LABELS[reason_key(status, proof, proven=proven)]


@dataclass(frozen=True, slots=True)
class GroupFigures:
    """One group's figures over a period: its cohort, the claimed ones by time-to-claim
    bucket, and the claims its people started that failed or expired, by reason key."""

    counts: Counts
    delays: dict[int, int]
    endings: dict[str, int]


@dataclass(frozen=True, slots=True)
class ModelFigures:
    counts: Counts
    failed: int
    expired: int
