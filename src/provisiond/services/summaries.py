"""Upkeep of the overview's daily summaries: compaction of the writers' rows
(store/summaries.py says why they multiply and how folding them is safe)."""

from __future__ import annotations

from collections.abc import Callable

from provisiond.store.uow import UnitOfWork

#: Rows of one summary folded per transaction: its locks are held for one short statement.
COMPACT_BATCH = 1000
#: How often `provisiond serve` compacts (seconds): new rows appear as backends write. Once
#: a minute, as the sign-in counts: its lease (30 s) lapses only briefly between runs, which
#: the lease alerts allow (docs/operations.md); a pass with nothing to fold is one scan of
#: the summaries' slot column.
COMPACT_EVERY = 60.0


async def compact_summaries(uow: Callable[[], UnitOfWork], *, batch: int = COMPACT_BATCH) -> int:
    """Fold the summary rows of every writer's slot into slot 0 (PostgreSQL; on SQLite
    there are none), a batch per transaction, until a pass finds fewer than ``batch``
    (rows a writer holds now wait for the next compaction). How many rows were folded."""
    if not await summary_spread(uow()):  # a read: no write transaction when there is nothing
        return 0
    folded = 0
    while True:
        async with uow() as tx:
            done = await tx.summaries.compact(batch)
            await tx.commit()
        folded += done
        if done < batch:
            return folded


async def compact_summaries_step(uow: Callable[[], UnitOfWork]) -> int:
    """The background loop's step: one whole compaction, then rest for ``COMPACT_EVERY``
    (0: a step that found work is not repeated at once, as the loop would)."""
    await compact_summaries(uow)
    return 0


async def summary_spread(uow: UnitOfWork) -> int:
    """How many summary rows are not compacted (slot other than 0)."""
    async with uow.read():
        return await uow.summaries.spread()
