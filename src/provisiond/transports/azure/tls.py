"""The DPS listeners' TLS: TLS 1.2 or later, the server certificate of ``dps__tls_cert``,
and a client certificate asked for but optional (symmetric-key devices send none); one that
is sent must chain to the device CA of an X.509 enrollment group, else the handshake fails.

The CAs change while the server runs (a group made by the CLI, in another process): they are
reloaded every ``dps__ca_refresh_seconds``, and each new handshake takes the newest context
(the server-name callback swaps it in, before the client's certificate is checked).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

log = logging.getLogger(__name__)


def _context(cert: Path, key: Path, cas: list[str]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    context.verify_mode = ssl.CERT_OPTIONAL
    if cas:
        context.load_verify_locations(cadata="\n".join(cas))
    return context


class DpsTls:
    """The listeners' context, kept in step with the enrollment groups' CAs."""

    def __init__(self, cert: Path, key: Path, cas: list[str]) -> None:
        self._cert, self._key = cert, key
        self._cas = sorted(cas)
        self._current = _context(cert, key, self._cas)
        self.context = _context(cert, key, self._cas)  # the one the servers hold
        self.context.sni_callback = self._pick

    def _pick(self, sslobj: ssl.SSLObject, _name: str | None, _ctx: ssl.SSLContext) -> None:
        sslobj.context = self._current

    def update(self, cas: list[str]) -> None:
        cas = sorted(cas)
        if cas != self._cas:
            self._cas = cas
            self._current = _context(self._cert, self._key, cas)

    async def keep_fresh(self, load: Callable[[], Awaitable[list[str]]], every: float) -> None:
        """Reload the CAs every ``every`` seconds until cancelled."""
        while True:
            await asyncio.sleep(every)
            try:
                self.update(await load())
            except Exception:  # the database away for a while: keep the CAs known
                log.warning("could not reload the DPS enrollment groups' CAs", exc_info=True)
