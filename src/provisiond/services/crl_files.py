"""This instance's CRL files (the ``crl_dir`` setting), kept equal to the CRLs in the
database, for brokers that read a CRL from a file (Mosquitto's ``crlfile``).

Every instance runs this loop itself, under its own lease: each may have its own directory
(one per broker host), and each writes only what the database holds, so instances that
share a directory write the same bytes. When a file changed, the broker is told to read it
again (Mosquitto 2.0 reads its ``crlfile`` at start and on SIGHUP only); a reload that failed
is tried again (1 s, doubling to a minute, apart) even when the files are already right.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from provisiond.errors import BrokerUnavailable
from provisiond.store.uow import UnitOfWork

MAX_BACKOFF = timedelta(minutes=1)


class CrlFiles(Protocol):
    """Where the CRL files are, and the broker that reads them (integrations/crl_files.py)."""

    def write(self, crls: Mapping[str, tuple[int, str]], names: Sequence[str]) -> bool:
        """Write each CA's CRL in ``crls`` (name -> (number, PEM)) unless its file holds
        that number or a later one already, and the file of all of them (the CAs
        ``names``); whether any file changed."""
        ...

    def reload(self) -> None:
        """Make the broker read the files again (BrokerUnavailable if it cannot be told)."""
        ...


class CrlPublisher:
    def __init__(
        self, uow: Callable[[], UnitOfWork], files: CrlFiles, clock: Callable[[], datetime]
    ) -> None:
        self._uow = uow
        self._files = files
        self._clock = clock
        self._written: dict[str, int] = {}  # CA name -> the CRL number its file holds
        self._reload_owed = False
        self._backoff = timedelta(0)  # after a failed reload: 1 s doubling to a minute
        self._retry_at: datetime | None = None

    async def publish(self) -> int:
        """Bring the files in step with the database, and have the broker read them; how
        many CRLs were new to this publisher (0: none, and nothing was read but their
        numbers). BrokerUnavailable if the broker could not be told: it is told again
        later, with backoff (Mosquitto not running yet does not fill the log)."""
        async with self._uow().read() as uow:
            numbers = {
                s.name: s.number
                for s in await uow.certificates.crl_states()
                if s.signs and s.number > 0
            }
            changed = {name for name, n in numbers.items() if self._written.get(name) != n}
            if not changed and not self._reload_owed:
                return 0
            crls: dict[str, tuple[int, str]] = {}
            for name in sorted(changed):
                crl = await uow.certificates.crl(name)
                if crl is not None and crl.pem is not None:
                    crls[name] = (crl.number, crl.pem)
        if changed:
            written = await asyncio.to_thread(self._files.write, crls, sorted(numbers))
            self._reload_owed |= written
        self._written |= {name: number for name, (number, _) in crls.items()}
        if self._reload_owed and (self._retry_at is None or self._clock() >= self._retry_at):
            await self._reload()
        return len(changed)

    async def _reload(self) -> None:
        try:
            await asyncio.to_thread(self._files.reload)
        except BrokerUnavailable:
            self._backoff = min(max(2 * self._backoff, timedelta(seconds=1)), MAX_BACKOFF)
            self._retry_at = self._clock() + self._backoff
            raise
        self._reload_owed, self._backoff, self._retry_at = False, timedelta(0), None
