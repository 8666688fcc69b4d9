"""The MQTT provisioning listener: a dedicated endpoint for provisioning sessions, not a
general broker (as Azure's provisioning service is).

A device connects with MQTT 3.1.1 or 5, user name ``provision`` (any client id, empty
included), subscribes to ``/provision/response`` and publishes ThingsBoard's provision
request to ``/provision/request`` — possibly before the SUBACK. The answer goes to that
session only; an answer ready before the subscription waits for it. Anything else — another
user name, another topic, a second request in the session — closes the session (MQTT 5
says why).

Nothing holds a socket for long (docs/security.md#caps): a connection has
``mqtt_connect_timeout_seconds`` to send CONNECT; a session silent past its keep-alive x 1.5,
or past ``mqtt_idle_seconds`` whatever its keep-alive (0 included), while it is owed no
answer, is closed, and none lasts past ``mqtt_session_seconds``. At most
``mqtt_max_sessions`` are open, ``mqtt_max_sessions_per_address`` from one address: at a cap
a new connection takes the place of the session idle longest (one not waiting for its
answer), or is closed when none is.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import orjson

from provisiond.protocols import mqtt
from provisiond.services.connection_caps import MQTT_BACKLOG, Gate, plan_caps, source_of
from provisiond.services.provisioning import Provisioner, Source

if TYPE_CHECKING:
    from provisiond.settings import Settings

log = logging.getLogger(__name__)
REQUEST_TOPIC = "/provision/request"
RESPONSE_TOPIC = "/provision/response"
USERNAME = "provision"


@dataclass(frozen=True, slots=True)
class Limits:
    """The listener's deadlines and caps (settings ``mqtt_*``)."""

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


