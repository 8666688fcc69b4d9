"""HTTP self-provisioning throughput and latency, against a bare Starlette floor.

    python benchmarks/provision_http.py [--rounds 3] [--seconds 10] [--connections 64]
                                        [--backends sqlite,postgresql]

Needs wrk (`apt-get install wrk`). Each round, per backend: a freshly migrated database with
one allow-create profile (limits raised out of the way), `provisiond serve` (one process,
SQLite synchronous=FULL: every answer follows a durable commit), then wrk with 2 threads and
64 connections posting ThingsBoard provision requests, each for a new device; then, in the
same round, the same load against benchmarks/baseline_app.py (a Starlette endpoint
answering a constant). Afterwards the database must hold one device per successful
request. Prints one JSON line per measurement, then medians and the ratio to the floor.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from common import (
    bench_profile,
    free_port,
    fresh_database,
    machine,
    median,
    provisiond,
    query_scalar,
    rounds,
    serving,
    wait_until_serving,
    wrk,
)

HERE = Path(__file__).resolve().parent


def run_ours(backend: str, args: argparse.Namespace, round_no: int) -> dict[str, float]:
    database = fresh_database(backend, f"bench_provision_{backend}")
    provisiond("db", "upgrade", database=database)
    made = bench_profile(database)
    with serving(database, "--no-mqtt") as port:
        result = wrk(
            port,
            HERE / "provision.lua",
            [made["key"], made["secret"], f"R{round_no}"],
            seconds=args.seconds,
            connections=args.connections,
        )
    result["devices"] = query_scalar(database, "SELECT count(*) FROM devices")
    return result


def run_floor(args: argparse.Namespace) -> dict[str, float]:
    port = free_port()
    server = subprocess.Popen([sys.executable, str(HERE / "baseline_app.py"), str(port)])
    try:
        wait_until_serving(port, "/api/v1/provision")
        return wrk(
            port,
            HERE / "provision.lua",
            ["k", "s", "F"],
            seconds=args.seconds,
            connections=args.connections,
        )
    finally:
        server.terminate()
        server.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    backends = args.backends.split(",")
    print(
        json.dumps(
            {"machine": machine(), "connections": args.connections, "seconds": args.seconds}
        ),
        flush=True,
    )

    def run(backend: str, round_no: int) -> dict[str, float]:
        # the floor is measured in the same round as provisiond, after it
        return run_floor(args) if backend == "floor" else run_ours(backend, args, round_no)

    results = rounds([*backends, "floor"], args.rounds, run)
    floor = median([r["rps"] for r in results["floor"]])
    for backend, runs in results.items():
        rps = median([r["rps"] for r in runs])
        print(
            json.dumps(
                {
                    "backend": backend,
                    "median_rps": round(rps),
                    "median_p50_ms": median([r["p50_ms"] for r in runs]),
                    "median_p99_ms": median([r["p99_ms"] for r in runs]),
                    "ratio_to_floor": round(rps / floor, 2),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
