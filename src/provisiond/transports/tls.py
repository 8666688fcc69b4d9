"""TLS with client certificates that chain to CAs kept in the database, shared by the
listeners that accept them: Azure DPS's (transports/azure/, the CAs of X.509 enrollment
groups) and the provisioning listeners' certificate-chain attestation (transports/mqtt/,
transports/http/mtls.py, the device CAs of profiles).

TLS 1.2 or later, the server certificate given, and a client certificate asked for but
optional (a device proving itself otherwise sends none); one that is sent must chain to one
of the CAs, else the handshake fails. A CA may be an intermediate: it is then the anchor
(the partial-chain flag), and the device's chain need go no further.

The CAs change while the server runs (made by the CLI, in another process): they are
reloaded every few seconds, and each new handshake takes the newest context (the
server-name callback swaps it in, before the client's certificate is checked; OpenSSL calls
it whether or not the client names a server).
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
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    if cas:
        context.load_verify_locations(cadata="\n".join(cas))
    return context


def peer_certificate(transport: asyncio.BaseTransport) -> bytes | None:
    """The TLS client certificate (DER) the handshake verified, if the client sent one."""
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der: bytes | None = ssl_object.getpeercert(binary_form=True)
    return der


class ClientCertificateTls:
    """A listener's context, kept in step with the CAs its client certificates chain to."""

    def __init__(self, cert: Path, key: Path, cas: list[str], *, what: str) -> None:
        self._cert, self._key, self._what = cert, key, what
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
                log.warning("could not reload the %s", self._what, exc_info=True)
