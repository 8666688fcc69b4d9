"""Caps on the connections a client can hold (HTTP and MQTT alike) and the descriptors they
are fitted into.

:class:`Gate` admits connections under a total cap and a cap per source. A connection that
arrives at a cap takes the place of the one that has been idle longest (waiting for its
first bytes, its headers or its CONNECT, or between requests) rather than being refused:
whoever holds sockets open without using them is cut off first, so a client that sends a
whole request at once is always served. Only when every connection at the cap is busy is
the newcomer refused.

:func:`plan_caps` fits the connection caps into the process's descriptor limit: each
connection is a descriptor, and so is every connection the event loop accepts in one go
(at most its listen backlog) before a cap can close it. The HTTP server (web/http_server.py)
and the MQTT provisioning listener (transports/mqtt/) share this budget.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import resource
from collections import Counter, OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from provisiond.settings import Settings

log = logging.getLogger("provisiond.limits")

HTTP_BACKLOG = 256  # connections the kernel queues for accept (uvicorn's own is 2048)
MQTT_BACKLOG = 128
OTHER_DESCRIPTORS = 100  # database, files, the event loop, outgoing connections
LEAST_CAP = 16


class Evictable(Protocol):
    def evict(self) -> None:
        """Close this connection to make room for another (the gate has let it go)."""


C = TypeVar("C", bound=Evictable)


class Gate(Generic[C]):
    """Connections under a total cap and a cap per source (see the module's docstring)."""

    def __init__(self, total: int, per_source: int | None = None) -> None:
        self.total = total
        self.per_source = per_source
        self._source: dict[C, Hashable] = {}
        self._count: Counter[Hashable] = Counter()
        self._idle: OrderedDict[C, None] = OrderedDict()
        self._idle_from: dict[Hashable, OrderedDict[C, None]] = {}

    def __len__(self) -> int:
        return len(self._source)

    def admit(self, conn: C, source: Hashable = None) -> bool:
        """Let ``conn`` in (as idle), evicting the longest idle one at a full cap; False:
        refused, every connection at the cap is busy."""
        if (
            self.per_source is not None
            and self._count[source] >= self.per_source
            and not self._evict(self._idle_from.get(source))
        ):
            return False
        if len(self._source) >= self.total and not self._evict(self._idle):
            return False
        self._source[conn] = source
        self._count[source] += 1
        self.idle(conn)
        return True

    def idle(self, conn: C) -> None:
        """``conn`` waits on its client: the first to go at a full cap (newest last)."""
        if conn in self._source:
            source = self._source[conn]
            self._idle[conn] = None
            self._idle.move_to_end(conn)
            self._idle_from.setdefault(source, OrderedDict())[conn] = None

    def busy(self, conn: C) -> None:
        """``conn`` has a request in hand: it is not evicted."""
        if conn in self._idle:
            del self._idle[conn]
            self._forget_idle(conn)

    def leave(self, conn: C) -> None:
        """``conn`` closed (or was evicted): its place is free."""
        source = self._source.pop(conn, _ABSENT)
        if source is _ABSENT:
            return
        self._idle.pop(conn, None)
        self._forget_idle(conn, source)
        self._count[source] -= 1
        if not self._count[source]:
            del self._count[source]

    def _forget_idle(self, conn: C, source: Hashable = None) -> None:
        key = self._source.get(conn, source)
        waiting = self._idle_from.get(key)
        if waiting is not None:
            waiting.pop(conn, None)
            if not waiting:
                del self._idle_from[key]

    def _evict(self, idle: OrderedDict[C, None] | None) -> bool:
        if not idle:
            return False
        victim = next(iter(idle))
        self.leave(victim)
        victim.evict()
        return True


_ABSENT: Any = object()


def source_of(host: str | None) -> str:
    """The source a per-address cap counts: the address, an IPv6 one by its /64 (one
    host's usual share), an IPv4-mapped one as IPv4."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


# ------------------------------------------------------------------------------ descriptors


@dataclass(frozen=True, slots=True)
class Caps:
    """The connection caps in force, and the descriptors they were fitted into."""

    http_connections: int
    http_reserved: int
    mqtt_sessions: int
    mqtt_per_address: int
    limit: int  # the process's descriptor limit (soft)
    needed: int  # what the settings' caps need

    @property
    def lowered(self) -> bool:
        return self.needed > self.limit


def descriptors_needed(settings: Settings) -> int:
    mqtt = (
        settings.limits.mqtt_max_sessions + MQTT_BACKLOG
        if settings.provisioning.mqtt_enabled
        else 0
    )
    return (
        OTHER_DESCRIPTORS
        + HTTP_BACKLOG
        + settings.limits.http_max_connections
        + settings.limits.http_reserved_connections
        + mqtt
    )


def plan_caps(settings: Settings, limit: int | None = None) -> Caps:
    """The caps of ``settings``, lowered in proportion when ``limit`` (default: this
    process's) is below what they need, so that no cap is reached only by running out of
    descriptors (where the event loop stops accepting anyone, /healthz included)."""
    if limit is None:
        limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    needed = descriptors_needed(settings)
    http, mqtt = settings.limits.http_max_connections, settings.limits.mqtt_max_sessions
    per_address = settings.limits.mqtt_max_sessions_per_address
    if limit != resource.RLIM_INFINITY and limit < needed:
        room = limit - (needed - http - (mqtt if settings.provisioning.mqtt_enabled else 0))
        wanted = http + (mqtt if settings.provisioning.mqtt_enabled else 0)
        http = max(LEAST_CAP, http * room // wanted)
        lowered = max(LEAST_CAP, mqtt * room // wanted)
        per_address = max(1, per_address * lowered // mqtt)  # the same share of the whole
        mqtt = lowered
    else:
        limit = max(limit, needed) if limit == resource.RLIM_INFINITY else limit
    return Caps(
        http, settings.limits.http_reserved_connections, mqtt, min(mqtt, per_address), limit, needed
    )


def fit_descriptors(settings: Settings) -> Caps:
    """At start: raise the soft descriptor limit to the hard one if the caps need more,
    then the caps that fit; one warning line when they had to be lowered."""
    needed = descriptors_needed(settings)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed and soft != hard:
        target = needed if hard == resource.RLIM_INFINITY else hard
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    caps = plan_caps(settings)
    if caps.lowered:
        mqtt = (
            f" + mqtt_max_sessions {settings.limits.mqtt_max_sessions} + {MQTT_BACKLOG} backlog"
            if settings.provisioning.mqtt_enabled
            else ""
        )
        log.warning(
            "the descriptor limit (RLIMIT_NOFILE, systemd LimitNOFILE) is %d, below the %d "
            "the caps need (http_max_connections %d + http_reserved_connections %d + %d "
            "backlog%s + %d other): serving with http_max_connections %d%s; raise the "
            "limit (docs/deployment.md)",
            caps.limit,
            caps.needed,
            settings.limits.http_max_connections,
            settings.limits.http_reserved_connections,
            HTTP_BACKLOG,
            mqtt,
            OTHER_DESCRIPTORS,
            caps.http_connections,
            f", mqtt_max_sessions {caps.mqtt_sessions}"
            if settings.provisioning.mqtt_enabled
            else "",
        )
    return caps
