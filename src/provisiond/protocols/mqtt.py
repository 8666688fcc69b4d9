"""The server side of MQTT 3.1.1 and 5, as much as a provisioning endpoint needs (sans-IO).

:class:`PacketReader` turns received bytes into packets (CONNECT, SUBSCRIBE, UNSUBSCRIBE,
PUBLISH, PUBACK, PINGREQ, DISCONNECT); the ``encode_*`` functions build the server's
packets for the session's protocol level (4 = 3.1.1, 5 = 5.0). MQTT 5 properties are read
past, not interpreted. Malformed input raises :class:`ProtocolError` with the MQTT 5 reason
code to close with.
"""

from __future__ import annotations

from dataclasses import dataclass, field

CONNECT, CONNACK, PUBLISH, PUBACK = 1, 2, 3, 4
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK = 8, 9, 10, 11
PINGREQ, PINGRESP, DISCONNECT = 12, 13, 14

MALFORMED = 0x81
PROTOCOL_ERROR = 0x82
NOT_AUTHORIZED = 0x87
TOPIC_NAME_INVALID = 0x90
PACKET_TOO_LARGE = 0x95
UNSUPPORTED_VERSION = 0x84


class ProtocolError(Exception):
    def __init__(self, message: str, reason: int = MALFORMED) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Connect:
    level: int  # 4 (3.1.1) or 5
    client_id: str
    username: str | None
    password: bytes | None
    keepalive: int
    clean_start: bool


@dataclass(frozen=True, slots=True)
class Subscribe:
    packet_id: int
    filters: list[tuple[str, int]]  # (topic filter, requested QoS)


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    packet_id: int
    filters: list[str]


@dataclass(frozen=True, slots=True)
class Publish:
    topic: str
    payload: bytes
    qos: int
    packet_id: int | None
    retain: bool = False


@dataclass(frozen=True, slots=True)
class PubAck:
    packet_id: int


@dataclass(frozen=True, slots=True)
class PingReq:
    pass


@dataclass(frozen=True, slots=True)
class Disconnect:
    pass


