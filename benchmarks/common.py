"""Shared by the benchmarks: data generation, fresh databases, running and measuring."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / ".data"
PROVISIOND = [sys.executable, "-m", "provisiond"]
PG_SERVER = os.environ.get("PROVISIOND_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
SITES = [
    f"Kanarra/Customer-{c}/Region-{r}/Site-{s}"
    for c in range(5)
    for r in range(2)
    for s in range(5)
]
MODELS = ["UNO-2483G", "KG-450"]


def device_csv(rows: int) -> Path:
    """serial,name,model,group,firmware — 20% of rows claimed for one of 50 sites."""
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"devices-{rows}.csv"
    if path.exists():
        return path
    rng = random.Random(rows)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as f:
        f.write("serial,name,model,group,firmware\n")
        for i in range(rows):
            group = SITES[i % len(SITES)] if rng.random() < 0.2 else ""
            f.write(
                f"70B3D57E{i:08X},Generator {i},{MODELS[i % 2]},{group},"
                f"2.{rng.randrange(10)}.{rng.randrange(10)}\n"
            )
    tmp.rename(path)
    return path


def fresh_database(backend: str, name: str) -> str:
    if backend == "sqlite":
        path = DATA / f"{name}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return f"sqlite:///{path}"
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{PG_SERVER}/{name}"


def provisiond(*args: str, database: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PROVISIOND_DATABASE_URL": database}
    return subprocess.run([*PROVISIOND, *args], env=env, capture_output=True, text=True, check=True)


def prepare_catalogue(database: str) -> None:
    """Migrate, then add the models and the 50 sites (in process: 52 CLI starts cost ~100 s)."""
    provisiond("db", "upgrade", database=database)
    asyncio.run(_catalogue(database))


async def _catalogue(database: str) -> None:
    from provisiond.bootstrap import open_container
    from provisiond.domain.scope import Scope
    from provisiond.services import directory
    from provisiond.settings import load_settings

    async with open_container(load_settings(database_url=database)) as c:
        for model in MODELS:
            await directory.add_model(
                c.uow(), scope=Scope.operator(), name=model, actor="bench", now=c.now()
            )
        for site in SITES:
            await directory.create_group(
                c.uow(), scope=Scope.operator(), path=site, actor="bench", now=c.now()
            )


@dataclass
class Measured:
    seconds: float
    peak_rss_mb: float
    stdout: str


def measure(argv: list[str], env: dict[str, str] | None = None) -> Measured:
    """Run a process; its wall time and its own peak resident memory (from wait4)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, env={**os.environ, **(env or {})}, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"{argv} failed:\n{err.read()}")
        return Measured(elapsed, usage.ru_maxrss / 1024, out.read())


def query_scalar(database: str, sql: str) -> int:
    """One number from a benchmark's database, by its URL (sqlite:/// or postgresql://)."""
    if database.startswith("sqlite:///"):
        with sqlite3.connect(database.removeprefix("sqlite:///")) as conn:
            return int(conn.execute(sql).fetchone()[0])
    with psycopg.connect(database) as conn:
        row = conn.execute(sql).fetchone()
        assert row is not None
        return int(row[0])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_serving(port: int, path: str, timeout: float = 60) -> None:
    """Poll a server that another process is starting until it answers ``path``."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}{path}", timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)  # another process is starting: nothing to wait on but its port
    raise RuntimeError(f"nothing answered http://127.0.0.1:{port}{path}")


def median(values: list[float]) -> float:
    return statistics.median(values)


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    try:
        with psycopg.connect(f"{PG_SERVER}/postgres") as conn:
            pg = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
    except psycopg.Error:
        pg = "unavailable"
    return {
        "cpu": f"{os.cpu_count()} x {cpu}",
        "memory": f"{mem:.0f} GiB",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": pg,
        "os": platform.platform(),
    }


def print_header(**fields: object) -> None:
    """A run's first JSON line: the machine, what the run was asked for, the load average."""
    print(json.dumps({"machine": machine(), **fields, "load_average": os.getloadavg()}), flush=True)


def load_options(parser: argparse.ArgumentParser, *, sessions: int, backends: str) -> None:
    """The options of the load generators: rounds, seconds a round, sessions, backends."""
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--sessions", type=int, default=sessions)
    parser.add_argument("--backends", default=backends)


def wrk(
    port: int, script: Path, script_args: list[str], *, seconds: int, connections: int
) -> dict[str, float]:
    """Run wrk (one thread, the method of ../shared/PERFORMANCE.md) with a Lua script; its
    rate, request count, non-2xx answers and p50/p99 latency in milliseconds."""
    import re

    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
            "--",
            *script_args,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)

    def pct(label: str) -> float:
        m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        value, unit = float(m.group(1)), m.group(2)  # type: ignore[union-attr]
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    return {
        "rps": rate,
        "requests": total,
        "non_2xx": int(errors.group(1)) if errors else 0,
        "p50_ms": pct("50"),
        "p99_ms": pct("99"),
    }


def bench_profile(database: str, *options: str) -> dict[str, str]:
    """A provisioning profile named "bench" with its rate limits out of the way; its key and
    secret (``provisiond profiles create --json``)."""
    made: dict[str, str] = json.loads(
        provisiond(
            "profiles",
            "create",
            "bench",
            "--rate-limit",
            "1000000",
            "--source-rate-limit",
            "1000000",
            "--json",
            *options,
            database=database,
        ).stdout
    )
    return made


