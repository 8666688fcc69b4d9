"""The bulk-import write path: one statement per table and batch on SQLite, COPY on PostgreSQL.

It runs inside the unit of work's transaction (the import is one transaction), on the
driver's own connection, because building SQLAlchemy parameter dictionaries for a million rows
costs more than the insert itself (benchmarks/bulk_import.py measures both).

On SQLite a batch goes to the database as one JSON text per table, inserted by
``INSERT … SELECT … FROM json_each(?)``: the whole batch is then one step of the driver's
thread, which holds no GIL while SQLite works, so the importer can read and check the next
batch meanwhile (with ``executemany`` the driver thread takes the GIL back for every row and
the two threads mostly wait for each other). On PostgreSQL the COPY of a batch, in text
provisiond formats itself, runs as a task while the importer reads on; the server works on
its own core meanwhile. :meth:`BulkDeviceWriter.write` therefore returns once the batch is
on its way; the next ``write``, :meth:`~BulkDeviceWriter.drain` and
:meth:`~BulkDeviceWriter.discard` wait for it.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Coroutine, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from provisiond.store.schema import events
from provisiond.store.types import sqlite_timestamp

DEVICE_COLUMNS = (
    "id",
    "serial",
    "name",
    "model_id",
    "state",
    "group_id",
    "owner_user_id",
    "profile_id",
    "claim_code_hash",
    "registered_event_id",
    "created_at",
    "updated_at",
    "claimed_at",
)
TAG_COLUMNS = ("device_id", "serial", "key", "value")
CREDENTIAL_COLUMNS = (
    "id",
    "device_id",
    "type",
    "lookup",
    "secret_hash",
    "secret_sealed",
    "created_at",
)

# (id, serial, name, model_id, state, group_id, owner_user_id, profile_id, claim_code_hash).
# Every row of one import shares
# the import's event and timestamp, given to write(); claimed devices get claimed_at = now.
# Ids are UUID.hex strings (32 hex digits): what SQLite stores, and what PostgreSQL's uuid
# input reads; the import makes a million of them, and UUID objects would cost a second more.
DeviceRow = tuple[str, str, str, str | None, str, str | None, str | None, str | None, str | None]
TagRow = tuple[str, str, str, str]  # (device_id, serial, key, value)
# (id, device_id, type, lookup, secret_hash, secret_sealed)
CredentialRow = tuple[str, str, str, str | None, str | None, str | None]


_NULL = "\\N"  # NULL in COPY's text format
_COPY_SPECIAL = re.compile(r"[\\\t\n\r]")


def _copy_text(value: str) -> str:
    """A value in COPY's text format: backslash, tab, newline and carriage return escaped
    (ids, serials, states and hashes never hold them; names and tags may)."""
    if _COPY_SPECIAL.search(value) is None:
        return value
    return (
        value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    )


def _copy_optional(value: str | None) -> str:
    return _NULL if value is None else _copy_text(value)


def _json_insert(
    table: str, columns: Sequence[str], row_width: int, constants: Sequence[str]
) -> str:
    """``INSERT INTO table (columns) SELECT value->>0, …, constants FROM json_each(?1)``: the
    first ``row_width`` columns come from each JSON array, the rest are SQL expressions of the
    bound constants (?2, ?3)."""
    picks = [f"value->>{i}" for i in range(row_width)]
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) "  # noqa: S608 - fixed names
        f"SELECT {', '.join([*picks, *constants])} FROM json_each(?1)"
    )


# ?1 the batch's rows as JSON arrays, ?2 the import's event id, ?3 its timestamp.
_SQLITE_DEVICES = _json_insert(
    "devices",
    DEVICE_COLUMNS,
    9,
    ["?2", "?3", "?3", "CASE WHEN value->>5 IS NULL THEN NULL ELSE ?3 END"],
)
_SQLITE_TAGS = _json_insert("device_tags", TAG_COLUMNS, 4, [])
_SQLITE_CREDENTIALS = _json_insert("credentials", CREDENTIAL_COLUMNS, 6, ["?3"])
# Compact, without the circularity check: a third less time than json.dumps for row lists.
_to_json = json.JSONEncoder(ensure_ascii=False, check_circular=False, separators=(",", ":")).encode
_SQLITE_EXISTING = "SELECT serial FROM devices WHERE serial IN (SELECT value FROM json_each(?))"


class _PostgresLookup:
    """A lookup asked while a batch may be on its way (PostgreSQL): run before the next batch
    is sent (so it does not wait for that batch), or when awaited."""

    def __init__(self, writer: BulkDeviceWriter, serials: Sequence[str]) -> None:
        self._writer = writer
        self._serials = list(serials)
        self._found: set[str] | None = None

    async def resolve(self) -> set[str]:
        if self._found is None:
            self._found = await self._writer.postgres_existing(self._serials)
        return self._found

    def __await__(self) -> Any:
        return self.resolve().__await__()


class BulkDeviceWriter:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self._sqlite = conn.dialect.name == "sqlite"
        self._queued: list[asyncio.Future[Any]] = []  # statements and COPYs not yet awaited
        self._lookups: list[_PostgresLookup] = []  # asked, not yet run (PostgreSQL)

    @property
    def turn_every(self) -> int:
        """How many records a caller may read or build between two turns of the event loop
        while batches are written. PostgreSQL: 2,000 (about 30 ms of work), since a COPY
        sends its data only when the event loop runs (5,000 measured 2 s slower for a
        million devices). SQLite: 5,000, since its statements run on the driver's thread
        anyway; the turns only let `serve` answer other requests during an import (every
        2,000 measured 0.6 s slower)."""
        return 5_000 if self._sqlite else 2_000

    async def _driver(self) -> Any:
        raw = await self._conn.get_raw_connection()
        return raw.driver_connection

    async def existing_serials(self, serials: Sequence[str]) -> set[str]:
        """Which of ``serials`` are registered already, asked and answered now."""
        if self._sqlite:
            return await self._sqlite_existing(list(serials))
        return await self.postgres_existing(serials)

    def lookup(self, serials: Sequence[str]) -> Awaitable[set[str]]:
        """Which of ``serials`` are registered already, asked now, answered when awaited.

        On SQLite the query is queued at once behind the batches being written; on
        PostgreSQL it runs before the next batch is sent. Either way the caller can build
        the batch in hand while the database works.
        """
        if self._sqlite:
            return self._queue(self._sqlite_existing(list(serials)))
        pending = _PostgresLookup(self, serials)
        self._lookups.append(pending)
        return pending

    async def _sqlite_existing(self, serials: list[str]) -> set[str]:
        driver = await self._driver()
        rows = await driver.execute_fetchall(_SQLITE_EXISTING, (_to_json(serials),))
        return {r[0] for r in rows}

    async def postgres_existing(self, serials: Sequence[str]) -> set[str]:
        driver = await self._driver()
        async with driver.cursor() as cur:
            # Never prepared: a plan cached while the import's table was small (a sequential
            # scan) would be kept as it grows inside the transaction, each lookup then reading
            # every device imported so far.
            await cur.execute(
                "SELECT serial FROM devices WHERE serial = ANY(%s)", (list(serials),), prepare=False
            )
            return {r[0] for r in await cur.fetchall()}

    def _queue(self, work: Coroutine[Any, Any, Any]) -> asyncio.Future[Any]:
        future = asyncio.ensure_future(work)
        self._queued.append(future)
        return future

    async def write(
        self,
        device_rows: Sequence[DeviceRow],
        tag_rows: Sequence[TagRow],
        credential_rows: Sequence[CredentialRow],
        *,
        event_id: int,
        now: datetime,
    ) -> None:
        """Insert one batch: wait for the previous one, start this one and return;
        :meth:`drain` waits for the last. Meanwhile the caller gives the event loop a turn
        every :attr:`turn_every` records."""
        await self.drain()
        driver = await self._driver()
        if self._sqlite:
            self._sqlite_queue(
                driver, device_rows, tag_rows, credential_rows, event_id, sqlite_timestamp(now)
            )
        else:
            lookups, self._lookups = self._lookups, []
            for pending in lookups:
                await pending.resolve()
            self._queue(
                self._copy_write(driver, device_rows, tag_rows, credential_rows, event_id, now)
            )
        # Let the work start: SQLite's statements go on the driver thread's queue, in order;
        # the COPY sends what the connection takes.
        await asyncio.sleep(0)

    def _conflict(self, err: Exception) -> IntegrityError:
        # The driver's own error, raised past SQLAlchemy: wrap it as SQLAlchemy would, so
        # the unit of work maps it to the caller's conflict (a concurrent import won).
        return IntegrityError("bulk device write", None, err)

    async def drain(self) -> None:
        """Wait for everything queued; the first failure is raised (as a conflict if it is
        a constraint)."""
        queued, self._queued = self._queued, []
        results = await asyncio.gather(*queued, return_exceptions=True)
        for result in results:
            if isinstance(result, self._conn.dialect.loaded_dbapi.IntegrityError):
                raise self._conflict(result) from result
            if isinstance(result, BaseException):
                raise result

    async def discard(self) -> None:
        """Wait for everything queued and drop its outcome: the import is failing anyway,
        and its rollback must not overtake statements still queued on the connection."""
        queued, self._queued = self._queued, []
        self._lookups = []
        await asyncio.gather(*queued, return_exceptions=True)

    def _sqlite_queue(
        self,
        driver: Any,
        device_rows: Sequence[DeviceRow],
        tag_rows: Sequence[TagRow],
        credential_rows: Sequence[CredentialRow],
        event_id: int,
        now: str,
    ) -> None:
        # SQLAlchemy's Uuid stores 32 hex digits on SQLite; UtcDateTime stores naive UTC text.
        for statement, rows, constants in (
            (_SQLITE_DEVICES, device_rows, (event_id, now)),
            (_SQLITE_TAGS, tag_rows, ()),
            (_SQLITE_CREDENTIALS, credential_rows, (None, now)),
        ):
            if rows:
                self._queue(driver.execute(statement, (_to_json(rows), *constants)))

    async def _copy_write(
        self,
        driver: Any,
        device_rows: Sequence[DeviceRow],
        tag_rows: Sequence[TagRow],
        credential_rows: Sequence[CredentialRow],
        event_id: int,
        now: datetime,
    ) -> None:
        # COPY's text format, made here in one pass per table: three times faster than
        # psycopg's write_row for these rows, and this time is not overlapped with the
        # server's (docs/performance.md).
        at = now.isoformat()
        await self._copy(
            driver,
            "devices",
            DEVICE_COLUMNS,
            [
                f"{i}\t{serial}\t{_copy_text(name)}\t{model or _NULL}\t{state}\t{group or _NULL}\t"
                f"{owner or _NULL}\t{profile or _NULL}\t{code or _NULL}\t{event_id}\t{at}\t{at}\t"
                f"{at if group else _NULL}\n"
                for i, serial, name, model, state, group, owner, profile, code in device_rows
            ],
        )
        await self._copy(
            driver,
            "device_tags",
            TAG_COLUMNS,
            [
                f"{device}\t{serial}\t{_copy_text(key)}\t{_copy_text(value)}\n"
                for device, serial, key, value in tag_rows
            ],
        )
        await self._copy(
            driver,
            "credentials",
            CREDENTIAL_COLUMNS,
            [
                f"{i}\t{device}\t{kind}\t{_copy_optional(lookup)}\t{_copy_optional(digest)}\t"
                f"{_copy_optional(sealed)}\t{at}\n"
                for i, device, kind, lookup, digest, sealed in credential_rows
            ],
        )

    @staticmethod
    async def _copy(driver: Any, table: str, columns: Sequence[str], lines: list[str]) -> None:
        if not lines:
            return
        async with driver.cursor() as cur:
            statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
            async with cur.copy(statement) as copy:
                await copy.write("".join(lines))

    async def refresh_statistics(self) -> None:
        """Bring the planner's statistics up to date after a large import (PostgreSQL).

        SQLite is left alone: its listing queries name their index by their shape (see
        DeviceRepository.search), and it keeps no statistics unless ANALYZE was run once.
        """
        if not self._sqlite:
            await self._conn.execute(text("ANALYZE devices, device_tags, credentials"))

    async def finish_event(self, event_id: int, data: dict[str, Any]) -> None:
        """Fill in the import event's summary before the transaction commits."""
        await self._conn.execute(update(events).where(events.c.id == event_id).values(data=data))