Packet = Connect | Subscribe | Unsubscribe | Publish | PubAck | PingReq | Disconnect


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def take(self, n: int) -> bytes:
        if self.at + n > len(self.data):
            raise ProtocolError("the packet ends too early")
        chunk = self.data[self.at : self.at + n]
        self.at += n
        return chunk

    def byte(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def binary(self) -> bytes:
        return self.take(self.u16())

    def text(self) -> str:
        try:
            return self.binary().decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("a string is not UTF-8") from None

    def varint(self) -> int:
        value, shift = 0, 0
        for _ in range(4):
            b = self.byte()
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
            shift += 7
        raise ProtocolError("a variable byte integer is longer than 4 bytes")

    def skip_properties(self) -> None:
        self.take(self.varint())

    @property
    def left(self) -> int:
        return len(self.data) - self.at


@dataclass(slots=True)
class PacketReader:
    """Bytes in, packets out. ``level`` is set by the CONNECT (properties exist from 5)."""

    max_packet: int = 65_536
    level: int = 4
    _buffer: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> list[Packet]:
        self._buffer += data
        packets: list[Packet] = []
        while True:
            framed = self._frame()
            if framed is None:
                return packets
            header, body = framed
            packet = self._parse(header, body)
            if isinstance(packet, Connect):
                self.level = packet.level
            packets.append(packet)

    def _frame(self) -> tuple[int, bytes] | None:
        return take_frame(self._buffer, self.max_packet)

    def _parse(self, header: int, body: bytes) -> Packet:  # noqa: C901, PLR0912 - one branch per MQTT packet type, as the specification lists them
        kind, flags = header >> 4, header & 0x0F
        c = _Cursor(body)
        if kind == CONNECT:
            return _connect(c)
        if kind == PUBLISH:
            qos = (flags >> 1) & 0x03
            if qos == 3:
                raise ProtocolError("PUBLISH with QoS 3")
            topic = c.text()
            packet_id = c.u16() if qos else None
            if self.level >= 5:
                c.skip_properties()
            return Publish(topic, c.take(c.left), qos, packet_id, bool(flags & 1))
        if kind == PUBACK:
            return PubAck(c.u16())
        if kind in (SUBSCRIBE, UNSUBSCRIBE):
            if flags != 0x02:
                raise ProtocolError("SUBSCRIBE/UNSUBSCRIBE with wrong flags")
            packet_id = c.u16()
            if self.level >= 5:
                c.skip_properties()
            if kind == UNSUBSCRIBE:
                names = []
                while c.left:
                    names.append(c.text())
                return Unsubscribe(packet_id, names)
            filters = []
            while c.left:
                name = c.text()
                filters.append((name, c.byte() & 0x03))
            if not filters:
                raise ProtocolError("SUBSCRIBE without a topic filter", PROTOCOL_ERROR)
            return Subscribe(packet_id, filters)
        if kind == PINGREQ:
            return PingReq()
        if kind == DISCONNECT:
            return Disconnect()
        raise ProtocolError(f"packet type {kind} is not accepted here", PROTOCOL_ERROR)


def take_frame(buf: bytearray, max_packet: int = 65_536) -> tuple[int, bytes] | None:
    """The first whole packet of ``buf`` as (fixed header byte, body), removed from it; None
    while it is incomplete. Both directions frame alike (clients use it too)."""
    if len(buf) < 2:
        return None
    length, shift, i = 0, 0, 1
    while True:
        if i >= len(buf):
            return None
        b = buf[i]
        length |= (b & 0x7F) << shift
        i += 1
        if not b & 0x80:
            break
        shift += 7
        if i > 4:
            raise ProtocolError("the remaining length is longer than 4 bytes")
    if length > max_packet:
        raise ProtocolError(f"a packet of {length} bytes is over the limit", PACKET_TOO_LARGE)
    if len(buf) < i + length:
        return None
    header, body = buf[0], bytes(buf[i : i + length])
    del buf[: i + length]
    return header, body


def _connect(c: _Cursor) -> Connect:
    name = c.text()
    level = c.byte()
    if name != "MQTT" or level not in (4, 5):
        raise ProtocolError(
            f"protocol {name!r} level {level} is not MQTT 3.1.1 or 5", UNSUPPORTED_VERSION
        )
    flags = c.byte()
    keepalive = c.u16()
    if level == 5:
        c.skip_properties()
    client_id = c.text()
    if flags & 0x04:  # a will: read past it
        if level == 5:
            c.skip_properties()
        c.text()
        c.binary()
    username = c.text() if flags & 0x80 else None
    password = c.binary() if flags & 0x40 else None
    return Connect(level, client_id, username, password, keepalive, bool(flags & 0x02))


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _packet(header: int, body: bytes) -> bytes:
    return bytes([header]) + _varint(len(body)) + body


def _text(s: str) -> bytes:
    raw = s.encode("utf-8")
    return len(raw).to_bytes(2, "big") + raw


def encode_connack(level: int, reason: int = 0) -> bytes:
    """``reason`` as MQTT 5 codes; 3.1.1 gets its nearest return code."""
    if level >= 5:
        return _packet(CONNACK << 4, bytes([0, reason, 0]))
    code = (
        0
        if reason == 0
        else 5
        if reason == NOT_AUTHORIZED
        else 1
        if reason == UNSUPPORTED_VERSION
        else 2
    )
    return _packet(CONNACK << 4, bytes([0, code]))


def encode_suback(level: int, packet_id: int, codes: list[int]) -> bytes:
    """``codes``: the granted QoS, or 0x80 (refused)."""
    props = b"\x00" if level >= 5 else b""
    return _packet(SUBACK << 4, packet_id.to_bytes(2, "big") + props + bytes(codes))


def encode_unsuback(level: int, packet_id: int, count: int) -> bytes:
    tail = b"\x00" + bytes([0] * count) if level >= 5 else b""
    return _packet(UNSUBACK << 4, packet_id.to_bytes(2, "big") + tail)


def encode_publish(
    level: int, topic: str, payload: bytes, qos: int = 0, packet_id: int | None = None
) -> bytes:
    body = _text(topic)
    if qos:
        body += (packet_id or 1).to_bytes(2, "big")
    if level >= 5:
        body += b"\x00"
    return _packet((PUBLISH << 4) | (qos << 1), body + payload)


def encode_puback(level: int, packet_id: int) -> bytes:
    del level  # reason code 0 may be left out in 5
    return _packet(PUBACK << 4, packet_id.to_bytes(2, "big"))


def encode_pingresp() -> bytes:
    return _packet(PINGRESP << 4, b"")


def encode_disconnect(level: int, reason: int) -> bytes | None:
    """MQTT 5 tells why; 3.1.1 servers just close (None)."""
    return _packet(DISCONNECT << 4, bytes([reason, 0])) if level >= 5 else None
