"""Button press -> event at the open claim page, with 1,000 claim pages open on one instance.

    python benchmarks/claim_events.py [--pages 1000] [--rounds 3] [--backends sqlite,postgresql]

Per backend and round: a fresh database with `--pages` devices under a button-proof profile
and one installer; `provisiond serve` as its own process. The client signs in, starts one
claim per device (POST /provision), opens every claim page's event stream (GET
/claims/{id}/events, one TCP connection each, all kept open), then presses each device's
button in turn (POST /api/v1/{token}/claim/button) and times from just before the press is
sent to the moment that page's stream delivers `proven`. Prints JSON lines: per round, then
the medians of the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import re
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from common import fresh_database, machine, median, provisiond, rounds, serving

PASSWORD = "benchmark password"  # a throwaway benchmark user's


async def seed(database: str, pages: int) -> dict[str, str]:
    """The organisation, user, profile and devices; returns serial -> access token."""
    from provisiond.bootstrap import open_container
    from provisiond.domain.profiles import ProfileSpec
    from provisiond.domain.scope import Scope
    from provisiond.domain.users import UserSpec
    from provisiond.services import directory, profiles
    from provisiond.services.import_formats import ImportFormat, read_import
    from provisiond.services.registration import ImportOptions, register_devices
    from provisiond.settings import load_settings

    class Sink:
        def __init__(self) -> None:
            self.tokens: dict[str, str] = {}

        def add(
            self,
            serial: str,
            device_id: str,  # noqa: ARG002
            credential_type: str,  # noqa: ARG002
            secret: str,
        ) -> None:
            self.tokens[serial] = secret

        def prepare(self) -> None: ...

        def commit(self) -> None: ...

    async with open_container(load_settings(database_url=database)) as c:
        await directory.create_group(
            c.uow(), scope=Scope.operator(), path="Kanarra/Site", actor="bench", now=c.now()
        )
        await directory.create_user(
            c.uow(),
            scope=Scope.operator(),
            spec=UserSpec(
                "tech@kanarra.example", password=PASSWORD, role="installer", group="Kanarra"
            ),
            actor="bench",
            now=c.now(),
        )
        await profiles.create_profile(
            c.uow(),
            scope=Scope.operator(),
            spec=ProfileSpec("buttons", claim_proof="button", claim_window=3600),
            actor="bench",
            now=c.now(),
        )
        rows = "serial\n" + "".join(f"GEN-{i:06d}\n" for i in range(pages))
        sink = Sink()
        await register_devices(
            c.uow(),
            scope=Scope.operator(),
            items=read_import(io.BytesIO(rows.encode()), ImportFormat.CSV),
            options=ImportOptions(profile="buttons"),
            sink=sink,
            actor="bench",
            now=c.now(),
        )
        return sink.tokens


async def sign_in(client: httpx.AsyncClient) -> str:
    page = await client.get("/login")
    token = re.search(r'name="login_csrf" value="([^"]+)"', page.text)
    assert token
    r = await client.post(
        "/login",
        data={"email": "tech@kanarra.example", "password": PASSWORD, "login_csrf": token.group(1)},
    )
    assert r.status_code == 303, r.text
    form = await client.get("/provision")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf
    return csrf.group(1)


class Page:
    """One open claim page: its event stream on its own connection."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.ready = asyncio.Event()
        self.proven = asyncio.Event()
        self.proven_at = 0.0

    async def listen(self, port: int, cookie: str) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            f"GET {self.path}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Cookie: provisiond_session={cookie}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        await writer.drain()
        try:
            while line := await reader.readline():
                if line.startswith(b"event: state"):
                    self.ready.set()
                elif line.startswith(b"event: proven"):
                    self.proven_at = time.perf_counter()
                    self.proven.set()
        finally:
            writer.close()


async def run_round(database: str, pages: int) -> dict[str, float]:
    tokens = await seed(database, pages)
    with serving(database) as port:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            csrf = await sign_in(client)
            cookie = client.cookies["provisiond_session"]
            serials = sorted(tokens)
            open_pages: dict[str, Page] = {}
            gate = asyncio.Semaphore(8)

            async def start(serial: str) -> None:
                async with gate:
                    r = await client.post(
                        "/provision", data={"serial": serial, "target": "me", "csrf": csrf}
                    )
                    assert r.status_code == 303, r.text[:300]
                    open_pages[serial] = Page(r.headers["location"])

            await asyncio.gather(*(start(s) for s in serials))
            listeners = [asyncio.create_task(p.listen(port, cookie)) for p in open_pages.values()]
            await asyncio.wait_for(
                asyncio.gather(*(p.ready.wait() for p in open_pages.values())), 120
            )
            latencies: list[float] = []
            order = serials[:]
            random.Random(pages).shuffle(order)
            for serial in order:
                page = open_pages[serial]
                pressed = time.perf_counter()
                r = await client.post(f"/api/v1/{tokens[serial]}/claim/button")
                assert r.json()["proven"] is True, r.text
                await asyncio.wait_for(page.proven.wait(), 10)
                latencies.append((page.proven_at - pressed) * 1000)
            for task in listeners:
                task.cancel()
            await asyncio.gather(*listeners, return_exceptions=True)
    latencies.sort()
    return {
        "pages": pages,
        "presses": len(latencies),
        "p50_ms": round(latencies[len(latencies) // 2], 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 2),
        "max_ms": round(latencies[-1], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    os.environ["PROVISIOND_CLAIMS__RATE_PER_MINUTE"] = str(10 * args.pages)
    print(json.dumps({"machine": machine()}), flush=True)

    def one(backend: str, _round: int) -> dict[str, Any]:
        database = fresh_database(backend, "bench_claim_events")
        provisiond("db", "upgrade", database=database)
        return asyncio.run(run_round(database, args.pages))

    results = rounds(args.backends.split(","), args.rounds, one)
    for backend, runs in results.items():
        print(
            json.dumps(
                {
                    "backend": backend,
                    "pages": args.pages,
                    "median_p50_ms": median([r["p50_ms"] for r in runs]),
                    "median_p99_ms": median([r["p99_ms"] for r in runs]),
                    "median_max_ms": median([r["max_ms"] for r in runs]),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
