"""Bulk import of N devices from CSV, each with a fresh credential, against the raw floor.

    python benchmarks/bulk_import.py [--rows 1000000] [--rounds 3] [--backends sqlite,postgresql]

Each round, on each backend, in this order:
- ours: `provisiond devices import FILE --credentials-out CREDS.csv` as a process on a freshly
  migrated database (wall time end to end, process start included; peak RSS of the process);
- floor: the same rows (devices, their tags, their credentials) inserted into the same
  migrated schema with no validation and no hashing: one `executemany` per table and batch
  in one transaction on SQLite (same pragmas), `COPY` on PostgreSQL; the rows are built
  before the clock starts.
Prints one JSON line per measurement, then the medians and ratios.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from common import (
    DATA,
    PROVISIOND,
    device_csv,
    fresh_database,
    machine,
    measure,
    median,
    prepare_catalogue,
)

FLOOR = Path(__file__).with_name("bulk_import_floor.py")


def run_ours(backend: str, source: Path) -> dict[str, float]:
    database = fresh_database(backend, f"bench_import_{backend}")
    prepare_catalogue(database)
    creds = DATA / f"creds-{backend}.csv"
    creds.unlink(missing_ok=True)
    m = measure(
        [*PROVISIOND, "devices", "import", str(source), "--credentials-out", str(creds), "--json"],
        env={"PROVISIOND_DATABASE_URL": database},
    )
    summary = json.loads(m.stdout)
    with creds.open() as f:
        secrets = sum(1 for _ in csv.reader(f)) - 1
    assert secrets == summary["imported"], (secrets, summary)
    return {"seconds": m.seconds, "peak_rss_mb": m.peak_rss_mb, "imported": summary["imported"]}


def run_floor(backend: str, source: Path) -> dict[str, float]:
    database = fresh_database(backend, f"bench_floor_{backend}")
    prepare_catalogue(database)
    m = measure([sys.executable, str(FLOOR), database, str(source)])
    return {"seconds": float(m.stdout.strip()), "peak_rss_mb": m.peak_rss_mb}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    source = device_csv(args.rows)
    backends = args.backends.split(",")
    print(
        json.dumps(
            {
                "machine": machine(),
                "rows": args.rows,
                "at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        ),
        flush=True,
    )
    results: dict[str, dict[str, list[dict[str, float]]]] = {
        b: {"ours": [], "floor": []} for b in backends
    }
    for round_no in range(1, args.rounds + 1):
        for backend in backends:
            for kind, run in (("ours", run_ours), ("floor", run_floor)):
                r = run(backend, source)
                results[backend][kind].append(r)
                print(
                    json.dumps({"round": round_no, "backend": backend, "kind": kind, **r}),
                    flush=True,
                )
    for backend in backends:
        ours = median([r["seconds"] for r in results[backend]["ours"]])
        floor = median([r["seconds"] for r in results[backend]["floor"]])
        rss = max(r["peak_rss_mb"] for r in results[backend]["ours"])
        print(
            json.dumps(
                {
                    "backend": backend,
                    "median_seconds": round(ours, 2),
                    "rows_per_second": round(args.rows / ours),
                    "floor_median_seconds": round(floor, 2),
                    "ratio_to_floor": round(ours / floor, 2),
                    "peak_rss_mb": round(rss),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
