"""The address a request comes from: one rule for every limit and every log line.

The client is the peer (the other end of the TCP connection), unless the peer is one of the
``trusted_proxies``. Then the client is read from ``X-Forwarded-For``, from the right: the
last entry is the address the nearest proxy saw, and each entry left of it was written by
the proxy before; the first entry, walking left, that is not a trusted proxy is the client.
Entries further left were written by the client itself (anyone can send the header) and are
never read. An entry that is not an address ends the walk at the last proxy read.

Only ``X-Forwarded-For`` is read. ``Forwarded`` (RFC 7239) and ``X-Real-IP`` are ignored:
a proxy that appends one header passes the others on as the client sent them, so honouring
a second header would let a client choose its address. Configure the proxy to append
``X-Forwarded-For`` (nginx ``$proxy_add_x_forwarded_for``, HAProxy ``option forwardfor``;
cloud load balancers do by default); docs/deployment.md shows each setup.

:meth:`ClientAddresses.rewrite` puts the result in the ASGI scope before anything reads it,
so ``request.client.host`` is the client everywhere: the device API's and the pages' rate
limits, the session records and the security log.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Any

Address = IPv4Address | IPv6Address
FORWARDING_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip")


def parse_address(text: str) -> Address | None:
    """An address as a peer or an X-Forwarded-For entry spells it (``203.0.113.7``,
    ``2001:db8::1``, ``[2001:db8::1]:443``, ``203.0.113.7:5100``), IPv4-mapped IPv6
    addresses as IPv4; None for anything else."""
    text = text.strip()
    if text.startswith("["):  # [IPv6] or [IPv6]:port
        text, bracket, port = text[1:].partition("]")
        if not bracket or (port and not (port[0] == ":" and port[1:].isdigit())):
            return None
    elif text.count(":") == 1:  # IPv4:port
        text, _, port = text.partition(":")
        if not port.isdigit():
            return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class ClientAddresses:
    """Finds the client of a request behind the ``trusted`` proxies."""

    def __init__(self, trusted: Sequence[IPv4Network | IPv6Network]) -> None:
        self._trusted = tuple(trusted)

    def trusts(self, address: Address) -> bool:
        return any(address in network for network in self._trusted)

    def client(self, peer: str, forwarded_for: Iterable[str]) -> str:
        """The client of a request from ``peer`` carrying these X-Forwarded-For values."""
        nearest = parse_address(peer)
        if nearest is None or not self.trusts(nearest):
            return peer
        hops = [hop for value in forwarded_for for hop in value.split(",")]
        for hop in reversed(hops):
            address = parse_address(hop)
            if address is None:
                break  # not written by a proxy of ours: the last proxy is all that is known
            if not self.trusts(address):
                return str(address)
            nearest = address
        return str(nearest)  # every hop is a proxy of ours: the farthest is the client

    def rewrite(self, scope: MutableMapping[str, Any]) -> None:
        """Set an ASGI scope's ``client`` to the request's client (the port is unknown
        behind a proxy: 0)."""
        peer = scope.get("client")
        if not peer:
            return
        values = [v.decode("latin-1") for k, v in scope["headers"] if k == b"x-forwarded-for"]
        client = self.client(peer[0], values)
        if client != peer[0]:
            scope["client"] = (client, 0)


def forwarded(headers: Mapping[str, str]) -> bool:
    """Whether a proxy says it forwarded this request (any forwarding header at all)."""
    return any(name in headers for name in FORWARDING_HEADERS)
