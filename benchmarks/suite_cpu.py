"""Where the test suite's CPU goes: a pytest plugin that records each test's CPU time, and a
report of the totals (docs/performance.md, "The test suite").

    rm -rf /tmp/suite-cpu; PYTHONPATH=benchmarks CI=true .venv/bin/pytest -p suite_cpu \\
        -n 4 --dist worksteal -q            # any pytest selection
    python benchmarks/suite_cpu.py          # totals, the dearest tests and files

Each test's CPU is its process's (user + system, every thread: the in-process servers
included) plus its reaped children's (the ``provisiond`` processes, brokers and browsers it
started and waited for), from ``getrusage``, around its setup, call and teardown. A shared
server's CPU (PostgreSQL's) is not in it. Lines go to ``$SUITE_CPU_DIR`` (default
``/tmp/suite-cpu``), one file per pytest process.
"""

from __future__ import annotations

import collections
import json
import os
import resource
import sys
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

OUT = Path(os.environ.get("SUITE_CPU_DIR", "/tmp/suite-cpu"))


def _cpu() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None]:
    own, children = _cpu()
    started = time.monotonic()
    try:
        return (yield)
    finally:
        own_after, children_after = _cpu()
        OUT.mkdir(parents=True, exist_ok=True)
        line = {
            "test": item.nodeid,
            "own": own_after - own,
            "children": children_after - children,
            "wall": time.monotonic() - started,
        }
        with (OUT / f"{os.getpid()}.jsonl").open("a") as f:
            f.write(json.dumps(line) + "\n")


def report(top: int = 25) -> None:
    rows: list[dict[str, Any]] = [
        json.loads(line) for path in OUT.glob("*.jsonl") for line in path.open()
    ]
    if not rows:
        sys.exit(f"nothing in {OUT}: run pytest with -p suite_cpu first")

    def cpu(r: dict[str, Any]) -> float:
        return float(r["own"] + r["children"])

    total = sum(map(cpu, rows))
    print(
        f"{len(rows)} tests: CPU {total:.0f} s (own {sum(r['own'] for r in rows):.0f} s, "
        f"children {sum(r['children'] for r in rows):.0f} s); "
        f"wall, summed over the processes, {sum(r['wall'] for r in rows):.0f} s"
    )
    print(f"\nthe {top} dearest tests (CPU s, wall s):")
    for r in sorted(rows, key=cpu, reverse=True)[:top]:
        print(f"{cpu(r):7.1f} {r['wall']:7.1f}  {r['test']}")
    files: collections.Counter[str] = collections.Counter()
    for r in rows:
        files[r["test"].split("::")[0]] += cpu(r)
    print(f"\nthe {top} dearest files (CPU s):")
    for name, seconds in files.most_common(top):
        print(f"{seconds:7.1f}  {name}")


if __name__ == "__main__":
    report()
