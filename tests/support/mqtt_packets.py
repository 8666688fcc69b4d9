"""A device's side of MQTT, as raw packets: what the listeners' wire tests send and read
(the provisioning listener's, AWS's, Azure DPS's). Imports no device SDK."""

from __future__ import annotations

import socket

from provisiond.protocols import mqtt


def connect_packet(
    level: int, username: str | None, client_id: str = "", keepalive: int = 30
) -> bytes:
    flags = 0x02 | (0x80 if username is not None else 0)
    body = mqtt._text("MQTT") + bytes([level, flags]) + keepalive.to_bytes(2, "big")
    if level == 5:
        body += b"\x00"
    body += mqtt._text(client_id)
    if username is not None:
        body += mqtt._text(username)
    return mqtt._packet(mqtt.CONNECT << 4, body)


def subscribe_packet(level: int, topic: str, packet_id: int = 1, qos: int = 1) -> bytes:
    props = b"\x00" if level == 5 else b""
    return mqtt._packet(
        (mqtt.SUBSCRIBE << 4) | 2,
        packet_id.to_bytes(2, "big") + props + mqtt._text(topic) + bytes([qos]),
    )


def read_packets(s: socket.socket, count: int) -> list[tuple[int, bytes]]:
    """``count`` packets as (type, body), or fewer if the server closes."""
    out: list[tuple[int, bytes]] = []
    buffer = bytearray()
    while len(out) < count:
        chunk = s.recv(65536)
        if not chunk:
            break
        buffer += chunk
        while (frame := mqtt.take_frame(buffer)) is not None:
            out.append((frame[0] >> 4, frame[1]))
    return out