class _Session(asyncio.Protocol):
    """One provisioning session, driven by the event loop's callbacks (no task, no stream
    per connection: a session is a handful of small packets). Only the provisioning itself
    runs as a task; reading stops while the peer does not read what it is sent."""

    def __init__(self, provisioner: Provisioner, limits: Limits, gate: Gate[_Session]) -> None:
        self.provisioner = provisioner
        self.loop = asyncio.get_running_loop()
        self.limits = limits
        self.gate = gate
        self.admitted = False
        self.packets = mqtt.PacketReader()
        self.transport: asyncio.Transport | None = None
        self.source = "unknown"
        self.connected = False
        self.level = 4
        self.subscribed_qos: int | None = None
        self.pending: bytes | None = None  # an answer waiting for the subscription
        self.answered = False
        self.working = False  # provisiond owes the session its answer: no idle deadline
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
        if not self.gate.admit(self, source_of(self.source)):
            self._end()  # every session at the cap is busy: no room
            return
        self.admitted = True
        self._arm()

    def evict(self) -> None:
        """The gate gave this session's place to a newer connection."""
        self.admitted = False
        self._close(0x89)  # server busy

    def data_received(self, data: bytes) -> None:
        self.last_heard = self.loop.time()
        try:
            for packet in self.packets.feed(data):
                if self.transport is None or self.transport.is_closing():
                    return
                if not self.connected:
                    if not isinstance(packet, mqtt.Connect) or not self._connect(packet):
                        self._end()
                        return
                    self.connected = True
                    self.idle = min(
                        packet.keepalive * 1.5 or self.limits.idle_seconds, self.limits.idle_seconds
                    )
                    self._arm()
                elif not self._handle(packet):
                    self._end()
                    return
        except mqtt.ProtocolError as err:
            self._close(err.reason)
        except Exception:  # one session's bug must not stop the listener
            log.exception("MQTT provisioning session failed")
            self._end()

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

    def _due(self) -> float:
        """When the session ends unless the peer is heard from first."""
        if not self.connected:
            return min(self.connect_by, self.deadline)
        if self.working:
            return self.deadline
        return min(self.last_heard + self.idle, self.deadline)

    def _arm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.loop.call_at(self._due(), self._check_idle)

    def _check_idle(self) -> None:
        due = self._due()
        if self.loop.time() < due:
            self.timer = self.loop.call_at(due, self._check_idle)
        else:
            self._close(0x8D)  # keep alive timeout

    # -------------------------------------------------------------------------- packets

    def _connect(self, packet: mqtt.Connect) -> bool:
        self.level = packet.level
        if packet.username != USERNAME:
            self._send(mqtt.encode_connack(self.level, mqtt.NOT_AUTHORIZED))
            return False
        self._send(mqtt.encode_connack(self.level))
        return True

    def _handle(self, packet: mqtt.Packet) -> bool:
        if isinstance(packet, mqtt.Subscribe):
            codes = []
            for name, qos in packet.filters:
                if name == RESPONSE_TOPIC:
                    self.subscribed_qos = min(qos, 1)
                    codes.append(self.subscribed_qos)
                else:
                    codes.append(0x80)
            self._send(mqtt.encode_suback(self.level, packet.packet_id, codes))
            if self.pending is not None and self.subscribed_qos is not None:
                self._deliver(self.pending)
            return True
        if isinstance(packet, mqtt.Publish):
            if packet.topic != REQUEST_TOPIC or self.answered:
                self._close(
                    mqtt.TOPIC_NAME_INVALID
                    if packet.topic != REQUEST_TOPIC
                    else mqtt.NOT_AUTHORIZED
                )
                return False
            if packet.qos == 1 and packet.packet_id is not None:
                self._send(mqtt.encode_puback(self.level, packet.packet_id))
            self.answered = self.working = True
            self.gate.busy(self)
            task = self.loop.create_task(self._answer(packet.payload))
            _answering.add(task)
            task.add_done_callback(self._answered)
            return True
        if isinstance(packet, mqtt.PingReq):
            self._send(mqtt.encode_pingresp())
            return True
        if isinstance(packet, mqtt.Unsubscribe):
            self._send(mqtt.encode_unsuback(self.level, packet.packet_id, len(packet.filters)))
            return True
        # a PUBACK of our answer keeps the session; DISCONNECT or a second CONNECT ends it
        return isinstance(packet, mqtt.PubAck)

    async def _answer(self, payload: bytes) -> bytes:
        answer = await self.provisioner.answer(payload, Source("mqtt", self.source))
        return orjson.dumps(answer.body)

    def _answered(self, task: asyncio.Task[bytes]) -> None:
        _answering.discard(task)
        self.working = False
        if self.admitted:
            self.gate.idle(self)  # owed nothing more: its place may go to another
        if task.cancelled():
            return
        if (error := task.exception()) is not None:
            log.error("MQTT provisioning session failed", exc_info=error)
            self._end()
            return
        if self.transport is None:
            return  # the device left; what was provisioned stays, as over HTTP
        if self.subscribed_qos is None:
            self.pending = task.result()
        else:
            self._deliver(task.result())
        self.last_heard = self.loop.time()  # the idle deadline again, from the answer
        self._arm()

    def _deliver(self, answer: bytes) -> None:
        self.pending = None
        qos = self.subscribed_qos or 0
        self._send(mqtt.encode_publish(self.level, RESPONSE_TOPIC, answer, qos, 1 if qos else None))

    def _send(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _close(self, reason: int) -> None:
        packet = mqtt.encode_disconnect(self.level, reason)
        if packet is not None:
            self._send(packet)
        self._end()

    def _end(self) -> None:
        if self.transport is not None:
            self.transport.close()


_answering: set[asyncio.Task[bytes]] = set()  # provisioning in flight: kept until done


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The listener's TLS (settings ``mqtt_tls_cert`` and ``mqtt_tls_key``), else None."""
    if settings.provisioning.mqtt_tls_cert is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.provisioning.mqtt_tls_cert, settings.provisioning.mqtt_tls_key)
    return context


async def start(
    provisioner: Provisioner,
    host: str,
    port: int,
    tls: ssl.SSLContext | None = None,
    limits: Limits | None = None,
) -> asyncio.Server:
    """Serve provisioning sessions; ``server.close()`` and ``await server.wait_closed()``
    stop it."""
    limits = limits or Limits()
    gate = Gate[_Session](limits.max_sessions, limits.max_per_address)
    return await asyncio.get_running_loop().create_server(
        lambda: _Session(provisioner, limits, gate),
        host,
        port,
        ssl=tls,
        backlog=MQTT_BACKLOG,
        # the CONNECT deadline starts once the handshake is done: this one bounds it
        ssl_handshake_timeout=limits.connect_seconds if tls is not None else None,
    )
