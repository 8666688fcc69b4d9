"""The raw floor of bulk_import.py: insert the rows an import writes, nothing else.

    python benchmarks/bulk_import_floor.py DATABASE_URL FILE.csv   # prints seconds

Rows (devices with their tags and credentials, ids, hashes) are built before the clock
starts; the clock covers the inserts and the commit only: executemany per table and batch in
one transaction on SQLite (WAL, synchronous=FULL, foreign keys, as provisiond sets them),
COPY on PostgreSQL.
"""

from __future__ import annotations

import csv
import os
import sqlite3
import sys
import time
from datetime import UTC, datetime

import psycopg

from provisiond.services.ids import new_ids

BATCH = 5_000


def build_rows(
    source: str, lookup: dict[str, dict[str, str]], now: object, event: int
) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]], list[tuple[object, ...]]]:
    devices, tags, creds = [], [], []
    with open(source, newline="") as f:
        reader = csv.reader(f)
        next(reader)
        rows = list(reader)
    ids = new_ids(2 * len(rows))
    hashes = os.urandom(32 * len(rows)).hex()
    for i, (serial, name, model, group, firmware) in enumerate(rows):
        dev, cred = ids[2 * i].hex, ids[2 * i + 1].hex
        group_id = lookup["groups"].get(group)
        state = "claimed" if group_id else "registered"
        devices.append(
            (
                dev,
                serial,
                name,
                lookup["models"][model],
                state,
                group_id,
                None,
                event,
                now,
                now,
                now if group_id else None,
            )
        )
        tags.append((dev, serial, "firmware", firmware))
        creds.append((cred, dev, "access-token", None, hashes[64 * i : 64 * i + 64], now))
    return devices, tags, creds


def sqlite_floor(path: str, source: str) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in (
        "journal_mode=WAL",
        "synchronous=FULL",
        "foreign_keys=ON",
        "busy_timeout=10000",
        "cache_size=-65536",
    ):
        conn.execute(f"PRAGMA {pragma}")
    lookup = {
        "models": {n: i for i, n in conn.execute("SELECT id, name FROM device_models")},
        "groups": {p: i for i, p in conn.execute("SELECT id, path FROM groups")},
    }
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    event = conn.execute(
        "INSERT INTO events (type, at, actor, data) VALUES "
        "('devices.imported', ?, 'floor', '{}') RETURNING id",
        (now,),
    ).fetchone()[0]
    devices, tags, creds = build_rows(source, lookup, now, event)
    started = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    for i in range(0, len(devices), BATCH):
        conn.executemany(
            "INSERT INTO devices (id, serial, name, model_id, state, group_id, "
            "owner_user_id, registered_event_id, created_at, updated_at, claimed_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            devices[i : i + BATCH],
        )
        conn.executemany(
            "INSERT INTO device_tags (device_id, serial, key, value) VALUES (?,?,?,?)",
            tags[i : i + BATCH],
        )
        conn.executemany(
            "INSERT INTO credentials (id, device_id, type, lookup, secret_hash, "
            "created_at) VALUES (?,?,?,?,?,?)",
            creds[i : i + BATCH],
        )
    conn.execute("COMMIT")
    return time.perf_counter() - started


def postgres_floor(url: str, source: str) -> float:
    with psycopg.connect(url) as conn:
        lookup = {
            "models": {n: str(i) for i, n in conn.execute("SELECT id, name FROM device_models")},
            "groups": {p: str(i) for i, p in conn.execute("SELECT id, path FROM groups")},
        }
        now = datetime.now(UTC)
        event = conn.execute(
            "INSERT INTO events (type, at, actor, data) VALUES "
            "('devices.imported', %s, 'floor', '{}') RETURNING id",
            (now,),
        ).fetchone()[0]  # type: ignore[index]
        conn.commit()
        devices, tags, creds = build_rows(source, lookup, now, event)
        started = time.perf_counter()
        with conn.cursor() as cur:
            for table, columns, rows in (
                (
                    "devices",
                    "id, serial, name, model_id, state, group_id, owner_user_id, "
                    "registered_event_id, created_at, updated_at, claimed_at",
                    devices,
                ),
                ("device_tags", "device_id, serial, key, value", tags),
                ("credentials", "id, device_id, type, lookup, secret_hash, created_at", creds),
            ):
                with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
        conn.commit()
        return time.perf_counter() - started


if __name__ == "__main__":
    url, source = sys.argv[1], sys.argv[2]
    if url.startswith("sqlite:///"):
        seconds = sqlite_floor(url.removeprefix("sqlite:///"), source)
    else:
        seconds = postgres_floor(url, source)
    print(f"{seconds:.3f}")
