"""The audit log: read it (filtered, paged, scoped) and follow it as events are committed.

Every event carries the subtree it belongs to (``group_path``, kept as it was when the
event happened). A caller sees the events its scope covers: an operator-wide caller every
one, a scoped one those of its subtree, never an event of no group (unclaimed stock, the
catalogue, operator actions). The scope is a WHERE clause, so a page is full or the log is
exhausted; it is never a page filtered after the fact.

The log has no foreign keys: a deleted device's history stays readable by its serial, a
deleted group's by its path.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from provisiond.domain.events import Event, EventType
from provisiond.domain.groups import parse_group_path
from provisiond.domain.limits import PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX
from provisiond.domain.scope import Scope, within
from provisiond.domain.serials import parse_serial
from provisiond.errors import InvalidCursor, InvalidInput, Problem
from provisiond.services.paging import Page
from provisiond.store.events import EventFilter
from provisiond.store.uow import UnitOfWork

ACTOR_MAX = 300
_RELATIVE = re.compile(r"(\d{1,9})\s*([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def encode_cursor(event_id: int) -> str:
    return base64.urlsafe_b64encode(f"e:{event_id}".encode()).decode().rstrip("=")


def encode_time_cursor(event: Event) -> str:
    """The cursor after ``event`` of a listing by time (one with a time filter)."""
    text = f"t:{event.at.astimezone(UTC).isoformat()}|{event.id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _raw_cursor(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return ""


def _not_a_cursor() -> InvalidCursor:
    return InvalidCursor(
        "the page cursor is not one provisiond gave out",
        problems=[Problem("is not a cursor from a previous page", "cursor")],
    )


def decode_cursor(cursor: str) -> int:
    raw = _raw_cursor(cursor)
    if raw.startswith("e:") and raw[2:].isdigit() and len(raw) < 24:
        return int(raw[2:])
    raise _not_a_cursor()


def decode_time_cursor(cursor: str) -> tuple[datetime, int]:
    """A listing by time's cursor: the (time, id) of the last event of the page before."""
    raw = _raw_cursor(cursor)
    at, _, event_id = raw[2:].partition("|")
    if raw.startswith("t:") and event_id.isdigit() and len(event_id) < 20 and len(at) < 40:
        try:
            moment = datetime.fromisoformat(at)
        except ValueError:
            raise _not_a_cursor() from None
        if moment.tzinfo is not None:
            return moment, int(event_id)
    raise _not_a_cursor()


def parse_time(text: str, *, now: datetime, field: str) -> datetime:
    """An ISO 8601 time (without a zone: UTC), or a time ago: ``90s``, ``15m``, ``2h``,
    ``7d``, ``1w``."""
    value = text.strip()
    relative = _RELATIVE.fullmatch(value)
    if relative:
        return now - timedelta(**{_UNITS[relative[2]]: int(relative[1])})
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        problem = Problem(
            "is not a time: give ISO 8601 (2026-05-01T12:00:00Z) or an age (15m, 2h, 7d)", field
        )
        raise InvalidInput(str(problem), problems=[problem]) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _kinds(kinds: Sequence[str], problems: list[Problem]) -> tuple[EventType, ...]:
    known = {t.value: t for t in EventType}
    wrong = [k for k in kinds if k.strip() not in known]
    if wrong:
        problems.append(
            Problem(
                f"{', '.join(map(repr, wrong))}: not an event kind; one of {', '.join(known)}",
                "kind",
            )
        )
    return tuple(dict.fromkeys(known[k.strip()] for k in kinds if k.strip() in known))


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def event_filter(  # noqa: C901 - one clause per optional filter of the events listing
    scope: Scope,
    *,
    serial: str | None = None,
    group: str | None = None,
    actor: str | None = None,
    kinds: Sequence[str] = (),
    since: datetime | None = None,
    until: datetime | None = None,
) -> EventFilter:
    """The filter a caller with ``scope`` asked for, checked (every problem at once). A
    group outside the scope matches nothing, as a group that never had an event: whether
    another customer's group exists is not told."""
    problems: list[Problem] = []
    clean_serial = path = clean_actor = None
    if serial is not None:
        try:
            clean_serial = parse_serial(serial)
        except InvalidInput as err:
            problems += err.problems
    if group is not None:
        try:
            path = parse_group_path(group)
        except InvalidInput as err:
            problems += err.problems
    if actor is not None:
        clean_actor = actor.strip()
        if not clean_actor or len(clean_actor) > ACTOR_MAX:
            problems.append(Problem(f"must be 1 to {ACTOR_MAX} characters", "actor"))
    types = _kinds(kinds, problems)
    since, until = _aware(since), _aware(until)
    if since is not None and until is not None and since >= until:
        problems.append(Problem("must be before until", "since"))
    if problems:
        raise InvalidInput("; ".join(str(p) for p in problems), problems=problems)
    subtrees: tuple[str, ...] = ()
    nothing = False
    if path is not None and scope.covers(path):
        subtrees = (path,)  # inside the scope (or operator-wide): the group asked for
    elif scope.group_path is not None:
        subtrees = (scope.group_path,)
        # a group above the scope: the scope's part of it; beside it: nothing
        nothing = path is not None and not within(scope.group_path, path)
    return EventFilter(
        subtrees=subtrees,
        serial=clean_serial,
        actor=clean_actor,
        types=types,
        since=since,
        until=until,
        nothing=nothing,
    )


