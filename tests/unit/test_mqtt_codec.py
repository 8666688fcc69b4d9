"""The MQTT server-side codec: framing across arbitrary splits, both protocol levels, and
malformed input refused with the reason to close with."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provisiond.protocols import mqtt


def connect(level: int, *, username: str | None = "provision", will: bool = False) -> bytes:
    flags = 0x02 | (0x80 if username else 0) | (0x04 if will else 0)
    body = mqtt._text("MQTT") + bytes([level, flags]) + (60).to_bytes(2, "big")
    if level == 5:
        body += b"\x03\x21\x00\x0a"  # properties: receive maximum 10
    body += mqtt._text("dev-1")
    if will:
        if level == 5:
            body += b"\x00"
        body += mqtt._text("last/will") + mqtt._text("bye")
    if username:
        body += mqtt._text(username)
    return mqtt._packet(mqtt.CONNECT << 4, body)


@pytest.mark.parametrize("level", [4, 5])
def test_a_session_split_at_every_byte(level: int) -> None:
    stream = (
        connect(level, will=True)
        + mqtt._packet(
            (mqtt.SUBSCRIBE << 4) | 2,
            b"\x00\x05"
            + (b"\x00" if level == 5 else b"")
            + mqtt._text("/provision/response")
            + b"\x01",
        )
        + mqtt.encode_publish(level, "/provision/request", b'{"a": 1}' * 40, 1, 9)
        + mqtt._packet(mqtt.PINGREQ << 4, b"")
        + mqtt._packet(mqtt.DISCONNECT << 4, b"")
    )
    for size in (1, 2, 3, 7, len(stream)):
        reader = mqtt.PacketReader()
        packets: list[mqtt.Packet] = []
        for i in range(0, len(stream), size):
            packets += reader.feed(stream[i : i + size])
        assert packets == [
            mqtt.Connect(level, "dev-1", "provision", None, 60, True),
            mqtt.Subscribe(5, [("/provision/response", 1)]),
            mqtt.Publish("/provision/request", b'{"a": 1}' * 40, 1, 9),
            mqtt.PingReq(),
            mqtt.Disconnect(),
        ], size


def test_remaining_length_boundaries() -> None:
    for size in (0, 127, 128, 16383, 16384, 60000):
        payload = b"x" * size
        packet = mqtt.encode_publish(4, "t", payload)
        (decoded,) = mqtt.PacketReader(max_packet=100_000).feed(packet)
        assert isinstance(decoded, mqtt.Publish)
        assert decoded.payload == payload


@pytest.mark.parametrize(
    ("data", "reason", "message"),
    [
        (
            mqtt._packet(mqtt.CONNECT << 4, mqtt._text("MQIsdp") + b"\x03\x02\x00\x3c"),
            mqtt.UNSUPPORTED_VERSION,
            "protocol 'MQIsdp' level 3 is not MQTT 3.1.1 or 5",
        ),
        (
            mqtt._packet(mqtt.CONNECT << 4, b"\x00\x04MQ"),
            mqtt.MALFORMED,
            "the packet ends too early",
        ),
        (
            bytes([mqtt.PUBLISH << 4 | 0x06]) + b"\x03\x00\x01t",
            mqtt.MALFORMED,
            "PUBLISH with QoS 3",
        ),
        (
            bytes([mqtt.SUBSCRIBE << 4]) + b"\x02\x00\x01",
            mqtt.MALFORMED,
            "SUBSCRIBE/UNSUBSCRIBE with wrong flags",
        ),
        (
            bytes([mqtt.PUBLISH << 4]) + b"\xff\xff\xff\xff\x01",
            mqtt.MALFORMED,
            "the remaining length is longer than 4 bytes",
        ),
        (
            bytes([mqtt.PUBLISH << 4]) + b"\xff\xff\x7f",
            mqtt.PACKET_TOO_LARGE,
            "a packet of 2097151 bytes is over the limit",
        ),
        (bytes([mqtt.CONNACK << 4, 0]), mqtt.PROTOCOL_ERROR, "packet type 2 is not accepted here"),
        (
            mqtt._packet(mqtt.PUBLISH << 4, b"\x00\x02\xff\xfe"),
            mqtt.MALFORMED,
            "a string is not UTF-8",
        ),
    ],
)
def test_malformed_input(data: bytes, reason: int, message: str) -> None:
    with pytest.raises(mqtt.ProtocolError) as refused:
        mqtt.PacketReader().feed(data)
    assert (refused.value.reason, str(refused.value)) == (reason, message)


def test_server_packets_for_each_level() -> None:
    assert mqtt.encode_connack(4) == b"\x20\x02\x00\x00"
    assert mqtt.encode_connack(4, mqtt.NOT_AUTHORIZED) == b"\x20\x02\x00\x05"
    assert mqtt.encode_connack(5, mqtt.NOT_AUTHORIZED) == b"\x20\x03\x00\x87\x00"
    assert mqtt.encode_suback(4, 5, [1, 0x80]) == b"\x90\x04\x00\x05\x01\x80"
    assert mqtt.encode_suback(5, 5, [0]) == b"\x90\x04\x00\x05\x00\x00"
    assert mqtt.encode_publish(5, "t", b"p", 1, 3) == b"\x32\x07\x00\x01t\x00\x03\x00p"
    assert mqtt.encode_disconnect(4, mqtt.NOT_AUTHORIZED) is None
    assert mqtt.encode_disconnect(5, mqtt.NOT_AUTHORIZED) == b"\xe0\x02\x87\x00"


@given(data=st.binary(max_size=2_000), sizes=st.lists(st.integers(1, 64), min_size=1))
def test_any_bytes_in_any_pieces_are_packets_or_a_protocol_error(
    data: bytes, sizes: list[int]
) -> None:
    """The codec is total: whatever arrives, split however, it yields packets, waits for
    more, or raises ProtocolError (with a reason code to close with) — nothing else."""
    reader = mqtt.PacketReader(max_packet=1_024)
    at, i = 0, 0
    try:
        while at < len(data):
            piece = data[at : at + sizes[i % len(sizes)]]
            at, i = at + len(piece), i + 1
            for packet in reader.feed(piece):
                assert isinstance(
                    packet,
                    (
                        mqtt.Connect,
                        mqtt.Subscribe,
                        mqtt.Unsubscribe,
                        mqtt.Publish,
                        mqtt.PubAck,
                        mqtt.PingReq,
                        mqtt.Disconnect,
                    ),
                )
    except mqtt.ProtocolError as err:
        reason = err.reason
    else:
        return
    assert 0x80 <= reason <= 0xA2
