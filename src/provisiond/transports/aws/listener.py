"""AWS IoT fleet provisioning's MQTT API over mutual TLS (``serve --aws-port``): devices
running firmware written for AWS IoT Core provision here unchanged but for the endpoint and
the CA they trust.

TLS always requests a client certificate (AWS's SDK aborts a handshake without the request)
and refuses a connection without one from a CA provisiond knows; the session's certificate
is then its identity (services/aws_fleet.py says what it may do, read at CONNECT): CONNECT
is refused (not authorised) for one that may provision with no profile. The user name carries AWS's
SDK metrics and is ignored; MQTT 3.1.1 (clean session 0 too: no session is kept) and 5.

A device subscribes to the answer topics (``…/accepted``, ``…/rejected`` or ``…/+``) of
the operations of protocols/aws_fleet.py — any other filter is refused in the SUBACK — and
publishes a request; the answer goes, at the QoS subscribed, to this session only, and only
when it subscribed to it (as AWS: an answer nobody subscribed to is dropped). A publish to
another topic closes the session (MQTT 5 says why). A session makes at most
``aws__max_requests_per_session`` requests (16 unless set), ``MAX_IN_FLIGHT`` at once.

Deadlines and caps are the MQTT provisioning listener's (transports/mqtt, ``limits__mqtt_*``)
but the session's length, ``aws__session_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from provisiond.protocols import aws_fleet as wire
from provisiond.protocols import mqtt
from provisiond.services.aws_fleet import Claim, Fleet, FleetRefused, Peer, expire_pending
from provisiond.services.connection_caps import MQTT_BACKLOG, Gate
from provisiond.transports.mqtt.session import Limits, Session
from provisiond.transports.tls import peer_certificate

if TYPE_CHECKING:
    from provisiond.settings import Settings

log = logging.getLogger(__name__)
MAX_IN_FLIGHT = 4
QUOTA_EXCEEDED = 0x97


class _Session(Session):
    """One device's session, driven by the event loop's callbacks; each request runs as a
    task. Reading stops while the peer does not read what it is sent."""

    def __init__(self, fleet: Fleet, limits: Limits, gate: Gate[_Session]) -> None:
        super().__init__(limits, gate)
        self.fleet = fleet
        self.peer: Peer | None = None
        self.claim: Claim | None = None  # what the certificate may do, once checked
        self.client_id = ""
        self.state = "new"  # new -> checking (CONNECT read) -> connected
        self.held: list[mqtt.Packet] = []  # read while the certificate is being checked
        self.filters: dict[str, int] = {}  # answer filter -> granted QoS
        self.requests = 0
        self.in_flight = 0
        self.next_id = 0

    # ------------------------------------------------------------------ the event loop's

    def _accept(self, transport: asyncio.BaseTransport) -> bool:
        """A client certificate (TLS requires one) that cryptography can read."""
        der = peer_certificate(transport)
        try:
            self.peer = Peer.of(der) if der is not None else None
        except ValueError:  # OpenSSL took it, cryptography cannot read it
            self.peer = None
        return self.peer is not None

    def data_received(self, data: bytes) -> None:
        self.last_heard = self.loop.time()
        try:
            for packet in self.packets.feed(data):
                if self.transport is None or self.transport.is_closing():
                    return
                self._take(packet)
        except mqtt.ProtocolError as err:
            self._close(err.reason)
        except Exception:  # one session's bug must not stop the listener
            log.exception("AWS provisioning session failed")
            self._end()

    def _take(self, packet: mqtt.Packet) -> None:
        if self.state == "new":
            if not isinstance(packet, mqtt.Connect):
                self._end()
                return
            self.state = "checking"
            self.level = packet.level
            self.client_id = packet.client_id
            self.idle = min(
                packet.keepalive * 1.5 or self.limits.idle_seconds, self.limits.idle_seconds
            )
            self._spawn(self._check())
        elif self.state == "checking":
            if len(self.held) >= 2 * MAX_IN_FLIGHT + 8:
                self._close(QUOTA_EXCEEDED)
                return
            self.held.append(packet)
        elif not self._handle(packet):
            self._end()

    def _due(self) -> float:
        if self.state == "new":
            return min(self.connect_by, self.deadline)
        if self.in_flight or self.state == "checking":
            return self.deadline
        return min(self.last_heard + self.idle, self.deadline)

    def _spawn(self, coroutine: Any) -> None:
        task = self.loop.create_task(coroutine)
        _tasks.add(task)
        task.add_done_callback(_tasks.discard)

    # ------------------------------------------------------------------------- packets

    async def _check(self) -> None:
        """CONNECT is answered once the certificate is known to be allowed to provision."""
        peer = self.peer
        if peer is None:
            return
        try:
            self.claim = await self.fleet.authenticate(peer)
        except Exception:
            log.exception("AWS provisioning: checking a client certificate failed")
        allowed = self.claim is not None and bool(self.claim.profiles)
        if self.transport is None:
            return
        if not allowed:
            log.info("AWS provisioning: certificate %s may not provision", peer.fingerprint)
            self._send(mqtt.encode_connack(self.level, mqtt.NOT_AUTHORIZED))
            self._end()
            return
        self._send(mqtt.encode_connack(self.level))
        self.state = "connected"
        self.last_heard = self.loop.time()
        self._arm()
        held, self.held = self.held, []
        for packet in held:
            if self.transport is None or self.transport.is_closing():
                return
            if not self._handle(packet):
                self._end()
                return

    def _handle(self, packet: mqtt.Packet) -> bool:
        if isinstance(packet, mqtt.Subscribe):
            refused = mqtt.NOT_AUTHORIZED if self.level >= 5 else 0x80
            codes = []
            for name, qos in packet.filters:
                if wire.answer_filter(name) is None:
                    codes.append(refused)
                else:
                    self.filters[name] = min(qos, 1)
                    codes.append(self.filters[name])
            self._send(mqtt.encode_suback(self.level, packet.packet_id, codes))
            return True
        if isinstance(packet, mqtt.Unsubscribe):
            for name in packet.filters:
                self.filters.pop(name, None)
            self._send(mqtt.encode_unsuback(self.level, packet.packet_id, len(packet.filters)))
            return True
        if isinstance(packet, mqtt.Publish):
            return self._request(packet)
        if isinstance(packet, mqtt.PingReq):
            self._send(mqtt.encode_pingresp())
            return True
        return isinstance(packet, mqtt.PubAck)  # DISCONNECT or a second CONNECT ends it

    def _request(self, packet: mqtt.Publish) -> bool:
        topic = wire.parse_topic(packet.topic)
        if topic is None:
            self._close(mqtt.TOPIC_NAME_INVALID)
            return False
        most = self.fleet.settings.max_requests_per_session
        if self.requests >= most or self.in_flight >= MAX_IN_FLIGHT:
            self._close(QUOTA_EXCEEDED)
            return False
        if packet.qos == 1 and packet.packet_id is not None:
            self._send(mqtt.encode_puback(self.level, packet.packet_id))
        self.requests += 1
        self.in_flight += 1
        self.gate.busy(self)
        self._spawn(self._answer(topic, packet.payload))
        return True

    async def _answer(self, topic: wire.Topic, payload: bytes) -> None:
        try:
            body, accepted = await self._outcome(topic, payload), True
        except FleetRefused as refused:
            body, accepted = wire.error(refused.status, refused.code, refused.message), False
        except Exception:
            log.exception("AWS provisioning request failed")
            body = wire.error(500, "InternalFailure", "the request failed; try again")
            accepted = False
        finally:
            self.in_flight -= 1
            if self.admitted and not self.in_flight:
                self.gate.idle(self)
        if self.transport is None:
            return  # the device left; what was made stays (and expires unregistered)
        self._deliver(topic.answer(accepted), wire.encode(topic.format, body))
        self.last_heard = self.loop.time()
        self._arm()

    async def _outcome(self, topic: wire.Topic, payload: bytes) -> dict[str, Any]:
        claim = self.claim
        if claim is None:  # CONNECT is answered only once there is one
            raise FleetRefused(403, "AccessDenied", "no client certificate")
        try:
            body = wire.decode(topic.format, payload)
            if topic.operation is wire.Operation.CREATE_KEYS_AND_CERTIFICATE:
                return dict(await self.fleet.create_keys_and_certificate(claim))
            if topic.operation is wire.Operation.CREATE_CERTIFICATE_FROM_CSR:
                csr = wire.csr_of(body)
                return dict(await self.fleet.create_certificate_from_csr(claim, csr))
            request = wire.register_thing_of(body)
        except wire.PayloadError as err:
            raise FleetRefused(400, "InvalidPayload", str(err)) from None
        return await self.fleet.register_thing(
            claim, topic.template or "", request, source=self.source, client_id=self.client_id
        )

    def _deliver(self, topic: str, payload: bytes) -> None:
        granted = [q for name, q in self.filters.items() if wire.filter_matches(name, topic)]
        if not granted:
            return  # nobody subscribed: dropped, as AWS does
        qos = max(granted)
        packet_id = None
        if qos:
            self.next_id = self.next_id % 0xFFFF + 1
            packet_id = self.next_id
        self._send(mqtt.encode_publish(self.level, topic, payload, qos, packet_id))

    def _says_goodbye(self) -> bool:
        return self.state == "connected"


_tasks: set[asyncio.Task[Any]] = set()  # requests in flight: kept until done


def tls_context(settings: Settings) -> ssl.SSLContext:
    """The listener's TLS: the server certificate of ``aws__tls_cert``/``aws__tls_key``,
    TLS 1.2 or 1.3, a client certificate required (the trusted CAs are added by
    :class:`TrustKeeper`), ALPN ``x-amzn-mqtt-ca`` for devices on port 443."""
    aws = settings.aws
    if aws.tls_cert is None or aws.tls_key is None:
        from provisiond.errors import ConfigurationError

        raise ConfigurationError(
            "the AWS listener (aws__port) needs aws__tls_cert and aws__tls_key: "
            "AWS IoT devices speak MQTT over TLS only"
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(aws.tls_cert, aws.tls_key)
    context.verify_mode = ssl.CERT_REQUIRED
    # AWS's SDKs on port 443 offer ALPN x-amzn-mqtt-ca (AWS's name for MQTT there); "mqtt"
    # is others'. A client offering neither, or none, is served all the same.
    context.set_alpn_protocols(["x-amzn-mqtt-ca", "mqtt"])
    return context


class TrustKeeper:
    """Adds every CA provisiond knows to the context's trust store as they appear (a CA
    removed stays trusted for handshakes; what a certificate may do is checked per request
    against the database)."""

    def __init__(self, fleet: Fleet, context: ssl.SSLContext) -> None:
        self.fleet = fleet
        self.context = context
        self.loaded: set[str] = set()

    async def refresh(self) -> None:
        for pem in await self.fleet.trusted_cas():
            if pem not in self.loaded:
                self.context.load_verify_locations(cadata=pem)
                self.loaded.add(pem)


async def _keep(fleet: Fleet, keeper: TrustKeeper) -> None:
    """Refresh the trust store, and revoke the certificates whose token expired."""
    sweep_every = max(1.0, min(60.0, fleet.settings.token_seconds / 10))
    swept = asyncio.get_running_loop().time()
    while True:
        await asyncio.sleep(fleet.settings.trust_refresh_seconds)
        try:
            await keeper.refresh()
            now = asyncio.get_running_loop().time()
            if now - swept >= sweep_every:
                swept = now
                await expire_pending(fleet.uow(), now=fleet.clock())
        except Exception:
            log.exception("AWS provisioning: refreshing the trusted CAs failed")


class Listener:
    """The listening server and its keeper task; :meth:`close` stops both."""

    def __init__(self, server: asyncio.Server, keeper: asyncio.Task[None]) -> None:
        self.server = server
        self.keeper = keeper

    @property
    def port(self) -> int:
        return int(self.server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        self.keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.keeper
        self.server.close()
        await self.server.wait_closed()


async def start(
    fleet: Fleet, host: str, port: int, tls: ssl.SSLContext, limits: Limits | None = None
) -> Listener:
    limits = replace(limits or Limits(), session_seconds=fleet.settings.session_seconds)
    keeper = TrustKeeper(fleet, tls)
    await keeper.refresh()
    gate = Gate[_Session](limits.max_sessions, limits.max_per_address)
    server = await asyncio.get_running_loop().create_server(
        lambda: _Session(fleet, limits, gate),
        host,
        port,
        ssl=tls,
        backlog=MQTT_BACKLOG,
        ssl_handshake_timeout=limits.connect_seconds,  # a handshake is part of connecting
    )
    return Listener(server, asyncio.get_running_loop().create_task(_keep(fleet, keeper)))
