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
import os
import re
import subprocess
import sys
from pathlib import Path

from common import (
    PROVISIOND,
    free_port,
    fresh_database,
    machine,
    median,
    provisiond,
    query_scalar,
    wait_until_serving,
)

HERE = Path(__file__).resolve().parent


def wrk(port: int, seconds: int, connections: int, key: str, secret: str,
        prefix: str) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s",
         str(HERE / "provision.lua"), f"http://127.0.0.1:{port}", "--", key, secret, prefix],
        capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)

    def pct(label: str) -> float:
        m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        value, unit = float(m.group(1)), m.group(2)  # type: ignore[union-attr]
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    return {"rps": rate, "requests": total, "non_2xx": int(errors.group(1)) if errors else 0,
            "p50_ms": pct("50"), "p99_ms": pct("99")}


def run_ours(backend: str, args: argparse.Namespace, round_no: int) -> dict[str, float]:
    database = fresh_database(backend, f"bench_provision_{backend}")
    provisiond("db", "upgrade", database=database)
    made = json.loads(provisiond("profiles", "create", "bench", "--rate-limit", "1000000",
                                 "--source-rate-limit", "1000000", "--json",
                                 database=database).stdout)
    port = free_port()
    env = {**os.environ, "PROVISIOND_DATABASE_URL": database}
    server = subprocess.Popen([*PROVISIOND, "serve", "--port", str(port), "--log-level",
                               "warning"], env=env)
    try:
        wait_until_serving(port, "/healthz")
        result = wrk(port, args.seconds, args.connections, made["key"], made["secret"],
                     f"R{round_no}")
    finally:
        server.terminate()
        server.wait(timeout=60)
    result["devices"] = query_scalar(database, "SELECT count(*) FROM devices")
    return result


def run_floor(args: argparse.Namespace) -> dict[str, float]:
    port = free_port()
    server = subprocess.Popen([sys.executable, str(HERE / "baseline_app.py"), str(port)])
    try:
        wait_until_serving(port, "/api/v1/provision")
        return wrk(port, args.seconds, args.connections, "k", "s", "F")
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
    print(json.dumps({"machine": machine(), "connections": args.connections,
                      "seconds": args.seconds}), flush=True)
    results: dict[str, list[dict[str, float]]] = {b: [] for b in [*backends, "floor"]}
    for round_no in range(1, args.rounds + 1):
        for backend in backends:
            r = run_ours(backend, args, round_no)
            results[backend].append(r)
            print(json.dumps({"round": round_no, "backend": backend, **r}), flush=True)
        r = run_floor(args)
        results["floor"].append(r)
        print(json.dumps({"round": round_no, "backend": "floor (Starlette constant)", **r}),
              flush=True)
    floor = median([r["rps"] for r in results["floor"]])
    for backend in [*backends, "floor"]:
        rps = median([r["rps"] for r in results[backend]])
        print(json.dumps({"backend": backend, "median_rps": round(rps),
                          "median_p50_ms": median([r["p50_ms"] for r in results[backend]]),
                          "median_p99_ms": median([r["p99_ms"] for r in results[backend]]),
                          "ratio_to_floor": round(rps / floor, 2)}), flush=True)


if __name__ == "__main__":
    main()
