"""A scoped read's statement: SQLAlchemy's compiled cache against compiling it every time.

    cd benchmarks && PYTHONPATH=../src ../.venv/bin/python scoped_read.py [--reads 2000]
        [--rounds 5] [--backends sqlite,postgresql]

The read is the device page's (DeviceRepository.find_by_serial, seen by a customer's scope:
the subtree clause, ``bytewise``, is in it) for a serial of another customer, so no row comes
back and the figure is the statement's own cost. Each round times ``--reads`` reads on each
of two connections, in an order that alternates between rounds: "cached", as provisiond runs
them, and "compiled", on a connection with the compiled cache off — what every such read cost
while the subtree clause could not be part of a cache key. CPU time of this process (the
PostgreSQL server's is not in it), per read; the median of the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from common import fresh_database, median, print_header
from provisiond.domain.scope import Scope
from provisiond.domain.users import Role
from provisiond.store import migrate
from provisiond.store.database import DatabaseOptions, create_engine
from provisiond.store.devices import DeviceRepository

SERIAL = "ACME-00000001"
SEEN_BY = Scope(Role.ADMIN, "Rival")


async def _reads(conn: Any, reads: int) -> float:
    repository = DeviceRepository(conn)
    started = time.process_time()
    for _ in range(reads):
        assert await repository.find_by_serial(SERIAL, seen_by=SEEN_BY) is None
    return (time.process_time() - started) / reads


async def _run(database: str, reads: int, rounds: int) -> dict[str, float]:
    engine = create_engine(database, DatabaseOptions())
    found: dict[str, list[float]] = {"cached": [], "compiled": []}
    try:
        async with engine.connect() as conn, engine.connect() as compiled:
            # (sets the option on that connection: AsyncConnection.execution_options is in place)
            await compiled.execution_options(compiled_cache=None)
            await _reads(conn, 100)  # the first compile, the page cache
            await _reads(compiled, 100)
            for n in range(rounds):
                order = [("cached", conn), ("compiled", compiled)]
                for name, c in order if n % 2 == 0 else order[::-1]:
                    found[name].append(await _reads(c, reads))
    finally:
        await engine.dispose()
    return {name: median(values) * 1e6 for name, values in found.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    print_header(reads=args.reads, rounds=args.rounds)
    for backend in args.backends.split(","):
        database = fresh_database(backend, f"bench_scoped_read_{backend}")
        migrate.upgrade(database)
        us = asyncio.run(_run(database, args.reads, args.rounds))
        print(
            f"{backend}: cached {us['cached']:.0f} us of CPU a read, compiled each time "
            f"{us['compiled']:.0f} us ({us['compiled'] - us['cached']:.0f} us more)",
            flush=True,
        )


if __name__ == "__main__":
    main()
