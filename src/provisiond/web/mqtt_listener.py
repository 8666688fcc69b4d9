"""The MQTT provisioning listener: a dedicated endpoint for provisioning sessions, not a
general broker (as Azure's provisioning service is).

A device connects with MQTT 3.1.1 or 5, user name ``provision`` (any client id, empty
included), subscribes to ``/provision/response`` and publishes ThingsBoard's provision
request to ``/provision/request`` — possibly before the SUBACK. The answer goes to that
session only; an answer ready before the subscription waits for it. Anything else — another
user name, another topic, a second request in the session — closes the session (MQTT 5
says why), and sessions idle past ``keepalive`` x 1.5 (at most ``mqtt_session_seconds``)
are closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from typing import TYPE_CHECKING

import orjson

from provisiond.protocols import mqtt
from provisiond.services.provisioning import provision_payload

if TYPE_CHECKING:
    from provisiond.web.deps import Container

log = logging.getLogger(__name__)
REQUEST_TOPIC = "/provision/request"
RESPONSE_TOPIC = "/provision/response"
USERNAME = "provision"


class _Session:
    def __init__(self, container: Container, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, max_seconds: float) -> None:
        self.c = container
        self.reader = reader
        self.writer = writer
        self.max_seconds = max_seconds
        self.packets = mqtt.PacketReader()
        self.level = 4
        self.subscribed_qos: int | None = None
        self.pending: bytes | None = None  # an answer waiting for the subscription
        self.answered = False
        peer = writer.get_extra_info("peername")
        self.source = str(peer[0]) if peer else "unknown"

    async def run(self) -> None:
        deadline = asyncio.get_running_loop().time() + self.max_seconds
        idle = 10.0  # until CONNECT says its keepalive
        connected = False
        try:
            while True:
                left = deadline - asyncio.get_running_loop().time()
                data = await asyncio.wait_for(self.reader.read(65_536), min(idle, left))
                if not data:
                    return
                for packet in self.packets.feed(data):
                    if not connected:
                        if not isinstance(packet, mqtt.Connect):
                            return
                        if not await self._connect(packet):
                            return
                        connected = True
                        idle = min(packet.keepalive * 1.5 or self.max_seconds, self.max_seconds)
                    elif not await self._handle(packet):
                        return
        except TimeoutError:
            await self._close(0x8D)  # keep alive timeout
        except mqtt.ProtocolError as err:
            await self._close(err.reason)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass

    async def _connect(self, packet: mqtt.Connect) -> bool:
        self.level = packet.level
        if packet.username != USERNAME:
            await self._send(mqtt.encode_connack(self.level, mqtt.NOT_AUTHORIZED))
            return False
        await self._send(mqtt.encode_connack(self.level))
        return True

    async def _handle(self, packet: mqtt.Packet) -> bool:
        if isinstance(packet, mqtt.Subscribe):
            codes = []
            for name, qos in packet.filters:
                if name == RESPONSE_TOPIC:
                    self.subscribed_qos = min(qos, 1)
                    codes.append(self.subscribed_qos)
                else:
                    codes.append(0x80)
            await self._send(mqtt.encode_suback(self.level, packet.packet_id, codes))
            if self.pending is not None and self.subscribed_qos is not None:
                await self._deliver(self.pending)
            return True
        if isinstance(packet, mqtt.Publish):
            if packet.topic != REQUEST_TOPIC or self.answered:
                await self._close(mqtt.TOPIC_NAME_INVALID if packet.topic != REQUEST_TOPIC
                                  else mqtt.NOT_AUTHORIZED)
                return False
            if packet.qos == 1 and packet.packet_id is not None:
                await self._send(mqtt.encode_puback(self.level, packet.packet_id))
            self.answered = True
            answer = await self._answer(packet.payload)
            if self.subscribed_qos is None:
                self.pending = answer
            else:
                await self._deliver(answer)
            return True
        if isinstance(packet, mqtt.PingReq):
            await self._send(mqtt.encode_pingresp())
            return True
        if isinstance(packet, mqtt.Unsubscribe):
            await self._send(mqtt.encode_unsuback(self.level, packet.packet_id,
                                                  len(packet.filters)))
            return True
        # a PUBACK of our answer keeps the session; DISCONNECT or a second CONNECT ends it
        return isinstance(packet, mqtt.PubAck)

    async def _answer(self, payload: bytes) -> bytes:
        answer = await provision_payload(
            self.c.provision_writer, self.c.limiter, payload=payload, source=self.source,
            policy=self.c.provision_policy, now=self.c.now())
        return orjson.dumps(answer.body)

    async def _deliver(self, answer: bytes) -> None:
        self.pending = None
        qos = self.subscribed_qos or 0
        await self._send(mqtt.encode_publish(self.level, RESPONSE_TOPIC, answer, qos,
                                             1 if qos else None))

    async def _send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def _close(self, reason: int) -> None:
        packet = mqtt.encode_disconnect(self.level, reason)
        if packet is not None:
            with contextlib.suppress(ConnectionError):
                await self._send(packet)


async def start(container: Container, host: str, port: int,
                tls: ssl.SSLContext | None = None,
                max_session_seconds: float = 60.0) -> asyncio.Server:
    """Serve provisioning sessions; ``server.close()`` and ``await server.wait_closed()``
    stop it."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await _Session(container, reader, writer, max_session_seconds).run()
        except Exception:  # one session's bug must not stop the listener
            log.exception("MQTT provisioning session failed")
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    return await asyncio.start_server(handle, host, port, ssl=tls)
