"""The floor of benchmarks/broker_accounts.py: Mosquitto's dynamic security plugin alone.

    python benchmarks/broker_floor.py [--accounts 3000] [--step 500]

A throwaway Mosquitto (tests/support/mosquitto.py); one administrative connection sends
what provisiond sends per device — a role with the device's ACLs, then a client in the
provisiond group holding it — 200 commands per message, and reports accounts/s per step.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

from common import ROOT, machine

sys.path.insert(0, str(ROOT))
from tests.support.mosquitto import dynsec_broker

from provisiond.integrations.mosquitto_dynsec import protocol as dynsec
from provisiond.integrations.mosquitto_dynsec.admin import DynsecAdmin


async def run(url: str, accounts: int, step: int) -> None:
    admin = DynsecAdmin(url, timeout=600)
    await admin.execute([dynsec.create_group("provisiond-devices")])
    started = last = time.perf_counter()
    for start in range(0, accounts, 100):
        commands = []
        for _ in range(100):
            device = uuid.uuid4()
            role = f"provisiond-device-{device}"
            commands += [
                dynsec.create_role(role, dynsec.prefix_acls(f"devices/{device}")),
                dynsec.create_client(
                    f"{uuid.uuid4().hex}.{uuid.uuid4().hex}",
                    uuid.uuid4().hex,
                    roles=[role],
                    groups=["provisiond-devices"],
                ),
            ]
        await admin.execute(commands)
        if (start + 100) % step == 0:
            now = time.perf_counter()
            print(
                json.dumps(
                    {
                        "accounts": start + 100,
                        "accounts_per_s_this_step": round(step / (now - last), 1),
                    }
                ),
                flush=True,
            )
            last = now
    print(
        json.dumps(
            {
                "accounts": accounts,
                "accounts_per_s": round(accounts / (time.perf_counter() - started), 1),
            }
        )
    )
    await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=3000)
    parser.add_argument("--step", type=int, default=500)
    args = parser.parse_args()
    print(json.dumps({"machine": machine()}), flush=True)
    with (
        tempfile.TemporaryDirectory(prefix="bench-mosquitto-") as tmp,
        dynsec_broker(Path(tmp)) as broker,
    ):
        asyncio.run(run(broker.url, args.accounts, args.step))


if __name__ == "__main__":
    main()
