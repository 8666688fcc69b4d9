"""Listing and filtering devices, one page of 50, at 1,000,000 devices: p50 and p99.

    python benchmarks/list_devices.py [--rows 1000000] [--repeat 200] [--backends sqlite,postgresql]

Uses the database bulk_import.py left behind (bench_import_<backend>) when it holds the rows,
else imports benchmarks/.data/devices-<rows>.csv first. Each query is timed twice:
- "service": the use case the API and CLI call (services.devices.list_devices), in process,
  on a warm connection pool;
- "http": GET /api/v1/devices from `provisiond serve` (a separate process, one worker) on
  loopback, with a keep-alive client: what an API user sees, JSON encoding included.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from common import (
    DATA,
    PG_SERVER,
    PROVISIOND,
    SITES,
    device_csv,
    free_port,
    fresh_database,
    measure,
    prepare_catalogue,
    wait_until_serving,
)
from provisiond.bootstrap import open_container
from provisiond.domain.scope import Scope
from provisiond.services.devices import list_devices
from provisiond.settings import load_settings

OPERATOR = Scope.operator()
QUERIES: dict[str, dict[str, Any]] = {
    "no filter": {},
    "group: organisation (20% of devices)": {"group": "Kanarra"},
    "group: customer (4%)": {"group": "Kanarra/Customer-3"},
    "group: site (0.4%)": {"group": SITES[17]},
    "tag firmware=2.3.4 (1%)": {"tags": {"firmware": "2.3.4"}},
    "tag and group": {"tags": {"firmware": "2.3.4"}, "group": "Kanarra/Customer-1"},
    "state claimed (20%)": {"state": "claimed"},
    "model (50%)": {"model": "KG-450"},
    "serial prefix": {"serial_prefix": "70B3D57E000A"},
}


def database_for(backend: str, rows: int) -> str:
    url = (
        f"sqlite:///{DATA / 'bench_import_sqlite.db'}"
        if backend == "sqlite"
        else f"{PG_SERVER}/bench_import_postgresql"
    )
    try:
        count = asyncio.run(_count(url))
    except Exception:  # absent or empty: build it
        count = 0
    if count >= rows:
        return url
    url = fresh_database(backend, f"bench_import_{backend}")
    prepare_catalogue(url)
    creds = DATA / f"creds-list-{backend}.csv"
    creds.unlink(missing_ok=True)
    measure(
        [*PROVISIOND, "devices", "import", str(device_csv(rows)), "--credentials-out", str(creds)],
        env={"PROVISIOND_DATABASE_URL": url},
    )
    return url


async def _count(url: str) -> int:
    from sqlalchemy import text

    async with (
        open_container(load_settings(database_url=url)) as c,
        c.database.engine.connect() as conn,
    ):
        return int((await conn.execute(text("SELECT count(*) FROM devices"))).scalar_one())


async def timed(fn: Callable[[], Awaitable[Any]], repeat: int) -> list[float]:
    await fn()  # warm the pool and the page cache
    out = []
    for _ in range(repeat):
        started = time.perf_counter()
        await fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


async def bench(url: str, backend: str, repeat: int) -> None:
    async with open_container(load_settings(database_url=url)) as c:
        for label, kwargs in QUERIES.items():

            async def query(kwargs: dict[str, Any] = kwargs) -> Any:
                return await list_devices(c.uow(), scope=OPERATOR, limit=50, **kwargs)

            page = await query()
            ms = await timed(query, repeat)
            print(
                json.dumps(
                    {
                        "backend": backend,
                        "via": "service",
                        "query": label,
                        "items": len(page.items),
                        "p50_ms": round(pct(ms, 50), 2),
                        "p99_ms": round(pct(ms, 99), 2),
                    }
                ),
                flush=True,
            )
        cursors: list[str | None] = [None]
        for _ in range(20):
            page = await list_devices(
                c.uow(), scope=OPERATOR, limit=50, group="Kanarra", cursor=cursors[-1]
            )
            cursors.append(page.next_cursor)
        walk: list[float] = []
        for cursor in cursors[:-1] * max(1, repeat // 20):
            started = time.perf_counter()
            await list_devices(c.uow(), scope=OPERATOR, limit=50, group="Kanarra", cursor=cursor)
            walk.append((time.perf_counter() - started) * 1000)
        print(
            json.dumps(
                {
                    "backend": backend,
                    "via": "service",
                    "query": "group pages 1-20 by cursor",
                    "p50_ms": round(pct(walk, 50), 2),
                    "p99_ms": round(pct(walk, 99), 2),
                }
            ),
            flush=True,
        )


def bench_http(url: str, backend: str, repeat: int) -> None:
    env = {**os.environ, "PROVISIOND_DATABASE_URL": url}
    made = subprocess.run(
        [*PROVISIOND, "tokens", "create", f"bench-{time.time_ns()}", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    token = json.loads(made.stdout)["secret"]
    port = free_port()
    server = subprocess.Popen(
        [*PROVISIOND, "serve", "--port", str(port), "--log-level", "warning"], env=env
    )
    try:
        wait_until_serving(port, "/readyz")
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}
        ) as client:
            for label, kwargs in QUERIES.items():
                params: list[tuple[str, str]] = [("limit", "50")]
                for key, value in kwargs.items():
                    if key == "tags":
                        params += [("tag", f"{k}={v}") for k, v in value.items()]
                    else:
                        params.append((key, value))
                answer = client.get("/api/v1/devices", params=params)
                answer.raise_for_status()
                ms = []
                for _ in range(repeat):
                    started = time.perf_counter()
                    client.get("/api/v1/devices", params=params).raise_for_status()
                    ms.append((time.perf_counter() - started) * 1000)
                print(
                    json.dumps(
                        {
                            "backend": backend,
                            "via": "http",
                            "query": label,
                            "items": len(answer.json()["items"]),
                            "p50_ms": round(pct(ms, 50), 2),
                            "p99_ms": round(pct(ms, 99), 2),
                        }
                    ),
                    flush=True,
                )
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    for backend in args.backends.split(","):
        url = database_for(backend, args.rows)
        asyncio.run(bench(url, backend, args.repeat))
        bench_http(url, backend, args.repeat)


if __name__ == "__main__":
    main()
