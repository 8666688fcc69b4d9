"""MQTT self-provisioning throughput and latency through provisiond's listener.

    python benchmarks/provision_mqtt.py [--rounds 3] [--seconds 10] [--sessions 64]
                                        [--backends sqlite,postgresql]

Per round and backend: a freshly migrated database with one allow-create profile (limits
out of the way), `provisiond serve` (one process, SQLite synchronous=FULL), and a load
generator in its own process (uvloop) keeping `--sessions` provisioning sessions going for
`--seconds`: each one connects, subscribes to /provision/response, publishes a request for
a new device to /provision/request in the same write (as ThingsBoard's SDK may), waits for
its answer and disconnects; the next session starts at once. Every answer must be SUCCESS
and the database must then hold one device per answer. Prints JSON lines, then medians.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time

from common import (
    bench_profile,
    free_port,
    fresh_database,
    machine,
    print_medians,
    provisiond,
    query_scalar,
    rounds,
    serving,
)
from provision_storm import over_mqtt


async def load(
    port: int, key: str, secret: str, sessions: int, seconds: float, prefix: str
) -> dict[str, float]:
    latencies: list[float] = []
    failures = 0
    deadline = time.perf_counter() + seconds

    async def session_loop(worker: int) -> None:
        nonlocal failures
        n = 0
        while time.perf_counter() < deadline:
            n += 1
            request = {
                "deviceName": f"{prefix}-{worker}-{n}",
                "provisionDeviceKey": key,
                "provisionDeviceSecret": secret,
            }
            started = time.perf_counter()
            answer = await over_mqtt(port, request)
            latencies.append(time.perf_counter() - started)
            failures += answer.get("status") != "SUCCESS"

    started = time.perf_counter()
    await asyncio.gather(*(session_loop(w) for w in range(sessions)))
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


def run(backend: str, args: argparse.Namespace, round_no: int) -> dict[str, float]:
    database = fresh_database(backend, f"bench_mqtt_{backend}")
    provisiond("db", "upgrade", database=database)
    made = bench_profile(database)
    mqtt_port = free_port()
    with serving(database, "--mqtt-port", str(mqtt_port)):
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--generate",
                str(mqtt_port),
                made["key"],
                made["secret"],
                str(args.sessions),
                str(args.seconds),
                f"M{round_no}",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    result: dict[str, float] = json.loads(out)
    result["devices"] = query_scalar(database, "SELECT count(*) FROM devices")
    return result


def generate(argv: list[str]) -> None:
    port, key, secret, sessions, seconds, prefix = argv
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    print(
        json.dumps(asyncio.run(load(int(port), key, secret, int(sessions), float(seconds), prefix)))
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--generate":
        generate(sys.argv[2:])
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--sessions", type=int, default=64)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    backends = args.backends.split(",")
    print(
        json.dumps({"machine": machine(), "sessions": args.sessions, "seconds": args.seconds}),
        flush=True,
    )
    print_medians(
        rounds(backends, args.rounds, lambda backend, round_no: run(backend, args, round_no))
    )


if __name__ == "__main__":
    main()
