"""Labels: 10,000 labels as one PDF, time and peak memory (and 1,000 to show memory is flat).

    python benchmarks/labels.py [--labels 10000] [--rounds 3]

A fresh SQLite database with `--labels` devices (imported with the CLI); then
`provisiond labels --out labels.pdf` (A4 3x8 sheets, device URLs) as its own process, for
all of them and for a tenth of them (`--serial-prefix`): wall time from process start to
exit and the process's peak resident memory. Prints JSON lines: each round, then medians.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from common import DATA, PROVISIOND, fresh_database, machine, measure, median, provisiond


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps({"machine": machine()}), flush=True)
    DATA.mkdir(parents=True, exist_ok=True)
    database = fresh_database("sqlite", "bench_labels")
    provisiond("db", "upgrade", database=database)
    provisiond("models", "add", "UNO-2483G", database=database)
    source = DATA / "labels-devices.csv"
    source.write_text(
        "serial,model\n" + "".join(f"LBL-{n:05d},UNO-2483G\n" for n in range(args.labels))
    )
    provisiond(
        "devices",
        "import",
        str(source),
        "--credentials-out",
        str(DATA / "labels-creds.csv"),
        "--overwrite",
        database=database,
    )
    env = {
        "PROVISIOND_DATABASE_URL": database,
        "PROVISIOND_PUBLIC_URL": "https://provision.example.com",
    }
    out = DATA / "labels.pdf"
    results: dict[str, list[dict[str, float]]] = {"all": [], "tenth": []}
    for round_no in range(1, args.rounds + 1):
        for which, extra in (("all", []), ("tenth", ["--serial-prefix", "LBL-00"])):
            run = measure([*PROVISIOND, "labels", "--out", str(out), "--json", *extra], env)
            count = json.loads(run.stdout)["labels"]
            r = {
                "labels": count,
                "seconds": round(run.seconds, 2),
                "peak_rss_mb": round(run.peak_rss_mb, 1),
                "pdf_mb": round(os.path.getsize(out) / 1e6, 2),
            }
            results[which].append(r)
            print(json.dumps({"round": round_no, **r}), flush=True)
    for which, runs in results.items():
        print(
            json.dumps(
                {
                    "labels": runs[0]["labels"],
                    "median_seconds": median([r["seconds"] for r in runs]),
                    "median_peak_rss_mb": median([r["peak_rss_mb"] for r in runs]),
                    "pdf_mb": runs[0]["pdf_mb"],
                    "set": which,
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
