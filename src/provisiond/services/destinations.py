"""Where a webhook may send (domain/destinations.py), checked when it is created and again
on every connection a delivery opens.

A check is worth nothing if the connection then looks the name up again: DNS can answer a
public address to the check and 127.0.0.1 to the connection (DNS rebinding). So
:meth:`DestinationGuard.addresses` resolves a name once, checks every address it got (A and
AAAA), and returns them; the sender connects to those addresses only, sending the name in
the ``Host`` header and in TLS (SNI and certificate verification). The resolver is a
parameter, so tests can make a name resolve to what they need.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Sequence
from ipaddress import ip_address

from provisiond.domain.destinations import (
    Address,
    AllowList,
    BadHost,
    address_of,
    loopback_name,
    normal_host,
    numeric,
    refusal,
    url_destination,
)
from provisiond.errors import InvalidInput, Problem

# (host, port) -> the host's addresses as text; raises OSError when it has none.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
RESOLVE_SECONDS = 5.0


class DestinationRefused(Exception):
    """A destination webhooks may not reach; the message says why in words the webhook's
    owner may read (the category, never an address a name resolved to)."""


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system's resolver has for ``host`` (getaddrinfo, A and AAAA)."""
    answers = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [str(sockaddr[0]) for *_, sockaddr in answers]


class DestinationGuard:
    def __init__(
        self,
        allow: AllowList,
        resolver: Resolver = system_resolver,
        *,
        resolve_seconds: float = RESOLVE_SECONDS,
    ) -> None:
        self.allow = allow
        self._resolver = resolver
        self._resolve_seconds = resolve_seconds

    def check_literal(self, host: str) -> Address | None:
        """The address a host spells, checked (raises :class:`DestinationRefused`); None
        for a name (checked by :meth:`addresses` when it is resolved)."""
        try:
            name = normal_host(host)
            if not numeric(name):
                return None
            address = address_of(name)
        except BadHost as err:
            raise DestinationRefused(f"the host {err}") from None
        why = refusal(address, self.allow)
        if why:
            raise DestinationRefused(f"{address} is {_a(why)} address")
        return address

    async def addresses(self, host: str, port: int) -> list[Address]:
        """The addresses to connect to for ``host``, every one allowed: raises
        :class:`DestinationRefused`, or OSError / TimeoutError when a name does not
        resolve."""
        literal = self.check_literal(host)
        if literal is not None:
            return [literal]
        name = normal_host(host)
        if self.allow.trusts(name):
            return await self._resolve(name, port)
        if loopback_name(name):
            raise DestinationRefused(f"{name} is a loopback address")
        found = await self._resolve(name, port)
        for address in found:
            why = refusal(address, self.allow)
            if why:
                raise DestinationRefused(f"{name} resolves to {_a(why)} address")
        return found

    async def _resolve(self, name: str, port: int) -> list[Address]:
        async with asyncio.timeout(self._resolve_seconds):
            answers = await self._resolver(name, port)
        found = list(dict.fromkeys(ip_address(a.split("%", 1)[0]) for a in answers))
        if not found:
            raise OSError(f"{name} has no address")
        return found

    async def check_url(self, url: str) -> None:
        """A new webhook's URL (already :func:`~provisiond.domain.webhooks.parse_url`'s):
        raises InvalidInput naming ``url`` when it may not be sent to. A name that does not
        resolve (yet) passes: every delivery checks again."""
        host, port = url_destination(url)
        try:
            await self.addresses(host, port)
        except DestinationRefused as err:
            problem = (
                f"must be a public destination: {err}; an intranet receiver needs "
                f"webhooks__allow_networks or webhooks__allow_hosts"
            )
            raise InvalidInput(f"url {problem}", problems=[Problem(problem, field="url")]) from None
        except (OSError, TimeoutError):
            pass


def _a(category: str) -> str:
    return ("an " if category[0] in "aeiou" else "a ") + category