@contextmanager
def serving(database: str, *options: str) -> Iterator[int]:
    """`provisiond serve` on ``database`` as its own process on a free port (and the given
    options), until the block ends; yields the HTTP port."""
    with served(database, *options) as (port, _):
        yield port


@contextmanager
def served(database: str, *options: str) -> Iterator[tuple[int, int]]:
    """As :func:`serving`; yields the HTTP port and the server's process id (to read the
    CPU it spends: :func:`process_cpu`)."""
    port = free_port()
    env = {**os.environ, "PROVISIOND_DATABASE_URL": database}
    server = subprocess.Popen(
        [*PROVISIOND, "serve", "--port", str(port), "--log-level", "warning", *options], env=env
    )
    try:
        wait_until_serving(port, "/healthz")
        yield port, server.pid
    finally:
        server.terminate()
        server.wait(timeout=60)


def process_waiting(pid: int) -> float:
    """Seconds the threads of process ``pid`` have spent runnable but waiting for a CPU
    (the run queue: /proc/<pid>/task/*/schedstat, Linux), added up: how much more CPU it
    would have used on a machine of its own."""
    waited = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            waited += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue  # a thread that ended meanwhile
    return waited / 1e9


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system, all its threads) the process ``pid`` has used so far,
    from /proc/<pid>/stat (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def rounds(
    backends: list[str], count: int, run: Callable[[str, int], dict[str, float]]
) -> dict[str, list[dict[str, float]]]:
    """``run(backend, round_no)`` for every round and backend, interleaved; prints each."""
    results: dict[str, list[dict[str, float]]] = {b: [] for b in backends}
    for round_no in range(1, count + 1):
        for backend in backends:
            r = run(backend, round_no)
            results[backend].append(r)
            print(json.dumps({"round": round_no, "backend": backend, **r}), flush=True)
    return results


def print_medians(results: dict[str, list[dict[str, float]]]) -> None:
    """One line per backend: the medians of its rounds' rate, p50 and p99."""
    for backend, runs in results.items():
        print(
            json.dumps(
                {
                    "backend": backend,
                    "median_rps": median([r["rps"] for r in runs]),
                    "median_p50_ms": median([r["p50_ms"] for r in runs]),
                    "median_p99_ms": median([r["p99_ms"] for r in runs]),
                }
            ),
            flush=True,
        )


# load generators run in their own process, by backend and mode (dps.py, cert_attestation.py)


async def drive(
    one: Callable[[], Awaitable[bool]], sessions: int, seconds: float
) -> dict[str, float]:
    """Keep ``sessions`` loops each calling ``one`` (a whole device's exchange: whether it
    succeeded) back to back for ``seconds``: the rate, the count, failures, p50 and p99."""
    latencies: list[float] = []
    failures = 0
    deadline = time.perf_counter() + seconds

    async def session_loop() -> None:
        nonlocal failures
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            ok = await one()
            latencies.append(time.perf_counter() - started)
            failures += not ok

    started = time.perf_counter()
    await asyncio.gather(*(session_loop() for _ in range(sessions)))
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1000, 2)

    return {
        "rps": round(len(latencies) / elapsed),
        "requests": len(latencies),
        "failures": failures,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
    }


def run_generator(script: str, *argv: str) -> dict[str, float]:
    """``python script --generate argv…`` in its own process: the JSON it prints."""
    out = subprocess.run(
        [sys.executable, script, "--generate", *argv], capture_output=True, text=True, check=False
    )
    if out.returncode:
        raise SystemExit(f"the load generator failed:\n{out.stderr}")
    result: dict[str, float] = json.loads(out.stdout)
    return result


def generate(load: Callable[..., Awaitable[dict[str, float]]], argv: list[str]) -> None:
    """The generator process: ``load(port, mode, sessions, seconds, prefix)`` on uvloop
    (when installed), its result printed as JSON."""
    port, mode, sessions, seconds, prefix = argv
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    print(json.dumps(asyncio.run(load(int(port), mode, int(sessions), float(seconds), prefix))))


#: The figures a round may report, whose medians mode_rounds prints (in this order).
MEDIANS = (
    "rps",
    "p50_ms",
    "p99_ms",
    "server_cpu_ms",
    "server_cpu_share",
    "server_waiting_share",
)


def mode_rounds(
    backends: list[str],
    modes: list[str],
    count: int,
    run: Callable[[str, str, int], dict[str, float]],
) -> None:
    """``run(backend, mode, round_no)`` for every round, backend and mode, interleaved;
    prints each, then the medians of each backend and mode (of the MEDIANS every round
    reported)."""
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    for round_no in range(1, count + 1):
        for backend in backends:
            for mode in modes:
                r = run(backend, mode, round_no)
                results.setdefault((backend, mode), []).append(r)
                print(
                    json.dumps({"round": round_no, "backend": backend, "mode": mode, **r}),
                    flush=True,
                )
    for (backend, mode), runs in results.items():
        figures = [k for k in MEDIANS if all(k in r for r in runs)]
        medians = {f"median_{k}": median([r[k] for r in runs]) for k in figures}
        print(json.dumps({"backend": backend, "mode": mode, **medians}), flush=True)
