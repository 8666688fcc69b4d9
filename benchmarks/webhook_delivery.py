"""Webhook delivery rate: N events, fanned out from the outbox and delivered signed to a
local receiver, by the same dispatcher and deliverer `provisiond serve` runs.

    python benchmarks/webhook_delivery.py [--events 20000] [--rounds 3]
                                          [--backends sqlite,postgresql]

Each round, per backend: a fresh database with a group and a webhook on it pointing at
benchmarks/webhook_receiver.py (its own process); a bulk import registers N devices in the
group (one `devices.imported` event, one `device.registered` delivery per device); then the
clock starts, the outbox is dispatched (fan-out) and the deliverer runs until every delivery
is recorded as delivered. Reports events/s (fan-out + delivery + recording), checks the
receiver counted N requests and the log holds N delivered rows.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import subprocess
import sys
import time
import urllib.request

from common import (
    ROOT,
    free_port,
    fresh_database,
    machine,
    median,
    provisiond,
    query_scalar,
    rounds,
)

sys.path.insert(0, str(ROOT))
from tests.support.containers import NullSink


async def measure(database: str, url: str, events: int) -> float:
    from provisiond.bootstrap import open_container
    from provisiond.domain.scope import Scope
    from provisiond.domain.webhooks import WebhookSpec
    from provisiond.integrations.webhooks.sender import HttpSender
    from provisiond.services import directory, webhooks
    from provisiond.services.import_formats import ImportFormat, read_import
    from provisiond.services.outbox import Dispatcher
    from provisiond.services.registration import ImportOptions, register_devices
    from provisiond.settings import load_settings

    async with open_container(
        load_settings(
            database_url=database, log_level="warning", webhooks__allow_networks=["127.0.0.1"]
        )
    ) as c:
        await directory.create_group(
            c.uow(), scope=Scope.operator(), path="Bench/Site", actor="bench", now=c.now()
        )
        await webhooks.create_webhook(
            c.uow(),
            scope=Scope.operator(),
            spec=WebhookSpec(group="Bench", url=url, events=["device.registered"]),
            actor="bench",
            now=c.now(),
            sealer=c.sealer,
            guard=c.webhook_guard,
        )
        rows = "serial,group\n" + "".join(f"WH{i:07d},Bench/Site\n" for i in range(events))
        await register_devices(
            c.uow(),
            scope=Scope.operator(),
            items=read_import(io.BytesIO(rows.encode()), ImportFormat.CSV),
            options=ImportOptions(batch_size=5000),
            sink=NullSink(),
            actor="bench",
            now=c.now(),
        )
        sender = HttpSender(30, guard=c.webhook_guard)
        deliverer = webhooks.WebhookDeliverer(
            c.uow, sender, c.sealer, webhooks.WebhookPolicy(), c.now
        )
        dispatcher = Dispatcher(c.uow, consumers=[webhooks.fan_out])
        started = time.perf_counter()
        while await dispatcher.dispatch():
            pass
        while await deliverer.deliver(1000):
            pass
        elapsed = time.perf_counter() - started
        await sender.close()
        return elapsed


def run_round(backend: str, args: argparse.Namespace) -> dict[str, float]:
    database = fresh_database(backend, f"bench_webhooks_{backend}")
    provisiond("db", "upgrade", database=database)
    port = free_port()
    receiver = subprocess.Popen(
        [sys.executable, str(ROOT / "benchmarks" / "webhook_receiver.py"), str(port)]
    )
    try:
        deadline = time.monotonic() + 20
        while True:  # another process is starting: nothing to wait on but its port
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/count", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        seconds = asyncio.run(measure(database, f"http://127.0.0.1:{port}/hook", args.events))
        received = int(urllib.request.urlopen(f"http://127.0.0.1:{port}/count").read())
    finally:
        receiver.terminate()
        receiver.wait()
    delivered = query_scalar(
        database, "SELECT count(*) FROM webhook_deliveries WHERE status = 'delivered'"
    )
    return {
        "events": args.events,
        "seconds": seconds,
        "events_per_s": args.events / seconds,
        "received": received,
        "delivered": delivered,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    print(json.dumps({"machine": machine(), "events": args.events}), flush=True)
    results = rounds(
        args.backends.split(","), args.rounds, lambda backend, _n: run_round(backend, args)
    )
    for backend, runs in results.items():
        print(
            json.dumps(
                {
                    "backend": backend,
                    "median_events_per_s": round(median([r["events_per_s"] for r in runs])),
                    "all_delivered": all(
                        r["received"] == r["delivered"] == r["events"] for r in runs
                    ),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
