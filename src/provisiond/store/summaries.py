"""Compaction of the overview's daily summaries (``device_days``, ``funnel_days``).

The triggers of migration 0020 add each change to the writer's own summary row: on
PostgreSQL the row of its backend (``slot`` = ``pg_backend_pid()``), so that concurrent
writers never wait for one another on a summary row. Rows multiply with the backends that
ever wrote (a pool's, restarted, over months); the overview sums over slots, so it reads
more rows the longer an instance runs. Compaction folds the rows of every other slot into
slot 0, which no backend writes (no process id is 0). On SQLite every row is slot 0
already: it finds nothing to do.

Safe against writers, without making them wait for it or deadlock with it: it takes the
rows to fold with ``FOR UPDATE SKIP LOCKED`` (a row a writer's transaction holds is left
for the next pass; a row locked is read as its latest committed version, and nobody changes
it until the compaction commits), deletes them and adds their sums to slot 0's rows in key
order (two compactions at once take disjoint rows and lock slot 0's rows in the same order).
The overview reads a summary in one statement: it sees the rows before the move or after
it, never both or neither.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, delete, func, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from provisiond.store.schema import device_days, funnel_days

#: The summaries, and the columns that key a row besides its slot.
SUMMARIES: tuple[tuple[Table, tuple[str, ...]], ...] = (
    (device_days, ("day", "group_key")),
    (funnel_days, ("day", "group_key", "model_key")),
)


class SummaryRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def spread(self) -> int:
        """How many summary rows are not slot 0's (what a compaction would fold)."""
        total = 0
        for table, _ in SUMMARIES:
            query = select(func.count()).select_from(table).where(table.c.slot != 0)
            total += int((await self._conn.execute(query)).scalar_one())
        return total

    async def compact(self, limit: int) -> int:
        """Fold at most ``limit`` rows of each summary into slot 0's; the most folded of
        one summary (``limit``: there may be more)."""
        return max([await self._compact(table, keys, limit) for table, keys in SUMMARIES])

    async def _compact(self, table: Table, keys: tuple[str, ...], limit: int) -> int:
        """Fold at most ``limit`` rows of ``table`` that are not slot 0's into slot 0's rows
        of the same key (the rows writers hold now are left for later); how many folded."""
        key_columns = [table.c[k] for k in keys]
        counters = [c.name for c in table.c if c.name not in keys and c.name != "slot"]
        # READ COMMITTED: a row locked here is read as its latest committed version
        taken = (
            await self._conn.execute(
                select(*key_columns, table.c.slot, *(table.c[n] for n in counters))
                .where(table.c.slot != 0)
                .order_by(*key_columns, table.c.slot)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).all()
        if not taken:
            return 0
        await self._conn.execute(
            delete(table).where(
                tuple_(*key_columns, table.c.slot).in_([tuple(r[: len(keys) + 1]) for r in taken])
            )
        )
        sums: dict[tuple[Any, ...], list[int]] = {}
        for row in taken:
            into = sums.setdefault(tuple(row[: len(keys)]), [0] * len(counters))
            for i, value in enumerate(row[len(keys) + 1 :]):
                into[i] += int(value)
        insert = _insert(self._conn.dialect.name)(table).values(
            [
                {
                    **dict(zip(keys, key, strict=True)),
                    "slot": 0,
                    **dict(zip(counters, v, strict=True)),
                }
                for key, v in sorted(sums.items())  # slot 0's rows locked in key order
            ]
        )
        await self._conn.execute(
            insert.on_conflict_do_update(
                index_elements=[*keys, "slot"],
                set_={n: table.c[n] + insert.excluded[n] for n in counters},
            )
        )
        return len(taken)


def _insert(dialect: str) -> Any:
    return postgresql.insert if dialect == "postgresql" else sqlite.insert
