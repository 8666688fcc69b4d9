"""This instance's CRL files (the ``crl_dir`` setting), kept equal to the CRLs in the
database, for brokers that read a CRL from a file (Mosquitto's ``crlfile``).

Every instance runs this loop itself, under its own lease: each may have its own directory
(one per broker host), and each writes only what the database holds, so instances that
share a directory write the same bytes. When a file changed, the broker is told to read it
again (Mosquitto 2.0 reads its ``crlfile`` at start and on SIGHUP only); a reload that failed
is retried on the next pass even when the files are already right.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from provisiond.store.uow import UnitOfWork


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
    def __init__(self, uow: Callable[[], UnitOfWork], files: CrlFiles) -> None:
        self._uow = uow
        self._files = files
        self._written: dict[str, int] = {}  # CA name -> the CRL number its file holds
        self._reload_owed = False

    async def publish(self) -> int:
        """Bring the files in step with the database; how many CRLs were new to this
        publisher (0: none, and nothing was read but their numbers)."""
        async with self._uow().read() as uow:
            numbers = {s.name: s.number for s in await uow.certificates.crl_states()
                       if s.signs and s.number > 0}
            changed = {name for name, n in numbers.items() if self._written.get(name) != n}
            if not changed and not self._reload_owed:
                return 0
            crls: dict[str, tuple[int, str]] = {}
            for name in sorted(changed):
                crl = await uow.certificates.crl(name)
                if crl is not None and crl.pem is not None:
                    crls[name] = (crl.number, crl.pem)
        if await asyncio.to_thread(self._files.write, crls, sorted(numbers)):
            self._reload_owed = True
        if self._reload_owed:
            await asyncio.to_thread(self._files.reload)
            self._reload_owed = False
        self._written |= {name: number for name, (number, _) in crls.items()}
        return len(changed)
