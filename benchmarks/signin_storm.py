"""100 people signing in at the same instant: the latency each one sees.

    python benchmarks/signin_storm.py [--people 100] [--rounds 3] [--instances 1]
                                      [--backends sqlite,postgresql]

Per round and backend: a freshly migrated database, ``--instances`` `provisiond serve`
processes (MQTT off; the per-address sign-in limit raised, since every person comes from
127.0.0.1), ``--people`` installers made through the API, one warm-up sign-in. Then every
person's browser (an aiohttp session with its own cookies and connection, made beforehand)
is released at the same instant and signs in as a person does: GET /login, POST /login with
the form's token, until the 303. The time of each, from release to the 303, is what is
reported (p50, p99, max), with the storm's length and the CPU time the server processes
used in it, per sign-in.

In the same round, the floor: the same number of argon2 verifications (provisiond's
parameters) one after another in one thread of this process — the CPU the passwords need
at least, before HTTP, sessions and the database.

Every answer must be a 303 for the round to count. Prints one JSON line per round, then
the medians per backend.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import time

import aiohttp
import httpx

from common import (
    PROVISIOND,
    free_port,
    fresh_database,
    machine,
    median,
    provisiond,
    wait_until_serving,
)

PASSWORD = "correct horse battery staple"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def start_instance(database: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "PROVISIOND_DATABASE_URL": database,
        "PROVISIOND_PROVISIONING__MQTT_ENABLED": "false",
        "PROVISIOND_SESSIONS__LOGIN_RATE_PER_MINUTE": "1000000",
    }
    proc = subprocess.Popen(
        [*PROVISIOND, "serve", "--port", str(port), "--log-level", "warning"], env=env
    )
    wait_until_serving(port, "/readyz")
    return proc, f"http://127.0.0.1:{port}"


async def prepare(url: str, token: str, people: int) -> None:
    async with httpx.AsyncClient(
        base_url=url, timeout=120, headers={"Authorization": f"Bearer {token}"}
    ) as api:
        assert (await api.post("/api/v1/groups", json={"path": "Org"})).status_code == 201
        for n in [*range(people), "warm"]:
            r = await api.post(
                "/api/v1/users",
                json={
                    "email": f"p{n}@org.example",
                    "password": PASSWORD,
                    "role": "installer",
                    "group": "Org",
                },
            )
            assert r.status_code == 201, r.text


async def sign_in(session: aiohttp.ClientSession, email: str) -> int:
    async with session.get("/login") as page:
        found = re.search(r'name="login_csrf" value="([^"]+)"', await page.text())
    assert found is not None
    async with session.post(
        "/login",
        allow_redirects=False,
        data={
            "email": email,
            "password": PASSWORD,
            "login_csrf": found.group(1),
            "next": "/devices",
        },
    ) as r:
        await r.read()
        return r.status


async def storm(
    urls: list[str], people: int, pids: list[int]
) -> tuple[list[float], list[int], float, float]:
    sessions = [
        aiohttp.ClientSession(
            base_url=urls[n % len(urls)], cookie_jar=aiohttp.CookieJar(unsafe=True)
        )
        for n in range(people)
    ]
    for url in urls:  # templates, first connections: not part of the figure
        async with aiohttp.ClientSession(
            base_url=url, cookie_jar=aiohttp.CookieJar(unsafe=True)
        ) as warm:
            assert await sign_in(warm, "pwarm@org.example") == 303
    go = asyncio.Event()
    latencies: list[float] = [0.0] * people
    statuses: list[int] = [0] * people

    async def person(n: int) -> None:
        await go.wait()
        started = time.perf_counter()
        statuses[n] = await sign_in(sessions[n], f"p{n}@org.example")
        latencies[n] = (time.perf_counter() - started) * 1000

    tasks = [asyncio.create_task(person(n)) for n in range(people)]
    await asyncio.sleep(0)  # every person waiting at the line
    cpu = cpu_seconds(pids)
    started = time.perf_counter()
    go.set()
    await asyncio.gather(*tasks)
    seconds = time.perf_counter() - started
    cpu = cpu_seconds(pids) - cpu
    for s in sessions:
        await s.close()
    return latencies, statuses, seconds, cpu


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU time so far of these processes (Linux /proc)."""
    total = 0
    for pid in pids:
        fields = open(f"/proc/{pid}/stat").read().rpartition(")")[2].split()  # noqa: SIM115
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def floor(people: int) -> float:
    """Milliseconds for ``people`` argon2 verifications in a row, in one thread."""
    from provisiond.services.hashing import hash_password, verify_password

    stored = hash_password(PASSWORD)
    started = time.perf_counter()
    for _ in range(people):
        assert verify_password(stored, PASSWORD)
    return (time.perf_counter() - started) * 1000


def run(backend: str, args: argparse.Namespace, round_no: int) -> dict[str, object]:
    database = fresh_database(backend, f"bench_signin_{backend}")
    provisiond("db", "upgrade", database=database)
    token = json.loads(provisiond("tokens", "create", "bench", "--json", database=database).stdout)[
        "secret"
    ]
    started = [start_instance(database) for _ in range(args.instances)]
    try:
        urls = [url for _, url in started]
        asyncio.run(prepare(urls[0], token, args.people))
        latencies, statuses, seconds, cpu = asyncio.run(
            storm(urls, args.people, [proc.pid for proc, _ in started])
        )
    finally:
        for proc, _ in started:
            proc.terminate()
            proc.wait(60)
    return {
        "round": round_no,
        "backend": backend,
        "instances": args.instances,
        "people": args.people,
        "seconds": round(seconds, 2),
        "sign_in_p50_ms": round(percentile(latencies, 50), 1),
        "sign_in_p99_ms": round(percentile(latencies, 99), 1),
        "sign_in_max_ms": round(max(latencies), 1),
        "server_cpu_ms_per_sign_in": round(cpu * 1000 / args.people, 1),
        "argon2_serial_ms": round(floor(args.people), 1),
        "not_303": sum(s != 303 for s in statuses),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--instances", type=int, default=1, choices=[1, 2])
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    backends = args.backends.split(",")
    print(
        json.dumps({"machine": machine(), "people": args.people, "instances": args.instances}),
        flush=True,
    )
    results: dict[str, list[dict[str, object]]] = {b: [] for b in backends}
    for round_no in range(1, args.rounds + 1):
        for backend in backends:
            r = run(backend, args, round_no)
            print(json.dumps(r), flush=True)
            results[backend].append(r)
    keys = [
        "seconds",
        "sign_in_p50_ms",
        "sign_in_p99_ms",
        "sign_in_max_ms",
        "server_cpu_ms_per_sign_in",
        "argon2_serial_ms",
    ]
    for backend, runs in results.items():
        print(
            json.dumps(
                {
                    "backend": backend,
                    "instances": args.instances,
                    "rounds": len(runs),
                    **{
                        "median_" + k: median([float(r[k]) for r in runs])  # type: ignore[arg-type]
                        for k in keys
                    },
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
