"""Where webhooks may send: public addresses only, unless the operator allows a network or a
host name (an intranet receiver).

A webhook URL is chosen by whoever may create webhooks, and provisiond POSTs to it from
inside the operator's network: left open, a URL such as ``http://169.254.169.254/`` or
``http://10.0.0.5:6379/`` makes provisiond a proxy into that network. So a URL's host must
be, or resolve only to, public unicast addresses. Every spelling the C library would turn
into an address counts as that address: ``2130706433``, ``0177.0.0.1``, ``0x7f.1`` and
``127.1`` (inet_aton's forms), a trailing dot, upper case, IPv6 in brackets with a zone id,
IPv4 inside IPv6 (mapped, NAT64, 6to4), and Unicode digits that IDNA folds to ASCII.

Pure: nothing here resolves or connects. The caller resolves a name once, asks about every
address it got (:func:`refusal`), and connects to exactly those (services/destinations.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    ip_network,
)
from urllib.parse import urlsplit

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network

# What is not public, most specific first; the name says why in an error message.
_IPV4: tuple[tuple[IPv4Network, str], ...] = tuple(
    (IPv4Network(n), why)
    for n, why in (
        ("0.0.0.0/8", "unspecified"),  # "this network"; 0.0.0.0 reaches the host itself
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "shared (carrier-grade NAT)"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),  # and cloud metadata services
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "reserved"),  # IETF protocol assignments
        ("192.0.2.0/24", "documentation"),
        ("192.88.99.0/24", "reserved"),  # 6to4 relays (deprecated)
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "reserved"),  # benchmarking
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),  # and 255.255.255.255, broadcast
    )
)
_IPV6: tuple[tuple[IPv6Network, str], ...] = tuple(
    (IPv6Network(n), why)
    for n, why in (
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("::/96", "reserved"),  # IPv4-compatible (deprecated)
        ("64:ff9b:1::/48", "reserved"),  # local-use NAT64
        ("100::/64", "reserved"),  # discard-only
        ("2001::/23", "reserved"),  # IETF protocol assignments, Teredo
        ("2001:db8::/32", "documentation"),
        ("3fff::/20", "documentation"),
        ("fc00::/7", "private"),  # unique local (RFC 4193)
        ("fe80::/10", "link-local"),
        ("fec0::/10", "private"),  # site-local (deprecated)
        ("ff00::/8", "multicast"),
    )
)
_GLOBAL_UNICAST = IPv6Network("2000::/3")
_MAPPED = IPv6Network("::ffff:0:0/96")
_NAT64 = IPv6Network("64:ff9b::/96")
_SIX_TO_FOUR = IPv6Network("2002::/16")

_NUMBER = re.compile(r"0x[0-9a-f]*|[0-9]+")
_NAME = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*")


class BadHost(ValueError):
    """A URL's host that is neither a valid name nor an address."""


def embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 address reaches through: IPv4-mapped, NAT64 (64:ff9b::/96)
    or 6to4 (2002::/16)."""
    if address in _MAPPED or address in _NAT64:
        return IPv4Address(int(address) & 0xFFFF_FFFF)
    if address in _SIX_TO_FOUR:
        return address.sixtofour
    return None


def category(address: Address) -> str | None:
    """Why ``address`` is not public ("loopback", "private" …), or None if it is."""
    if isinstance(address, IPv6Address):
        address = IPv6Address(address.packed)  # without a zone id
        inner = embedded_ipv4(address)
        if inner is not None:
            return category(inner)
        for net6, why in _IPV6:
            if address in net6:
                return why
        return None if address in _GLOBAL_UNICAST else "reserved"
    for net4, why in _IPV4:
        if address in net4:
            return why
    return None


@dataclass(frozen=True, slots=True)
class AllowList:
    """What the operator lets webhooks reach although it is not public: ``networks`` (any
    address in them) and ``hosts`` (names whose addresses are not checked; ``*.corp.example``
    is every name under corp.example)."""

    networks: tuple[Network, ...] = ()
    hosts: tuple[str, ...] = ()

    @classmethod
    def parse(cls, networks: Iterable[str] = (), hosts: Iterable[str] = ()) -> AllowList:
        """From settings; raises ValueError naming the entry that is wrong."""
        nets = []
        for text in networks:
            try:
                nets.append(ip_network(text.strip(), strict=False))
            except ValueError:
                raise ValueError(
                    f"{text!r} is not a network (CIDR such as 10.1.0.0/16, or an address)"
                ) from None
        names = []
        for text in hosts:
            name = text.strip().lower().rstrip(".")
            bare = name.removeprefix("*.")
            if not _NAME.fullmatch(bare) or literal_address(bare) is not None:
                raise ValueError(f"{text!r} is not a host name (or *.domain)")
            names.append(name)
        return cls(tuple(nets), tuple(names))

    def trusts(self, host: str) -> bool:
        """Whether ``host`` (a normalised name) is allowed whatever it resolves to."""
        return any(host == h or (h.startswith("*.") and host.endswith(h[1:])) for h in self.hosts)

    def covers(self, address: Address) -> bool:
        plain = IPv6Address(address.packed) if isinstance(address, IPv6Address) else address
        inner = embedded_ipv4(plain) if isinstance(plain, IPv6Address) else None
        return any(
            a in net
            for net in self.networks
            for a in (plain, inner)
            if a is not None and a.version == net.version
        )


def refusal(address: Address, allow: AllowList = AllowList()) -> str | None:
    """Why a webhook may not be sent to ``address`` (its category), or None if it may."""
    if allow.covers(address):
        return None
    return category(address)


def normal_host(host: str) -> str:
    """A URL's host as compared and resolved: IDNA-folded to ASCII (Unicode digits and
    dots become ASCII ones), lower case, without brackets or trailing dots; raises
    :class:`BadHost` for anything that is neither a host name nor an address."""
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if ":" in text:
        text = text.lower()
        if literal_address(text) is None:
            raise BadHost("is not a valid IPv6 address")
        return text
    if not text.isascii():
        try:
            text = text.encode("idna").decode("ascii")
        except UnicodeError:
            raise BadHost("is not a valid host name") from None
    text = text.lower().rstrip(".")
    if not _NAME.fullmatch(text):
        raise BadHost("is not a valid host name")
    return text


def numeric(host: str) -> bool:
    """Whether a (normalised) host is an address rather than a name: IPv6, or IPv4 in
    any form inet_aton takes (the C library never looks such a host up in DNS, and a
    name cannot be all digits)."""
    return ":" in host or all(_NUMBER.fullmatch(p) for p in host.split("."))


def literal_address(host: str) -> Address | None:
    """The address a (normalised) host spells, in every spelling inet_aton takes (one to
    four parts, each decimal, octal with a leading 0, or hex with 0x; the last fills the
    remaining bytes) or as IPv6 (its zone id dropped); None for a name or a malformed
    number."""
    if ":" in host:
        try:
            return IPv6Address(host.split("%", 1)[0])
        except ValueError:
            return None
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or not all(_NUMBER.fullmatch(p) for p in parts):
        return None
    try:
        values = [
            int(p[2:] or "0", 16)
            if p.startswith("0x")
            else int(p, 8)
            if len(p) > 1 and p.startswith("0")
            else int(p)
            for p in parts
        ]
    except ValueError:  # 08, 09: not octal
        return None
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (4 - len(head)):
        return None
    number = last
    for i, v in enumerate(head):
        number |= v << (8 * (3 - i))
    return IPv4Address(number)


def loopback_name(host: str) -> bool:
    """``localhost`` and every name under it are loopback by definition (RFC 6761)."""
    return host == "localhost" or host.endswith(".localhost")


def url_destination(url: str) -> tuple[str, int]:
    """The (normalised host, port) a checked webhook URL (:func:`parse_url`) sends to."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return normal_host(parts.hostname or ""), port


def address_of(host: str) -> Address:
    """The address a numeric host spells; raises :class:`BadHost` for a malformed one
    (which the C library might look up as a name)."""
    address = literal_address(host)
    if address is None:
        raise BadHost("is not a valid address")
    return address
