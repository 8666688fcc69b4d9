"""Azure DPS over MQTT 3.1.1 (or 5) and TLS, as Azure's device SDKs speak it (``serve
--dps-port``; Azure's port is 8883).

CONNECT: the client id is the registration id, the user name
``{idScope}/registrations/{registrationId}/api-version=…``, the password a shared access
signature (or none, with a TLS client certificate). A wrong key is not refused here but on
the answer's topic (401), as DPS does. The device subscribes to
``$dps/registrations/res/#`` (nothing else), publishes a register request, then polls the
operation's status on the same connection; each answer goes to that session only, on
``$dps/registrations/res/{status}/?$rid=…``. One request at a time; a session makes at
most ``MAX_REQUESTS``. The caps and deadlines are the MQTT provisioning listener's
(transports/mqtt/listener.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import ssl

import orjson

from provisiond.protocols import dps, mqtt
from provisiond.services.connection_caps import MQTT_BACKLOG, Gate
from provisiond.services.dps import Answer, Attempt, Registrar
from provisiond.transports.mqtt.session import Limits, Session
from provisiond.transports.tls import peer_certificate

log = logging.getLogger(__name__)
MAX_REQUESTS = 32
MAX_REQUEST_BYTES = 64 * 1024


class _Session(Session):
    def __init__(self, registrar: Registrar, limits: Limits, gate: Gate[_Session]) -> None:
        super().__init__(limits, gate, max_packet=MAX_REQUEST_BYTES + 1024)
        self.registrar = registrar
        self.user: dps.UserName | None = None
        self.password: str | None = None
        self.certificate: bytes | None = None
        self.subscribed_qos: int | None = None
        self.pending: list[tuple[str, bytes]] = []  # answers waiting for the subscription
        self.working = False
        self.requests = 0
        self.owner = secrets.token_hex(16)  # the operations it begins are its own
        self.packet_id = 0

    def _accept(self, transport: asyncio.BaseTransport) -> bool:
        self.certificate = peer_certificate(transport)
        return True

    def evict(self) -> None:
        self.admitted = False
        self._end()

    def _due(self) -> float:
        if self.user is None:
            return min(self.connect_by, self.deadline)
        if self.working:
            return self.deadline
        return min(self.last_heard + self.idle, self.deadline)

    def data_received(self, data: bytes) -> None:
        self.last_heard = self.loop.time()
        try:
            for packet in self.packets.feed(data):
                if self.transport is None or self.transport.is_closing():
                    return
                if self.user is None:
                    if not isinstance(packet, mqtt.Connect) or not self._connect(packet):
                        self._end()
                        return
                    self._arm()
                elif not self._handle(packet):
                    self._end()
                    return
        except mqtt.ProtocolError as err:
            self._close(err.reason)
        except Exception:  # one session's bug must not stop the listener
            log.exception("DPS MQTT session failed")
            self._end()

    def _connect(self, packet: mqtt.Connect) -> bool:
        self.level = packet.level
        try:
            user = dps.parse_username(packet.username or "")
        except dps.DpsRefused:
            user = None
        if user is None or packet.client_id != user.registration_id:
            self._send(mqtt.encode_connack(self.level, mqtt.NOT_AUTHORIZED))
            return False
        try:
            self.password = packet.password.decode() if packet.password is not None else None
        except UnicodeDecodeError:
            self._send(mqtt.encode_connack(self.level, mqtt.NOT_AUTHORIZED))
            return False
        self.user = user
        idle = self.limits.idle_seconds
        self.idle = min(packet.keepalive * 1.5 or idle, idle)
        self._send(mqtt.encode_connack(self.level))
        return True

    def _handle(self, packet: mqtt.Packet) -> bool:
        if isinstance(packet, mqtt.Subscribe):
            codes = []
            for name, qos in packet.filters:
                if name == dps.SUBSCRIBE_FILTER:
                    self.subscribed_qos = min(qos, 1)
                    codes.append(self.subscribed_qos)
                else:
                    codes.append(0x80)  # another's answers, or anything else: refused
            self._send(mqtt.encode_suback(self.level, packet.packet_id, codes))
            if self.subscribed_qos is not None:
                for topic, payload in self.pending:
                    self._deliver(topic, payload)
                self.pending.clear()
            return True
        if isinstance(packet, mqtt.Publish):
            return self._request(packet)
        if isinstance(packet, mqtt.PingReq):
            self._send(mqtt.encode_pingresp())
            return True
        if isinstance(packet, mqtt.Unsubscribe):
            self.subscribed_qos = None
            self._send(mqtt.encode_unsuback(self.level, packet.packet_id, len(packet.filters)))
            return True
        return isinstance(packet, mqtt.PubAck)

    def _request(self, packet: mqtt.Publish) -> bool:
        try:
            request = dps.parse_request_topic(packet.topic)
        except dps.DpsRefused:
            self._close(mqtt.TOPIC_NAME_INVALID)
            return False
        self.requests += 1
        if self.working or self.requests > MAX_REQUESTS:
            self._close(mqtt.NOT_AUTHORIZED)  # one at a time, and not forever
            return False
        if packet.qos == 1 and packet.packet_id is not None:
            self._send(mqtt.encode_puback(self.level, packet.packet_id))
        self.working = True
        task = self.loop.create_task(self._answer(request, packet.payload))
        _answering.add(task)
        task.add_done_callback(lambda t: self._answered(t, request.rid))
        return True

    async def _answer(self, request: dps.Request, payload: bytes) -> Answer:
        user = self.user or dps.UserName("", "", "")  # set at CONNECT, before any request
        attempt = Attempt(
            user.id_scope,
            user.registration_id,
            self.password,
            self.certificate,
            "dps-mqtt",
            self.source,
        )
        if request.kind == "status":
            # its register proved the key; the operation is this session's alone
            return await self.registrar.status(
                attempt, request.operation_id or "", self.owner, attest=False
            )
        body = request_body(payload, user.registration_id)
        if isinstance(body, str):
            return Answer(400, {"errorCode": 400004, "message": body})
        return await self.registrar.register(
            dataclasses.replace(attempt, payload=body.get("payload")), self.owner
        )

    def _answered(self, task: asyncio.Task[Answer], rid: str) -> None:
        _answering.discard(task)
        self.working = False
        if task.cancelled() or self.transport is None:
            return
        if (err := task.exception()) is not None:
            log.error("DPS MQTT session failed", exc_info=err)
            self._end()
            return
        answer = task.result()
        topic = dps.response_topic(answer.status, rid, answer.retry_after)
        payload = orjson.dumps(answer.body)
        if self.subscribed_qos is None:
            self.pending.append((topic, payload))
        else:
            self._deliver(topic, payload)
        self.last_heard = self.loop.time()
        self._arm()

    def _deliver(self, topic: str, payload: bytes) -> None:
        qos = self.subscribed_qos or 0
        packet_id = None
        if qos:
            self.packet_id = self.packet_id % 65535 + 1
            packet_id = self.packet_id
        self._send(mqtt.encode_publish(self.level, topic, payload, qos, packet_id))


_answering: set[asyncio.Task[Answer]] = set()


def request_body(payload: bytes, registration_id: str) -> dict[str, object] | str:
    """A register request's body, or why it is not DPS's."""
    try:
        body = orjson.loads(payload) if payload.strip() else {}
    except orjson.JSONDecodeError:
        return "the request body is not JSON"
    if not isinstance(body, dict):
        return "the request body is not a JSON object"
    named = body.get("registrationId")
    if named is not None and named != registration_id:
        return "registrationId is not the connection's registration id"
    return body


async def start(
    registrar: Registrar,
    host: str,
    port: int,
    tls: ssl.SSLContext,
    limits: Limits | None = None,
) -> asyncio.Server:
    limits = limits or Limits()
    gate = Gate[_Session](limits.max_sessions, limits.max_per_address)
    return await asyncio.get_running_loop().create_server(
        lambda: _Session(registrar, limits, gate),
        host,
        port,
        ssl=tls,
        backlog=MQTT_BACKLOG,
        ssl_handshake_timeout=limits.connect_seconds,  # the CONNECT deadline starts after it
    )
