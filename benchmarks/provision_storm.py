"""A provisioning storm: 10,000 devices at once over HTTP and MQTT together, some asking
twice (their first answer "lost", retried with their retry key). Nothing may be lost or
duplicated.

    python benchmarks/provision_storm.py [--devices 10000] [--concurrency 64] [--repeat 0.1]
                                         [--backends sqlite,postgresql]

Per backend: a fresh database with one allow-create profile (limits out of the way,
`--reprovision with-proof`), `provisiond serve` as its own process; half the devices
provision over HTTP (keep-alive connections), half over MQTT (one session each, through the
listener), `--concurrency` at a time of each, every request carrying the device's retry key;
a share (`--repeat`) ask a second time after their first answer. Then the database must hold
exactly the devices asked for, each with exactly one active credential, every device's last
answer must be SUCCESS, and a repeat must have been answered the credential of the first.
Prints the figures as JSON lines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from common import (
    bench_profile,
    free_port,
    fresh_database,
    machine,
    provisiond,
    query_scalar,
    serving,
)
from provisiond.protocols import mqtt


async def over_http(client: httpx.AsyncClient, request: dict[str, str]) -> dict[str, Any]:
    r = await client.post("/api/v1/provision", json=request)
    answer: dict[str, Any] = r.json()
    return answer


async def over_mqtt(port: int, request: dict[str, str]) -> dict[str, Any]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        connect = (
            mqtt._text("MQTT")
            + bytes([4, 0x82])
            + (30).to_bytes(2, "big")
            + mqtt._text("")
            + mqtt._text("provision")
        )
        writer.write(
            mqtt._packet(mqtt.CONNECT << 4, connect)
            + mqtt._packet(
                (mqtt.SUBSCRIBE << 4) | 2, b"\x00\x01" + mqtt._text("/provision/response") + b"\x00"
            )
            + mqtt.encode_publish(4, "/provision/request", json.dumps(request).encode())
        )
        await writer.drain()
        buffer = bytearray()
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                raise ConnectionError("the session closed without an answer")
            buffer += chunk
            while (frame := mqtt.take_frame(buffer)) is not None:
                header, body = frame
                if header >> 4 == mqtt.PUBLISH:
                    topic_length = int.from_bytes(body[:2], "big")
                    answer: dict[str, Any] = json.loads(body[2 + topic_length :])
                    return answer
    finally:
        writer.close()


async def storm(
    http_port: int, mqtt_port: int, key: str, secret: str, args: argparse.Namespace, prefix: str
) -> tuple[dict[str, dict[str, Any]], float, int, int]:
    names = [f"{prefix}{n:06d}" for n in range(args.devices)]
    rng = random.Random(7)
    twice = set(rng.sample(names, int(len(names) * args.repeat)))
    last: dict[str, dict[str, Any]] = {}
    first: dict[str, dict[str, Any]] = {}
    requests = 0
    gates = {
        "http": asyncio.Semaphore(args.concurrency),
        "mqtt": asyncio.Semaphore(args.concurrency),
    }
    limits = httpx.Limits(max_connections=args.concurrency)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{http_port}", limits=limits, timeout=120
    ) as client:

        async def device(n: int, name: str) -> None:
            nonlocal requests
            transport = "http" if n % 2 == 0 else "mqtt"
            request = {
                "deviceName": name,
                "provisionDeviceKey": key,
                "provisionDeviceSecret": secret,
                "retryKey": f"retry-key-kept-by-{name}",
            }
            for _ in range(2 if name in twice else 1):
                async with gates[transport]:
                    last[name] = (
                        await over_http(client, request)
                        if transport == "http"
                        else await over_mqtt(mqtt_port, request)
                    )
                    first.setdefault(name, last[name])
                    requests += 1

        started = time.perf_counter()
        await asyncio.gather(*(device(n, name) for n, name in enumerate(names)))
        seconds = time.perf_counter() - started
    moved = sum(first[n].get("credentialsValue") != last[n].get("credentialsValue") for n in twice)
    return last, seconds, requests, moved


def check(database: str) -> dict[str, int]:
    return {
        "devices": query_scalar(database, "SELECT count(*) FROM devices"),
        "devices_without_exactly_one_credential": query_scalar(
            database,
            "SELECT count(*) FROM (SELECT device_id FROM credentials WHERE "
            "revoked_at IS NULL GROUP BY device_id HAVING count(*) <> 1) AS wrong",
        ),
    }


def run(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    database = fresh_database(backend, f"bench_storm_{backend}")
    provisiond("db", "upgrade", database=database)
    made = bench_profile(database, "--reprovision", "with-proof")
    mqtt_port = free_port()
    with serving(database, "--mqtt-port", str(mqtt_port)) as http_port:
        last, seconds, requests, moved = asyncio.run(
            storm(http_port, mqtt_port, made["key"], made["secret"], args, "ST")
        )
    failed = sum(a.get("status") != "SUCCESS" for a in last.values())
    return {
        "backend": backend,
        "devices_asked": args.devices,
        "requests": requests,
        "seconds": round(seconds, 1),
        "requests_per_second": round(requests / seconds),
        "last_answer_not_success": failed,
        "repeats_answered_another_credential": moved,
        **check(database),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repeat", type=float, default=0.1)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    print(
        json.dumps(
            {
                "machine": machine(),
                "devices": args.devices,
                "concurrency_per_transport": args.concurrency,
                "asking_twice": args.repeat,
            }
        ),
        flush=True,
    )
    for backend in args.backends.split(","):
        print(json.dumps(run(backend, args)), flush=True)


if __name__ == "__main__":
    main()
