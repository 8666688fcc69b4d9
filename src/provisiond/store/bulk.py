"""The bulk-import write path: executemany on SQLite, COPY on PostgreSQL.

It runs inside the unit of work's transaction (the import is one transaction), on the
driver's own connection, because building SQLAlchemy parameter dictionaries for a million rows
costs more than the insert itself (benchmarks/bulk_import.py measures both).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from provisiond.store.schema import events
from provisiond.store.types import sqlite_timestamp

DEVICE_COLUMNS = (
    "id", "serial", "name", "model_id", "state", "group_id", "owner_user_id", "profile_id",
    "claim_code_hash", "registered_event_id", "created_at", "updated_at", "claimed_at",
)
TAG_COLUMNS = ("device_id", "serial", "key", "value")
CREDENTIAL_COLUMNS = ("id", "device_id", "type", "lookup", "secret_hash", "secret_sealed",
                      "created_at")

# (id, serial, name, model_id, state, group_id, owner_user_id, profile_id, claim_code_hash).
# Every row of one import shares
# the import's event and timestamp, given to write(); claimed devices get claimed_at = now.
# Ids are UUID.hex strings (32 hex digits): what SQLite stores, and what PostgreSQL's uuid
# input reads; the import makes a million of them, and UUID objects would cost a second more.
DeviceRow = tuple[str, str, str, str | None, str, str | None, str | None, str | None,
                  str | None]
TagRow = tuple[str, str, str, str]  # (device_id, serial, key, value)
# (id, device_id, type, lookup, secret_hash, secret_sealed)
CredentialRow = tuple[str, str, str, str | None, str | None, str | None]

_LOOKUP_CHUNK = 900


class BulkDeviceWriter:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self._sqlite = conn.dialect.name == "sqlite"

    async def _driver(self) -> Any:
        raw = await self._conn.get_raw_connection()
        return raw.driver_connection

    async def existing_serials(self, serials: Sequence[str]) -> set[str]:
        """Which of ``serials`` are registered already."""
        found: set[str] = set()
        driver = await self._driver()
        for start in range(0, len(serials), _LOOKUP_CHUNK):
            chunk = list(serials[start:start + _LOOKUP_CHUNK])
            if self._sqlite:
                marks = ",".join("?" * len(chunk))
                cursor = await driver.execute(
                    f"SELECT serial FROM devices WHERE serial IN ({marks})", chunk  # noqa: S608
                )
                found.update(r[0] for r in await cursor.fetchall())
                await cursor.close()
            else:
                async with driver.cursor() as cur:
                    await cur.execute(
                        "SELECT serial FROM devices WHERE serial = ANY(%s)", (chunk,)
                    )
                    found.update(r[0] for r in await cur.fetchall())
        return found

    async def write(self, device_rows: Sequence[DeviceRow], tag_rows: Sequence[TagRow],
                    credential_rows: Sequence[CredentialRow], *, event_id: int,
                    now: datetime) -> None:
        driver = await self._driver()
        try:
            if self._sqlite:
                await self._sqlite_write(driver, device_rows, tag_rows, credential_rows,
                                         event_id, sqlite_timestamp(now))
            else:
                await self._copy_write(driver, device_rows, tag_rows, credential_rows,
                                       event_id, now)
        except self._conn.dialect.loaded_dbapi.IntegrityError as err:
            # The driver's own error, raised past SQLAlchemy: wrap it as SQLAlchemy would, so
            # the unit of work maps it to the caller's conflict (a concurrent import won).
            raise IntegrityError("bulk device write", None, err) from err

    async def _copy_write(self, driver: Any, device_rows: Sequence[DeviceRow],
                          tag_rows: Sequence[TagRow], credential_rows: Sequence[CredentialRow],
                          event_id: int, now: datetime) -> None:
        await self._copy(driver, "devices", DEVICE_COLUMNS, [
            (*r, event_id, now, now, now if r[4] == "claimed" else None) for r in device_rows
        ])
        await self._copy(driver, "device_tags", TAG_COLUMNS, tag_rows)
        await self._copy(driver, "credentials", CREDENTIAL_COLUMNS,
                         [(*r, now) for r in credential_rows])

    @staticmethod
    async def _sqlite_write(driver: Any, device_rows: Sequence[DeviceRow],
                            tag_rows: Sequence[TagRow],
                            credential_rows: Sequence[CredentialRow], event_id: int,
                            now: str) -> None:
        # SQLAlchemy's Uuid stores 32 hex digits on SQLite; UtcDateTime stores naive UTC text.
        if device_rows:
            await driver.executemany(
                "INSERT INTO devices (id, serial, name, model_id, state, group_id, owner_user_id,"
                " profile_id, claim_code_hash, registered_event_id, created_at, updated_at,"
                " claimed_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (*r, event_id, now, now, now if r[5] is not None else None)
                    for r in device_rows
                ],
            )
        if tag_rows:
            await driver.executemany(
                "INSERT INTO device_tags (device_id, serial, key, value) VALUES (?,?,?,?)",
                tag_rows,
            )
        if credential_rows:
            await driver.executemany(
                "INSERT INTO credentials (id, device_id, type, lookup, secret_hash,"
                " secret_sealed, created_at) VALUES (?,?,?,?,?,?,?)",
                [(*r, now) for r in credential_rows],
            )

    @staticmethod
    async def _copy(driver: Any, table: str, columns: Sequence[str],
                    rows: Sequence[tuple[Any, ...]]) -> None:
        if not rows:
            return
        async with driver.cursor() as cur:
            statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
            async with cur.copy(statement) as copy:
                for row in rows:
                    await copy.write_row(row)

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
