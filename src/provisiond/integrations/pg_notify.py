"""Claim events across instances on one PostgreSQL: LISTEN/NOTIFY.

Every instance listens on the channel ``provisiond_claims``; an event published in one is
sent with ``pg_notify`` (after the transaction that made it committed) and delivered by the
others to their own pages. No extra server is needed. A lost connection is retried with
backoff; events sent while it is down reach only this instance's pages.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from typing import Any

import psycopg

from provisiond.services.claim_hub import ClaimHub

log = logging.getLogger(__name__)
CHANNEL = "provisiond_claims"
PAYLOAD_MAX = 7900  # PostgreSQL refuses notification payloads of 8000 bytes and more


class PgClaimRelay:
    def __init__(self, dsn: str, hub: ClaimHub, instance: str) -> None:
        self._dsn = dsn
        self._hub = hub
        self._instance = instance
        self._sender: psycopg.AsyncConnection[Any] | None = None
        self._send_lock = asyncio.Lock()
        self._listener: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self.listening = asyncio.Event()

    async def start(self) -> None:
        self._listener = asyncio.create_task(self._listen(), name="provisiond-claim-relay")
        self._hub.relay_to(self.send)

    def send(self, claim_id: uuid.UUID, event: dict[str, Any]) -> None:
        payload = json.dumps(
            {"i": self._instance, "c": str(claim_id), "e": event}, separators=(",", ":")
        )
        if len(payload.encode()) > PAYLOAD_MAX:
            log.warning("claim event too large to relay (%d bytes)", len(payload))
            return
        task = asyncio.get_running_loop().create_task(self._notify(payload))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _notify(self, payload: str) -> None:
        async with self._send_lock:
            for _ in range(2):  # once more on a fresh connection if the old one broke
                try:
                    if self._sender is None or self._sender.closed:
                        self._sender = await psycopg.AsyncConnection.connect(
                            self._dsn, autocommit=True
                        )
                    await self._sender.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
                    return
                except psycopg.Error as err:
                    log.warning("could not relay a claim event: %s", err)
                    self._sender = None

    async def _listen(self) -> None:
        delay = 1.0
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._dsn, autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    delay = 1.0
                    async for note in conn.notifies():
                        self._receive(note.payload)
            except psycopg.Error as err:
                self.listening.clear()
                log.warning("claim relay: %s; listening again in %.0f s", err, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    def _receive(self, payload: str) -> None:
        try:
            message = json.loads(payload)
            if message["i"] == self._instance:
                return  # our own, delivered already
            self._hub.deliver(uuid.UUID(message["c"]), dict(message["e"]))
        except (ValueError, KeyError, TypeError) as err:
            log.warning("ignored a malformed claim relay message: %s", err)

    async def stop(self) -> None:
        self._hub.relay_to(None)
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        for task in list(self._pending):
            with contextlib.suppress(Exception):
                await task
        if self._sender is not None:
            await self._sender.close()
