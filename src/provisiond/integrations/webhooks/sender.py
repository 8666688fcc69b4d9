"""Webhook deliveries over HTTP (aiohttp: its client keeps up with a thousand deliveries a
second on one core, where httpx's pool spends most of its time scheduling). One pooled
session, no redirects followed.

Every connection goes where the :class:`DestinationGuard` said: the connector's resolver is
the guard (a name is resolved once, every address checked, and the connection made to
those addresses, with the name kept for ``Host``, SNI and certificate checks), and a URL
whose host is an address is checked before the request (aiohttp does not resolve those).
A kept-alive connection goes on to the address that was checked when it was opened.

What a failure is recorded as is a class, never what the socket met (see Sender).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from provisiond import __version__
from provisiond.services.destinations import DestinationGuard, DestinationRefused
from provisiond.services.webhooks import SendFailed

log = logging.getLogger(__name__)
ANSWER_MAX = 64 * 1024  # bytes of an answer read (and dropped); a longer one closes


class GuardedResolver(AbstractResolver):
    """aiohttp's name resolution, by way of the guard."""

    def __init__(self, guard: DestinationGuard) -> None:
        self._guard = guard

    async def resolve(
        self,
        host: str,
        port: int = 0,
        family: socket.AddressFamily = socket.AF_INET,  # noqa: ARG002
    ) -> list[ResolveResult]:
        """Every address the guard allows, of either family."""
        return [
            ResolveResult(
                hostname=host,
                host=str(address),
                port=port,
                family=socket.AF_INET6 if address.version == 6 else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            )
            for address in await self._guard.addresses(host, port)
        ]

    async def close(self) -> None:
        pass


class HttpSender:
    def __init__(
        self,
        timeout: float,
        *,
        guard: DestinationGuard,
        connections: int = 100,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """``ssl_context``: how receivers' certificates are verified (default: against
        the system's CAs)."""
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._guard = guard
        self._connections = connections
        self._ssl: ssl.SSLContext | bool = ssl_context or True
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:  # made inside the running loop
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(
                    limit=self._connections,
                    limit_per_host=0,
                    resolver=GuardedResolver(self._guard),
                    ssl=self._ssl,
                ),
                headers={"User-Agent": f"provisiond-webhooks/{__version__}"},
                trust_env=False,
            )  # no proxy from the environment
        return self._session

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        try:
            target = URL(url)
            self._guard.check_literal(target.raw_host or "")
            async with self._open().post(
                target, data=body, headers=headers, allow_redirects=False
            ) as response:
                await _drop_answer(response)
                return response.status
        except DestinationRefused as err:
            raise SendFailed(f"not sent: {err}") from err
        except TimeoutError as err:
            raise SendFailed("no answer in time") from err
        except aiohttp.ClientConnectorDNSError as err:
            raise SendFailed("the host name does not resolve") from err
        except (aiohttp.ClientError, OSError, ValueError) as err:
            log.debug("a webhook delivery failed: %r", err)  # the operator's log only
            raise SendFailed("cannot reach the receiver") from err

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            await asyncio.sleep(0)  # let the connector's transports close
            self._session = None


async def _drop_answer(response: aiohttp.ClientResponse) -> None:
    """Read a short answer to its end, so the connection can be used again; a longer one
    is not read on (its connection is closed): a receiver cannot make provisiond hold or
    read an endless body. Nothing of it is kept."""
    read = 0
    while not response.content.at_eof():
        read += len(await response.content.readany())
        if read > ANSWER_MAX:
            response.close()
            return
