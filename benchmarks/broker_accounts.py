"""Broker accounts keep up with provisioning: N devices self-provision over HTTP against
`provisiond serve` managing a real Mosquitto; measured until the broker holds N device
accounts, none missing.

    python benchmarks/broker_accounts.py [--devices 10000] [--rounds 1] [--concurrency 32]
                                         [--backends sqlite,postgresql]
                                         [--kind mosquitto-files|mosquitto-dynsec]

Each round, per backend: a fresh database with an allow-create profile, a throwaway
Mosquitto on a free port (tests/support/mosquitto.py) reading its password and ACL files
(``mosquitto-files``, reloaded by SIGHUP) or its dynamic security plugin
(``mosquitto-dynsec``), `provisiond serve` managing it, then N ThingsBoard provision
requests (access tokens) from ``--concurrency`` aiohttp clients. Reports the provisioning
rate (last answer), the end-to-end rate (until provisiond recorded N accounts and nothing
was left queued), the lag behind provisioning, and checks the broker's own files hold N
device accounts and that a sample device connects with its token.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from common import (
    PROVISIOND,
    ROOT,
    bench_profile,
    free_port,
    fresh_database,
    machine,
    median,
    provisiond,
    query_scalar,
    rounds,
    wait_until_serving,
)

sys.path.insert(0, str(ROOT))
from tests.support.mosquitto import Broker, Device, dynsec_broker, files_broker

from provisiond.integrations.mosquitto_files import protocol as mosquitto_files


async def provision_all(
    port: int, key: str, secret: str, count: int, prefix: str, concurrency: int
) -> list[str]:
    """Provision ``count`` devices; their tokens."""
    tokens: list[str] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)
    # aiohttp: httpx's own CPU per request would cap provisioning near 250/s here
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(
        f"http://127.0.0.1:{port}", connector=connector, timeout=aiohttp.ClientTimeout(total=120)
    ) as http:

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                async with http.post(
                    "/api/v1/provision",
                    json={
                        "deviceName": f"{prefix}-{i}",
                        "provisionDeviceKey": key,
                        "provisionDeviceSecret": secret,
                    },
                ) as r:
                    body = await r.json()
                if body.get("status") != "SUCCESS":
                    raise RuntimeError(f"provisioning failed: {body}")
                tokens.append(body["credentialsValue"])

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return tokens


def broker_env(kind: str, broker: Broker) -> dict[str, str]:
    if kind == "mosquitto-files":
        return {
            "PROVISIOND_BROKER__PASSWORD_FILE": str(broker.password_file),
            "PROVISIOND_BROKER__ACL_FILE": str(broker.acl_file),
            "PROVISIOND_BROKER__PID_FILE": str(broker.pid_file),
        }
    return {"PROVISIOND_BROKER__URL": broker.url}


def accounts_on_broker(kind: str, broker: Broker) -> int:
    if kind == "mosquitto-files":
        return len(
            mosquitto_files.parse(
                broker.password_file.read_text(), broker.acl_file.read_text()
            ).accounts
        )
    (group,) = [g for g in broker.saved()["groups"] if g["groupname"] == "provisiond-devices"]
    return len(group["clients"])


def sample_connects(broker: Broker, token: str) -> bool:
    """Whether a device connects with its token (user name: its public half; a few tries:
    Mosquitto reloads its files asynchronously after the SIGHUP)."""
    for _ in range(20):
        sample = Device(broker.port, token.partition(".")[0], token)
        connected = sample.connect() == 0
        sample.close()
        if connected:
            return True
        time.sleep(0.25)
    return False


def run_round(backend: str, args: argparse.Namespace, round_no: int) -> dict[str, float]:
    database = fresh_database(backend, f"bench_broker_{backend}")
    provisiond("db", "upgrade", database=database)
    made = bench_profile(database)
    start_broker = files_broker if args.kind == "mosquitto-files" else dynsec_broker
    with (
        tempfile.TemporaryDirectory(prefix="bench-mosquitto-") as tmp,
        start_broker(Path(tmp)) as broker,
    ):
        port = free_port()
        env = {
            **os.environ,
            "PROVISIOND_DATABASE_URL": database,
            "PROVISIOND_BROKER__KIND": args.kind,
            **broker_env(args.kind, broker),
            "PROVISIOND_BROKER__TIMEOUT_SECONDS": "120",
        }
        server = subprocess.Popen(
            [*PROVISIOND, "serve", "--port", str(port), "--no-mqtt", "--log-level", "warning"],
            env=env,
        )
        try:
            wait_until_serving(port, "/healthz")
            started = time.perf_counter()
            tokens = asyncio.run(
                provision_all(
                    port,
                    made["key"],
                    made["secret"],
                    args.devices,
                    f"B{round_no}",
                    args.concurrency,
                )
            )
            provisioned = time.perf_counter() - started
            while True:  # another process works: poll its database
                accounts = query_scalar(database, "SELECT count(*) FROM broker_accounts")
                waiting = query_scalar(
                    database, "SELECT count(*) FROM pending_work"
                ) + query_scalar(database, "SELECT count(*) FROM outbox")
                if accounts >= args.devices and waiting == 0:
                    break
                time.sleep(0.2)
            done = time.perf_counter() - started
        finally:
            server.terminate()
            server.wait(timeout=120)
        on_broker = accounts_on_broker(args.kind, broker)
        connected = sample_connects(broker, tokens[len(tokens) // 2])
    return {
        "devices": args.devices,
        "provision_rps": args.devices / provisioned,
        "end_to_end_devices_per_s": args.devices / done,
        "lag_s": done - provisioned,
        "broker_clients": on_broker,
        "sample_connects": connected,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument(
        "--kind", choices=["mosquitto-files", "mosquitto-dynsec"], default="mosquitto-files"
    )
    args = parser.parse_args()
    print(
        json.dumps(
            {
                "machine": machine(),
                "devices": args.devices,
                "kind": args.kind,
                "concurrency": args.concurrency,
            }
        ),
        flush=True,
    )
    results = rounds(
        args.backends.split(","), args.rounds, lambda backend, n: run_round(backend, args, n)
    )
    for backend, runs in results.items():
        print(
            json.dumps(
                {
                    "backend": backend,
                    "median_provision_rps": round(median([r["provision_rps"] for r in runs])),
                    "median_end_to_end_devices_per_s": round(
                        median([r["end_to_end_devices_per_s"] for r in runs]), 1
                    ),
                    "median_lag_s": round(median([r["lag_s"] for r in runs]), 1),
                    "all_present": all(
                        r["broker_clients"] == r["devices"] and r["sample_connects"] for r in runs
                    ),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
