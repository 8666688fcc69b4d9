"""Two source trees on one benchmark, interleaved in one run: the A/B docs/performance.md
reports when a change could cost throughput.

    python benchmarks/ab.py OLD/src NEW/src [--runs 3] -- provision_http.py --rounds 1 \\
        --seconds 10 --backends sqlite

Runs the benchmark script ``--runs`` times per tree, alternating (A, B, A, B …), each time
with that tree's ``src`` first on ``PYTHONPATH`` (the benchmarks start ``python -m
provisiond``, so the server runs that tree's code). Prints every round line the benchmark
prints, tagged with its tree, then per tree and backend the median of each figure. A tree is
typically a ``git worktree`` of the older commit.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from common import median

HERE = Path(__file__).resolve().parent


def run_once(src: Path, command: list[str]) -> list[dict[str, object]]:
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = subprocess.run(
        [sys.executable, str(HERE / command[0]), *command[1:]],
        env=env,
        cwd=HERE,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line for line in map(json.loads, out.splitlines()) if "round" in line]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("a", type=Path, help="the src folder of tree A (e.g. the old code)")
    parser.add_argument("b", type=Path, help="the src folder of tree B")
    parser.add_argument("--runs", type=int, default=3)
    argv = sys.argv[1:]
    if "--" not in argv:
        parser.error("give the benchmark after --: ab.py A B -- provision_http.py …")
    split = argv.index("--")
    args, command = parser.parse_args(argv[:split]), argv[split + 1 :]
    trees = {"A": args.a.resolve(), "B": args.b.resolve()}
    print(
        json.dumps({"trees": {k: str(v) for k, v in trees.items()}, "command": command}), flush=True
    )
    lines: dict[tuple[str, str], list[dict[str, object]]] = {}
    for run in range(1, args.runs + 1):
        for tree, src in trees.items():
            for line in run_once(src, command):
                print(json.dumps({"tree": tree, "run": run, **line}), flush=True)
                lines.setdefault((tree, str(line.get("backend"))), []).append(line)
    for (tree, backend), runs in sorted(lines.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        figures = {
            k: median([float(r[k]) for r in runs])  # type: ignore[arg-type]
            for k, v in runs[0].items()
            if isinstance(v, int | float) and k != "round"
        }
        print(
            json.dumps({"tree": tree, "backend": backend, "runs": len(runs), **figures}), flush=True
        )


if __name__ == "__main__":
    main()
