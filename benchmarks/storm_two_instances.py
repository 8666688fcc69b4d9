"""The scale-out storm: 10,000 devices provisioning and 100 people claiming, all at once,
against two `provisiond serve` instances on one PostgreSQL.

    python benchmarks/storm_two_instances.py [--devices 10000] [--people 100]
                                             [--concurrency 64] [--rounds 3]

Per round: a fresh database with one allow-create profile (limits out of the way), 500
imported devices for the people to claim and 100 installers; two serve processes (MQTT
off), each device provisioning over HTTP through one of them (alternating, keep-alive,
`--concurrency` at a time in all), 10% asking twice (their first answer "lost", retried with
their retry key: the profile is `--reprovision with-proof`). Meanwhile each person signs in
on one instance and claims 5 devices; every device in stock is wanted by two people, so half
the claims race. Then: exactly the devices asked for exist, each with one active credential,
the last answer of each SUCCESS, every answer of a device the same credential and no
credential answered to two devices;
each stock device has exactly one owner and one `device.claimed` event, and every claim was
answered 303 (won: the person then names and places the device, untimed) or 409 (someone
else had it). Prints each round and the medians as JSON
lines: provisioning and claim-start p50/p99 latency, the storm's length and rate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from common import (
    PROVISIOND,
    bench_profile,
    free_port,
    fresh_database,
    machine,
    median,
    provisiond,
    query_scalar,
    wait_until_serving,
)

PASSWORD = "correct horse battery staple"
CLAIMS_EACH = 5


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def start_instance(database: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "PROVISIOND_DATABASE_URL": database,
        "PROVISIOND_PROVISIONING__MQTT_ENABLED": "false",
        "PROVISIOND_CLAIMS__RATE_PER_MINUTE": "1000000",
        "PROVISIOND_SESSIONS__LOGIN_RATE_PER_MINUTE": "1000000",
    }
    proc = subprocess.Popen(
        [*PROVISIOND, "serve", "--port", str(port), "--log-level", "warning"], env=env
    )
    wait_until_serving(port, "/readyz")
    return proc, f"http://127.0.0.1:{port}"


async def prepare(url: str, token: str, people: int, stock: int) -> None:
    async with httpx.AsyncClient(
        base_url=url, timeout=120, headers={"Authorization": f"Bearer {token}"}
    ) as api:
        assert (await api.post("/api/v1/groups", json={"path": "Org"})).status_code == 201
        if stock:
            rows = "serial\n" + "".join(f"STOCK-{n:04d}\n" for n in range(stock))
            r = await api.post(
                "/api/v1/devices/import", content=rows, headers={"Content-Type": "text/csv"}
            )
            assert r.status_code == 201, r.text
        gate = asyncio.Semaphore(4)

        async def user(n: int) -> None:
            async with gate:
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

        await asyncio.gather(*(user(n) for n in range(people)))


async def person(
    url: str,
    n: int,
    serials: list[str],
    latencies: list[float],
    outcomes: dict[tuple[int, str], int],
    sign_ins: list[float],
) -> None:
    # idle connections are dropped before the server's keep-alive timeout (5 s) closes them
    async with httpx.AsyncClient(
        base_url=url, timeout=120, limits=httpx.Limits(keepalive_expiry=2)
    ) as browser:
        started = time.perf_counter()
        form = await browser.get("/login")
        login = form.cookies["provisiond_login"]
        signed = await browser.post(
            "/login",
            data={
                "email": f"p{n}@org.example",
                "password": PASSWORD,
                "login_csrf": login,
                "next": "/provision",
            },
        )
        assert signed.status_code == 303, signed.text
        sign_ins.append((time.perf_counter() - started) * 1000)
        page = await browser.get("/provision")
        found = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert found is not None
        for serial in serials:
            started = time.perf_counter()
            r = await browser.post(
                "/provision", data={"serial": serial, "target": "me", "csrf": found.group(1)}
            )
            latencies.append((time.perf_counter() - started) * 1000)
            outcomes[(n, serial)] = r.status_code
            if r.status_code == 303:  # no proof: name it and place it (untimed)
                claim = r.headers["location"]
                site = re.search(
                    r'<option value="([0-9a-f-]{36})"', (await browser.get(claim)).text
                )
                assert site is not None
                done = await browser.post(
                    f"{claim}/finish",
                    data={"name": serial, "group": site.group(1), "csrf": found.group(1)},
                )
                assert done.status_code == 303, done.text[:300]


async def storm(urls: list[str], key: str, secret: str, args: argparse.Namespace) -> dict[str, Any]:
    names = [f"TWO{n:06d}" for n in range(args.devices)]
    twice = set(random.Random(7).sample(names, args.devices // 10))
    last: dict[str, dict[str, Any]] = {}
    values: dict[str, set[str]] = {}
    provision_ms: list[float] = []
    claim_ms: list[float] = []
    sign_in_ms: list[float] = []
    outcomes: dict[tuple[int, str], int] = {}
    gate = asyncio.Semaphore(args.concurrency)
    # aiohttp for the devices: httpx's pool costs several times more CPU per request, and the
    # client shares the two cores with the servers and PostgreSQL
    connectors = [aiohttp.TCPConnector(limit=args.concurrency, keepalive_timeout=2) for _ in urls]
    sessions = [
        aiohttp.ClientSession(base_url=u, connector=c)
        for u, c in zip(urls, connectors, strict=True)
    ]
    sessions = sessions * (2 // len(sessions))  # one instance: both halves go to it
    stock = args.people * CLAIMS_EACH // 2
    wanted = {
        n: [f"STOCK-{(n * CLAIMS_EACH + k) % stock:04d}" for k in range(CLAIMS_EACH)]
        for n in range(args.people)
    }

    async def device(i: int, name: str) -> None:
        request = {
            "deviceName": name,
            "provisionDeviceKey": key,
            "provisionDeviceSecret": secret,
            "retryKey": f"retry-key-kept-by-{name}",
        }
        for _ in range(2 if name in twice else 1):
            async with gate:
                started = time.perf_counter()
                async with sessions[i % 2].post("/api/v1/provision", json=request) as r:
                    answer = await r.json()
                provision_ms.append((time.perf_counter() - started) * 1000)
                last[name] = answer
                if answer.get("status") == "SUCCESS":
                    values.setdefault(name, set()).add(answer["credentialsValue"])

    started = time.perf_counter()
    await asyncio.gather(
        *(device(i, name) for i, name in enumerate(names)),
        *(
            person(urls[n % len(urls)], n, wanted[n], claim_ms, outcomes, sign_in_ms)
            for n in range(args.people)
        ),
    )
    seconds = time.perf_counter() - started
    for session in sessions[: len(urls)]:
        await session.close()
    return {
        "last": last,
        "values": values,
        "provision_ms": provision_ms,
        "claim_ms": claim_ms,
        "sign_in_ms": sign_in_ms,
        "outcomes": outcomes,
        "seconds": seconds,
        "requests": len(provision_ms) + len(claim_ms),
        "stock": stock,
    }


def run(args: argparse.Namespace, round_no: int) -> dict[str, Any]:
    database = fresh_database("postgresql", "bench_storm_two")
    provisiond("db", "upgrade", database=database)
    made = bench_profile(database, "--reprovision", "with-proof")
    token = json.loads(provisiond("tokens", "create", "bench", "--json", database=database).stdout)[
        "secret"
    ]
    started = [start_instance(database) for _ in range(args.instances)]
    try:
        urls = [url for _, url in started]
        asyncio.run(prepare(urls[0], token, args.people, args.people * CLAIMS_EACH // 2))
        s = asyncio.run(storm(urls, made["key"], made["secret"], args))
    finally:
        for proc, _ in started:
            proc.terminate()
            proc.wait(60)
    outcomes: dict[tuple[int, str], int] = s["outcomes"]
    q = lambda sql: query_scalar(database, sql)  # noqa: E731
    return {
        "round": round_no,
        "instances": args.instances,
        "devices_asked": args.devices,
        "people": args.people,
        "seconds": round(s["seconds"], 1),
        "requests_per_second": round(s["requests"] / s["seconds"]),
        "provision_p50_ms": round(percentile(s["provision_ms"], 50), 1),
        "provision_p99_ms": round(percentile(s["provision_ms"], 99), 1),
        "claim_p50_ms": round(percentile(s["claim_ms"], 50), 1) if s["claim_ms"] else 0,
        "claim_p99_ms": round(percentile(s["claim_ms"], 99), 1) if s["claim_ms"] else 0,
        "sign_in_p50_ms": round(percentile(s["sign_in_ms"], 50), 1) if s["sign_in_ms"] else 0,
        "sign_in_p99_ms": round(percentile(s["sign_in_ms"], 99), 1) if s["sign_in_ms"] else 0,
        # the checks: each must be as stated for the round to count
        "devices_made": q("SELECT count(*) FROM devices WHERE serial LIKE 'TWO%'"),
        "last_answer_not_success": sum(a.get("status") != "SUCCESS" for a in s["last"].values()),
        "devices_answered_two_credentials": sum(len(v) != 1 for v in s["values"].values()),
        "credentials_answered_to_two_devices": (
            sum(len(v) for v in s["values"].values()) - len(set().union(*s["values"].values()))
        ),
        "devices_without_exactly_one_credential": q(
            "SELECT count(*) FROM (SELECT d.id FROM devices d LEFT JOIN credentials c ON "
            "c.device_id = d.id AND c.revoked_at IS NULL WHERE d.serial LIKE 'TWO%' "
            "GROUP BY d.id HAVING count(c.id) <> 1) AS wrong"
        ),
        "stock_claimed": q(
            "SELECT count(*) FROM devices WHERE serial LIKE 'STOCK-%' AND owner_user_id IS NOT NULL"
        ),
        "stock_claimed_twice": q(
            "SELECT count(*) FROM (SELECT serial FROM events WHERE "
            "type = 'device.claimed' GROUP BY serial "
            "HAVING count(*) > 1) AS twice"
        ),
        "claims_won": sum(1 for v in outcomes.values() if v == 303),
        "claims_refused_409": sum(1 for v in outcomes.values() if v == 409),
        "claims_other": sum(1 for v in outcomes.values() if v not in (303, 409)),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--people", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--instances", type=int, default=2, choices=[1, 2])
    args = parser.parse_args()
    print(
        json.dumps(
            {
                "machine": machine(),
                "devices": args.devices,
                "people": args.people,
                "concurrency": args.concurrency,
            }
        ),
        flush=True,
    )
    results = []
    for round_no in range(1, args.rounds + 1):
        r = run(args, round_no)
        print(json.dumps(r), flush=True)
        results.append(r)
    keys = [
        "seconds",
        "requests_per_second",
        "provision_p50_ms",
        "provision_p99_ms",
        "claim_p50_ms",
        "claim_p99_ms",
        "sign_in_p50_ms",
        "sign_in_p99_ms",
    ]
    print(json.dumps({"median_" + k: median([r[k] for r in results]) for k in keys}), flush=True)


if __name__ == "__main__":
    main()
