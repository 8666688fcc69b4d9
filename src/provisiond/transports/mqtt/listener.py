"""The MQTT provisioning listener: a dedicated endpoint for provisioning sessions, not a
general broker (as Azure's provisioning service is).

A device connects with MQTT 3.1.1 or 5, user name ``provision`` (any client id, empty
included), subscribes to ``/provision/response`` and publishes ThingsBoard's provision
request to ``/provision/request`` — possibly before the SUBACK. The answer goes to that
session only; an answer ready before the subscription waits for it. Anything else — another
user name, another topic, a second request in the session — closes the session (MQTT 5
says why).

Over TLS with ``provisioning__mqtt_client_certificates``, the handshake asks for a client
certificate (transports/tls.py: it must chain to a profile's device CA if sent); a session
that presented one and publishes a request without ``provisionDeviceSecret`` — ``{}`` will
do — is answered by certificate-chain attestation (services/attestation.py).

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
from typing import TYPE_CHECKING

import orjson

from provisiond.protocols import mqtt
from provisiond.services.connection_caps import MQTT_BACKLOG, Gate
from provisiond.services.provisioning import Provisioner, Source
from provisiond.transports.mqtt.session import Limits, Session
from provisiond.transports.tls import peer_certificate

if TYPE_CHECKING:
    from provisiond.settings import Settings

__all__ = ["Limits", "start", "tls_context"]

log = logging.getLogger(__name__)
REQUEST_TOPIC = "/provision/request"
RESPONSE_TOPIC = "/provision/response"
USERNAME = "provision"


class _Session(Session):
    """One provisioning session, driven by the event loop's callbacks (no task, no stream
    per connection: a session is a handful of small packets). Only the provisioning itself
    runs as a task; reading stops while the peer does not read what it is sent."""

    def __init__(self, provisioner: Provisioner, limits: Limits, gate: Gate[_Session]) -> None:
        super().__init__(limits, gate)
        self.provisioner = provisioner
        self.connected = False
        self.subscribed_qos: int | None = None
        self.pending: bytes | None = None  # an answer waiting for the subscription
        self.answered = False
        self.working = False  # provisiond owes the session its answer: no idle deadline
        self.certificate: bytes | None = None  # the TLS client certificate (DER), if any

    # ------------------------------------------------------------------ the event loop's

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

    def _due(self) -> float:
        """When the session ends unless the peer is heard from first."""
        if not self.connected:
            return min(self.connect_by, self.deadline)
        if self.working:
            return self.deadline
        return min(self.last_heard + self.idle, self.deadline)

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

    def _accept(self, transport: asyncio.BaseTransport) -> bool:
        self.certificate = peer_certificate(transport)  # verified by the handshake, if sent
        return True

    async def _answer(self, payload: bytes) -> bytes:
        source = Source("mqtt", self.source, self.certificate)
        answer = await self.provisioner.answer(payload, source)
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
