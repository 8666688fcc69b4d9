"""What every MQTT session of provisiond's listeners shares (the provisioning listener here,
AWS's fleet provisioning in transports/aws/, Azure DPS in transports/azure/): the caps and
deadlines, a place under the connection gate, the timer that ends a session silent too long
or open too long, reading paused while the peer does not read, and the way a session ends.

A subclass keeps its own protocol: what it reads (``data_received``), when it is due
(``_due``: the connect deadline before CONNECT, none while it owes an answer, else the idle
one; never past the session's deadline), what it checks of a new connection
(``_accept``: a TLS client certificate) and whether it may say goodbye (``_says_goodbye``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from provisiond.protocols import mqtt
from provisiond.services.connection_caps import Gate, plan_caps, source_of

if TYPE_CHECKING:
    from provisiond.settings import Settings

SERVER_BUSY = 0x89
KEEP_ALIVE_TIMEOUT = 0x8D


@dataclass(frozen=True, slots=True)
class Limits:
    """The listeners' deadlines and caps (settings ``mqtt_*``)."""

    connect_seconds: float = 10.0
    idle_seconds: float = 15.0
    session_seconds: float = 60.0
    max_sessions: int = 4096
    max_per_address: int = 256

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        caps = plan_caps(settings)  # fitted to the descriptor limit, as the HTTP server's
        return cls(
            settings.limits.mqtt_connect_timeout_seconds,
            settings.limits.mqtt_idle_seconds,
            settings.provisioning.mqtt_session_seconds,
            caps.mqtt_sessions,
            caps.mqtt_per_address,
        )


class Session(asyncio.Protocol):
    """One MQTT connection, driven by the event loop's callbacks (no task or stream per
    connection)."""

    def __init__(self, limits: Limits, gate: Gate[Any], max_packet: int | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        self.limits = limits
        self.gate = gate
        self.admitted = False
        self.packets = (
            mqtt.PacketReader() if max_packet is None else mqtt.PacketReader(max_packet=max_packet)
        )
        self.transport: asyncio.Transport | None = None
        self.source = "unknown"
        self.level = 4
        self.idle = limits.idle_seconds  # until CONNECT says its keepalive
        self.connect_by = self.loop.time() + limits.connect_seconds
        self.deadline = self.loop.time() + limits.session_seconds
        self.last_heard = self.loop.time()
        self.timer: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ the event loop's

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a stream server's
        peer = transport.get_extra_info("peername")
        self.source = str(peer[0]) if peer else "unknown"
        if not self._accept(transport) or not self.gate.admit(self, source_of(self.source)):
            self._end()  # refused (its certificate), or every session at the cap is busy
            return
        self.admitted = True
        self._arm()

    def evict(self) -> None:
        """The gate gave this session's place to a newer connection."""
        self.admitted = False
        self._close(SERVER_BUSY)

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: ARG002
        if self.timer is not None:
            self.timer.cancel()
        if self.admitted:
            self.admitted = False
            self.gate.leave(self)
        self.transport = None

    def pause_writing(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None:
            self.transport.resume_reading()

    # ------------------------------------------------------------------ a subclass's

    def _accept(self, transport: asyncio.BaseTransport) -> bool:  # noqa: ARG002
        """Whether this connection may have a session (before it takes a place)."""
        return True

    def _due(self) -> float:
        """When the session ends unless the peer is heard from first."""
        raise NotImplementedError

    def _says_goodbye(self) -> bool:
        """Whether a DISCONNECT may be sent before closing."""
        return True

    # ------------------------------------------------------------------ shared

    def _arm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.loop.call_at(self._due(), self._check_idle)

    def _check_idle(self) -> None:
        due = self._due()
        if self.loop.time() < due:
            self.timer = self.loop.call_at(due, self._check_idle)
        else:
            self._close(KEEP_ALIVE_TIMEOUT)

    def _send(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _close(self, reason: int) -> None:
        packet = mqtt.encode_disconnect(self.level, reason)
        if packet is not None and self._says_goodbye():
            self._send(packet)
        self._end()

    def _end(self) -> None:
        if self.transport is not None:
            self.transport.close()
