"""The CSV files of a million-device import: writing the credentials file's lines, and reading
the import file, in seconds per million rows.

    python benchmarks/csv_files.py [--rows 1000000] [--rounds 5]
    python benchmarks/ab.py OLD/src NEW/src --runs 3 -- csv_files.py --rounds 3

Writing: ``credential_csv`` on batches of 20,000 rows as an import makes them (serial, device
id, ``access-token``, a fresh split token), built before the clock starts. Reading:
``read_import`` over ``benchmarks/.data/devices-1000000.csv`` (the bulk-import benchmark's
file), every record consumed. provisiond comes from ``PYTHONPATH`` (or the installed
package), so ``ab.py`` can compare two trees. Prints JSON lines: each round, then medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from common import device_csv, machine
from provisiond.services.hashing import new_split_tokens
from provisiond.services.ids import canonical, new_id_hexes
from provisiond.services.import_formats import ImportFormat, read_import
from provisiond.services.registration import credential_csv

BATCH = 20_000


def batches(rows: int) -> list[list[tuple[str, str, str, str]]]:
    out = []
    for start in range(0, rows, BATCH):
        n = min(BATCH, rows - start)
        ids = new_id_hexes(2 * n)
        tokens = new_split_tokens(ids[1::2])
        out.append(
            [
                (f"70B3D57E{start + i:08X}", canonical(ids[2 * i]), "access-token", tokens[i][0])
                for i in range(n)
            ]
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps({"machine": machine()}), flush=True)
    secrets = batches(args.rows)
    source = device_csv(args.rows)
    writes, reads = [], []
    for round_no in range(1, args.rounds + 1):
        started = time.perf_counter()
        for batch in secrets:
            credential_csv(batch)
        write_s = time.perf_counter() - started
        started = time.perf_counter()
        with source.open("rb") as f:
            records = sum(1 for _ in read_import(f, ImportFormat.CSV))
        read_s = time.perf_counter() - started
        writes.append(write_s)
        reads.append(read_s)
        print(
            json.dumps(
                {
                    "round": round_no,
                    "backend": "none",
                    "rows": args.rows,
                    "records": records,
                    "write_credentials_s": round(write_s, 3),
                    "read_import_s": round(read_s, 3),
                }
            ),
            flush=True,
        )
    print(
        json.dumps(
            {
                "rows": args.rows,
                "median_write_credentials_s": round(statistics.median(writes), 3),
                "median_read_import_s": round(statistics.median(reads), 3),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
