"""The event log: written in the transaction that made each event, read newest first.

No foreign keys: the log outlives what it describes (a deleted device's history stays
readable by its serial, a deleted group's by its path).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import false, func, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from provisiond.domain.events import Event, EventType, NewEvent
from provisiond.store.directory import subtree_clause
from provisiond.store.schema import events, groups

#: How many of the newest events a page of a subtree's audit log is looked for in first.
RECENT_EVENTS = 5000


def event_from_row(row: Any) -> Event:
    return Event(
        row.id,
        EventType(row.type),
        row.at,
        row.actor,
        row.device_id,
        row.serial,
        row.group_id,
        dict(row.data),
        row.group_path,
    )


def _group_path_of(event: NewEvent) -> Any:
    """The path the event keeps: the one given, else its group's path now."""
    if event.group_path is not None or event.group_id is None:
        return event.group_path
    return select(groups.c.path).where(groups.c.id == event.group_id).scalar_subquery()


@dataclass(frozen=True, slots=True)
class EventFilter:
    """What to read. ``subtrees``: the event's group path lies in every one of them (the
    caller's scope and the group asked for); ``nothing``: the filters exclude every event."""

    subtrees: tuple[str, ...] = ()
    serial: str | None = None
    actor: str | None = None
    types: tuple[EventType, ...] = ()
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    nothing: bool = False


def _where(query: Any, flt: EventFilter) -> Any:
    if flt.nothing:
        return query.where(false())
    for path in flt.subtrees:  # NULL (no group) is in no subtree
        query = query.where(subtree_clause(events.c.group_path, path))
    if flt.serial is not None:
        query = query.where(events.c.serial == flt.serial)
    if flt.actor is not None:
        query = query.where(events.c.actor == flt.actor)
    if flt.types:
        query = query.where(events.c.type.in_([t.value for t in flt.types]))
    if flt.since is not None:
        query = query.where(events.c.at >= flt.since)
    if flt.until is not None:
        query = query.where(events.c.at < flt.until)
    return query


class EventRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, event: NewEvent) -> int:
        result = await self._conn.execute(
            insert(events)
            .values(
                type=event.type.value,
                at=event.at,
                actor=event.actor,
                device_id=event.device_id,
                serial=event.serial,
                group_id=event.group_id,
                data=event.data,
                group_path=_group_path_of(event),
            )
            .returning(events.c.id)
        )
        return int(result.scalar_one())

    async def find(
        self,
        *,
        device_id: uuid.UUID | None = None,
        types: Iterable[EventType] | None = None,
        include_ids: Sequence[int] = (),
        after: int | None = None,
        limit: int = 100,
    ) -> list[Event]:
        query = select(events)
        if device_id is not None:
            cond = events.c.device_id == device_id
            if include_ids:
                cond = cond | events.c.id.in_(list(include_ids))
            query = query.where(cond)
        if types is not None:
            query = query.where(events.c.type.in_([t.value for t in types]))
        if after is not None:
            query = query.where(events.c.id > after)
        rows = await self._conn.execute(query.order_by(events.c.id).limit(limit))
        return [event_from_row(r) for r in rows]

    async def latest(self, limit: int) -> list[Event]:
        rows = await self._conn.execute(select(events).order_by(events.c.id.desc()).limit(limit))
        return [event_from_row(r) for r in rows]

    async def search(self, flt: EventFilter, *, before: int | None, limit: int) -> list[Event]:
        """Up to ``limit`` events matching ``flt``, newest first by id, older than id
        ``before``. Every filter is a WHERE clause that an index serves (serial, actor,
        type, group path, each with the id), so a page never reads past what it returns by
        much. A filter of the subtree only (the audit log of an admin) is looked for first
        among the RECENT_EVENTS ids below ``before``, read by id with the path compared as
        an expression: through the (group_path, id) index, SQLite would read every event of
        a busy subtree and sort them; a quiet subtree, which has fewer there, is read
        through that index. Time filters: :meth:`search_by_time`."""
        query = _where(select(events), flt).order_by(events.c.id.desc()).limit(limit)
        if before is not None:
            query = query.where(events.c.id < before)
        subtree_only = flt.subtrees and not (flt.serial or flt.actor or flt.types or flt.nothing)
        if subtree_only and flt.since is None and flt.until is None:
            top = before - 1 if before is not None else await self._newest()
            if top is None:
                return []
            recent = _where(select(events), replace(flt, subtrees=()))
            for path in flt.subtrees:
                recent = recent.where(subtree_clause(events.c.group_path.concat(""), path))
            recent = recent.where(events.c.id > top - RECENT_EVENTS, events.c.id <= top)
            rows = await self._conn.execute(recent.order_by(events.c.id.desc()).limit(limit))
            found = [event_from_row(r) for r in rows]
            if len(found) == limit:
                return found
        rows = await self._conn.execute(query)
        return [event_from_row(r) for r in rows]

    async def search_by_time(
        self, flt: EventFilter, *, before: tuple[datetime, int] | None, limit: int
    ) -> list[Event]:
        """Up to ``limit`` events matching ``flt`` (with a time filter), newest first by
        time (ties by id), before the event (time, id) ``before``: read backwards through
        the (at, id) index from ``until``, the subtree compared as an expression (through
        the path's index SQLite would read every event of the subtree in the period and
        sort them)."""
        query = _where(select(events), replace(flt, subtrees=()))
        for path in flt.subtrees:
            query = query.where(subtree_clause(events.c.group_path.concat(""), path))
        if before is not None:
            at, event_id = before
            query = query.where(
                events.c.at <= at,
                or_(events.c.at < at, events.c.id < event_id),
            )
        rows = await self._conn.execute(
            query.order_by(events.c.at.desc(), events.c.id.desc()).limit(limit)
        )
        return [event_from_row(r) for r in rows]

    async def _newest(self) -> int | None:
        newest = (await self._conn.execute(select(func.max(events.c.id)))).scalar()
        return None if newest is None else int(newest)

    async def ids_after(self, after: int, also: Sequence[int], limit: int) -> list[int]:
        """The ids of events after ``after``, and which of ``also`` exist now (an id a
        reader saw missing may belong to a transaction that commits later), in order."""
        cond = events.c.id > after
        if also:
            cond = or_(cond, events.c.id.in_(list(also)))
        rows = await self._conn.execute(
            select(events.c.id).where(cond).order_by(events.c.id).limit(limit)
        )
        return [int(r[0]) for r in rows]

    async def matching(self, flt: EventFilter, ids: Sequence[int]) -> list[Event]:
        """Which of the events ``ids`` match ``flt``, in id order."""
        if not ids:
            return []
        query = _where(select(events), flt).where(events.c.id.in_(list(ids)))
        rows = await self._conn.execute(query.order_by(events.c.id))
        return [event_from_row(r) for r in rows]
