"""Background work of `provisiond serve`: loops that each run under a lease in the database,
so that with several instances on one database each loop runs in one of them at a time.

A loop calls its step until the step finds nothing to do, then sleeps ``idle`` seconds (or
until woken). Failures are logged and retried after a pause; they never end the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from provisiond.errors import ProvisiondError
from provisiond.store.uow import UnitOfWork

log = logging.getLogger(__name__)
LEASE = timedelta(seconds=30)
INSTANCE_PREFIX = "instance:"  # each instance's own lease: its heartbeat
STOP_GRACE = 5.0  # seconds stop() lets a step in progress finish before cancelling it


@dataclass(frozen=True, slots=True)
class Loop:
    name: str
    step: Callable[[], Awaitable[int]]  # work done (0: nothing to do)
    idle: float  # seconds to wait when there was nothing to do
    lease: str = ""  # the lease it runs under (default: its name); loops may share one

    @property
    def lease_name(self) -> str:
        return self.lease or self.name


def holder_name() -> str:
    """This process, as named in leases: host, pid and a random part."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Background:
    def __init__(
        self, uow: Callable[[], UnitOfWork], clock: Callable[[], datetime], loops: list[Loop]
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._loops = loops
        self.holder = holder_name()
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = {loop.name: asyncio.Event() for loop in loops}
        # one lease per name for the whole process: loops that share one do not race for it
        self._held: dict[str, datetime] = {}
        self._taking = {loop.lease_name: asyncio.Lock() for loop in loops}
        self._stopping = False

    def heartbeat(self, on_count: Callable[[int], None], every: float = 10.0) -> Loop:
        """A loop under this instance's own lease (its heartbeat) that tells ``on_count``
        how many instances are alive on the database."""

        async def count() -> int:
            async with self._uow().read() as uow:
                on_count(await uow.leases.live(INSTANCE_PREFIX, self._clock()))
            return 0

        return Loop("instances", count, idle=every, lease=INSTANCE_PREFIX + self.holder)

    def add(self, loop: Loop) -> None:
        """Add a loop before start()."""
        self._loops.append(loop)
        self._wake[loop.name] = asyncio.Event()
        self._taking.setdefault(loop.lease_name, asyncio.Lock())

    def wake(self, name: str | None = None) -> None:
        for key, event in self._wake.items():
            if name is None or key == name:
                event.set()

    async def _lease(self, name: str) -> bool:
        """Whether this process holds the lease ``name`` (taking or renewing it when due)."""
        async with self._taking[name]:
            now = self._clock()
            until = self._held.get(name)
            if until is not None and now < until - LEASE / 3:
                return True
            async with self._uow() as uow:
                held = await uow.leases.acquire(name, self.holder, now, now + LEASE)
                await uow.commit()
            if held:
                self._held[name] = now + LEASE
            else:
                self._held.pop(name, None)
            return held

    async def _run(self, loop: Loop) -> None:
        wake = self._wake[loop.name]
        while not self._stopping:
            pause = loop.idle
            try:
                if not await self._lease(loop.lease_name):
                    # another instance does this work: look again before the lease can lapse
                    pause = min(loop.idle, LEASE.total_seconds() / 3)
                elif self._stopping:
                    break  # stop() came while the lease was being taken: start no new step
                elif await loop.step():
                    continue
            except asyncio.CancelledError:
                raise
            except ProvisiondError as err:
                log.warning("%s: %s", loop.name, err)
                pause = min(max(loop.idle, 1.0), 30.0)
            except Exception:
                log.exception("%s failed; retrying", loop.name)
                pause = min(max(loop.idle, 5.0), 60.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), pause)
            wake.clear()

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(loop), name=f"provisiond-{loop.name}")
            for loop in self._loops
        ]

    async def stop(self) -> None:
        """Let each loop finish the step it is in (up to STOP_GRACE), then release the
        leases. A step cut short by cancellation would leave its transaction to the
        connection pool's clean-up."""
        self._stopping = True
        self.wake()
        if self._tasks:
            _, late = await asyncio.wait(self._tasks, timeout=STOP_GRACE)
            for task in late:
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._tasks = []
        for lease in dict.fromkeys(loop.lease_name for loop in self._loops):
            with contextlib.suppress(ProvisiondError):
                async with self._uow() as uow:
                    await uow.leases.release(lease, self.holder)
                    await uow.commit()