async def list_events(  # noqa: PLR0913 - the listing's filters, each optional, as the API and CLI offer them
    uow: UnitOfWork,
    *,
    scope: Scope,
    serial: str | None = None,
    group: str | None = None,
    actor: str | None = None,
    kinds: Sequence[str] = (),
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: str | None = None,
    limit: int = PAGE_SIZE_DEFAULT,
) -> Page[Event]:
    """One page of the events ``scope`` may read, newest first (by id; with a time filter,
    by time, then id); ``next_cursor`` fetches the next (older) page with the same filters.
    Filters: device serial (a deleted device's too), group subtree, actor, kinds, time
    (``since`` inclusive, ``until`` exclusive)."""
    if not 1 <= limit <= PAGE_SIZE_MAX:
        problem = Problem(f"must be between 1 and {PAGE_SIZE_MAX}", "limit")
        raise InvalidInput(str(problem), problems=[problem])
    flt = event_filter(
        scope, serial=serial, group=group, actor=actor, kinds=kinds, since=since, until=until
    )
    if since is not None or until is not None:  # a period: newest first by time
        after = decode_time_cursor(cursor) if cursor else None
        async with uow.read():
            items = await uow.events.search_by_time(flt, before=after, limit=limit + 1)
        more = len(items) > limit
        items = items[:limit]
        return Page(items, encode_time_cursor(items[-1]) if more and items else None)
    before = decode_cursor(cursor) if cursor else None
    async with uow.read():
        items = await uow.events.search(flt, before=before, limit=limit + 1)
    more = len(items) > limit
    items = items[:limit]
    return Page(items, encode_cursor(items[-1].id) if more and items else None)


# ----------------------------------------------------------------------------- follow

LOOKBACK = 1000  # ids below the last at the start that may still be committing
GAPS_MAX = 10_000


@dataclass
class EventFollower:
    """New events of a filter as they are committed, polled by id.

    An id is taken when an event is written, not when it is committed: on PostgreSQL a
    transaction may commit after a later one did, so an id missing below the highest seen
    is a gap to look at again, until it appears or ``grace`` seconds have passed (a rolled
    back transaction leaves its ids unused for ever). Events are returned in the order they
    are seen committed, each once.
    """

    uow: Callable[[], UnitOfWork]
    flt: EventFilter
    high: int = 0  # the highest id seen committed
    grace: float = 600.0
    clock: Callable[[], float] = time.monotonic
    gaps: dict[int, float] = field(default_factory=dict)  # id -> when first seen missing
    behind: bool = False  # the last poll saw a full batch: poll again at once

    async def prime(self) -> None:
        """Start at the newest event: what is there now is not new; ids missing just
        below it are gaps."""
        async with self.uow().read() as uow:
            newest = await uow.events.latest(1)
            start = max(0, newest[0].id - LOOKBACK) if newest else 0
            ids = await uow.events.ids_after(start, (), LOOKBACK + 1)
        self.high = start
        self._saw(ids)

    def _saw(self, ids: Sequence[int]) -> list[int]:
        """Record the ids seen; the ones that are new."""
        now = self.clock()
        fresh = [i for i in ids if i > self.high or self.gaps.pop(i, None) is not None]
        present = set(ids)
        top = max(ids, default=self.high)
        for missing in range(max(self.high + 1, top - GAPS_MAX), top):
            if missing not in present:
                self.gaps[missing] = now
        self.high = max(self.high, top)
        for gap, since in list(self.gaps.items()):
            if now - since > self.grace:
                del self.gaps[gap]
        while len(self.gaps) > GAPS_MAX:  # dicts keep insertion order: the oldest first
            del self.gaps[next(iter(self.gaps))]
        return fresh

    async def poll(self, batch: int = 1000) -> list[Event]:
        """The events of the filter committed since the last poll (at most ``batch`` ids
        are looked at; poll again for more)."""
        async with self.uow().read() as uow:
            ids = await uow.events.ids_after(self.high, sorted(self.gaps), batch)
            self.behind = len(ids) >= batch
            fresh = self._saw(ids)
            return await uow.events.matching(self.flt, fresh) if fresh else []


async def tail_events(
    uow: Callable[[], UnitOfWork],
    *,
    scope: Scope,
    serial: str | None = None,
    group: str | None = None,
    actor: str | None = None,
    kinds: Sequence[str] = (),
    limit: int = 10,
) -> tuple[list[Event], EventFollower]:
    """The last ``limit`` events ``scope`` may read (oldest first), and a follower that
    returns every one committed after them."""
    if not 0 <= limit <= PAGE_SIZE_MAX:
        problem = Problem(f"must be between 0 and {PAGE_SIZE_MAX}", "limit")
        raise InvalidInput(str(problem), problems=[problem])
    flt = event_filter(scope, serial=serial, group=group, actor=actor, kinds=kinds)
    follower = EventFollower(uow, flt)
    await follower.prime()  # first: an event committed after this is the follower's
    if not limit:
        return [], follower
    async with uow().read() as reader:
        last = await reader.events.search(flt, before=follower.high + 1, limit=limit)
    # an event missing when the follower started is the follower's, even if it is here now
    return [e for e in reversed(last) if e.id not in follower.gaps], follower
