"""Claim start -> claim page, at 1,000,000 registered devices.

    python benchmarks/claim_start.py [--devices 1000000] [--claims 1000] [--concurrency 1,4]
                                     [--rounds 3] [--backends sqlite,postgresql]

Per backend: a fresh database, `--devices` devices imported with `provisiond devices import`
under a button-proof profile (the benchmarks' usual file: 20% already claimed for 50 sites),
an installer; `provisiond serve` as its own process. Each round the client (signed in) starts
`--claims` claims on distinct unclaimed serials, `--concurrency` at a time (one person
scanning after another: 1; several at once: 4): POST /provision
(the scan), then GET the claim page it redirects to. The latency of one claim start is both
requests together. Rounds reuse the database (each claims other devices). Prints JSON lines:
per round, then the medians of the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from claim_events import PASSWORD, sign_in
from common import (
    DATA,
    device_csv,
    fresh_database,
    machine,
    median,
    prepare_catalogue,
    provisiond,
    serving,
)


async def seed(database: str) -> None:
    from provisiond.bootstrap import open_container
    from provisiond.domain.profiles import ProfileSpec
    from provisiond.domain.scope import Scope
    from provisiond.domain.users import UserSpec
    from provisiond.services import directory, profiles
    from provisiond.settings import load_settings

    async with open_container(load_settings(database_url=database)) as c:
        await directory.create_user(
            c.uow(),
            scope=Scope.operator(),
            spec=UserSpec(
                "tech@kanarra.example", password=PASSWORD, role="installer", group="Kanarra"
            ),
            actor="bench",
            now=c.now(),
        )
        await profiles.create_profile(
            c.uow(),
            scope=Scope.operator(),
            spec=ProfileSpec("buttons", claim_proof="button"),
            actor="bench",
            now=c.now(),
        )


def unclaimed_serials(path: Path) -> list[str]:
    with path.open() as f:
        return [row["serial"] for row in csv.DictReader(f) if not row["group"]]


async def run_round(port: int, serials: list[str], concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        csrf = await sign_in(client)
        pending = iter(serials)

        async def worker() -> None:
            for serial in pending:
                started = time.perf_counter()
                r = await client.post(
                    "/provision", data={"serial": serial, "target": "me", "csrf": csrf}
                )
                assert r.status_code == 303, r.text[:300]
                page = await client.get(r.headers["location"])
                assert page.status_code == 200, page.text[:300]
                latencies.append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "claims": len(latencies),
        "per_second": round(len(latencies) / elapsed, 1),
        "p50_ms": round(latencies[len(latencies) // 2], 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1_000_000)
    parser.add_argument("--claims", type=int, default=1000)
    parser.add_argument("--concurrency", default="1,4")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    os.environ["PROVISIOND_CLAIMS__RATE_PER_MINUTE"] = "1000000"
    print(json.dumps({"machine": machine()}), flush=True)
    source = device_csv(args.devices)
    free = unclaimed_serials(source)
    random.Random(1).shuffle(free)
    for backend in args.backends.split(","):
        database = fresh_database(backend, f"bench_claim_start_{args.devices}")
        prepare_catalogue(database)
        asyncio.run(seed(database))
        provisiond(
            "devices",
            "import",
            str(source),
            "--profile",
            "buttons",
            "--credentials-out",
            str(DATA / f"claim-start-{backend}.csv"),
            "--overwrite",
            database=database,
        )
        used = 0
        with serving(database) as port:
            for concurrency in (int(n) for n in args.concurrency.split(",")):
                runs: list[dict[str, Any]] = []
                for round_no in range(args.rounds):
                    chunk = free[used : used + args.claims]
                    used += args.claims
                    r = asyncio.run(run_round(port, chunk, concurrency))
                    runs.append(r)
                    print(
                        json.dumps(
                            {
                                "round": round_no + 1,
                                "backend": backend,
                                "devices": args.devices,
                                "concurrency": concurrency,
                                **r,
                            }
                        ),
                        flush=True,
                    )
                print(
                    json.dumps(
                        {
                            "backend": backend,
                            "devices": args.devices,
                            "concurrency": concurrency,
                            "median_per_second": median([r["per_second"] for r in runs]),
                            "median_p50_ms": median([r["p50_ms"] for r in runs]),
                            "median_p99_ms": median([r["p99_ms"] for r in runs]),
                        }
                    ),
                    flush=True,
                )


if __name__ == "__main__":
    main()
