"""The part of CBOR (RFC 8949) AWS IoT's fleet-provisioning payloads use (sans-IO).

Requests and answers are maps of text strings to text strings, maps (``parameters``,
``deviceConfiguration``), integers (``statusCode``), booleans and null. :func:`decode` reads
those (byte strings, arrays, floats and tags too, so a device's encoder's choices are not
refused), definite and indefinite lengths, with a nesting limit; anything else, or bytes
left over, raises :class:`CborError`. :func:`encode` writes the shortest forms.
"""

from __future__ import annotations

import struct
from typing import Any

MAX_DEPTH = 16


class CborError(ValueError):
    pass


def encode(value: Any) -> bytes:
    out = bytearray()
    _encode(value, out)
    return bytes(out)


def _head(major: int, n: int, out: bytearray) -> None:
    if n < 24:
        out.append(major << 5 | n)
    elif n < 0x100:
        out += bytes([major << 5 | 24, n])
    elif n < 0x10000:
        out.append(major << 5 | 25)
        out += n.to_bytes(2, "big")
    elif n < 0x1_0000_0000:
        out.append(major << 5 | 26)
        out += n.to_bytes(4, "big")
    else:
        out.append(major << 5 | 27)
        out += n.to_bytes(8, "big")


def _encode(value: Any, out: bytearray) -> None:  # noqa: C901, PLR0912 - one branch per CBOR type
    if value is None:
        out.append(0xF6)
    elif value is True:
        out.append(0xF5)
    elif value is False:
        out.append(0xF4)
    elif isinstance(value, int):
        if value >= 0:
            _head(0, value, out)
        else:
            _head(1, -1 - value, out)
    elif isinstance(value, float):
        out.append(0xFB)
        out += struct.pack(">d", value)
    elif isinstance(value, bytes):
        _head(2, len(value), out)
        out += value
    elif isinstance(value, str):
        raw = value.encode("utf-8")
        _head(3, len(raw), out)
        out += raw
    elif isinstance(value, list | tuple):
        _head(4, len(value), out)
        for item in value:
            _encode(item, out)
    elif isinstance(value, dict):
        _head(5, len(value), out)
        for key, item in value.items():
            _encode(key, out)
            _encode(item, out)
    else:
        raise CborError(f"cannot encode {type(value).__name__} as CBOR")


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def take(self, n: int) -> bytes:
        if self.at + n > len(self.data):
            raise CborError("the CBOR item ends too early")
        chunk = self.data[self.at : self.at + n]
        self.at += n
        return chunk

    def argument(self, info: int) -> int | None:
        """The head's argument; None for an indefinite length (31)."""
        if info < 24:
            return info
        if info in (24, 25, 26, 27):
            return int.from_bytes(self.take(1 << (info - 24)), "big")
        if info == 31:
            return None
        raise CborError(f"reserved additional information {info}")

    def item(self, depth: int) -> Any:  # noqa: C901, PLR0912 - one branch per major type
        if depth > MAX_DEPTH:
            raise CborError(f"CBOR nested deeper than {MAX_DEPTH}")
        initial = self.take(1)[0]
        major, info = initial >> 5, initial & 0x1F
        if major == 7:
            return self.simple(info)
        n = self.argument(info)
        if major == 0:
            if n is None:
                raise CborError("an integer has no indefinite length")
            return n
        if major == 1:
            if n is None:
                raise CborError("an integer has no indefinite length")
            return -1 - n
        if major in (2, 3):
            raw = self.chunks(major) if n is None else self.take(n)
            if major == 2:
                return raw
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                raise CborError("a CBOR text string is not UTF-8") from None
        if major == 4:
            items: list[Any] = []
            while n is None or len(items) < n:
                if n is None and self.stop():
                    break
                items.append(self.item(depth + 1))
            return items
        if major == 5:
            mapping: dict[Any, Any] = {}
            count = 0
            while n is None or count < n:
                if n is None and self.stop():
                    break
                key = self.item(depth + 1)
                if not isinstance(key, str | int):
                    raise CborError("a CBOR map key must be a text string or an integer")
                mapping[key] = self.item(depth + 1)
                count += 1
            return mapping
        return self.item(depth + 1)  # major 6: a tag, read past

    def stop(self) -> bool:
        if self.at < len(self.data) and self.data[self.at] == 0xFF:
            self.at += 1
            return True
        return False

    def chunks(self, major: int) -> bytes:
        out = bytearray()
        while not self.stop():
            initial = self.take(1)[0]
            n = self.argument(initial & 0x1F)
            if initial >> 5 != major or n is None:
                raise CborError("a chunk of an indefinite string is not a definite string")
            out += self.take(n)
        return bytes(out)

    def simple(self, info: int) -> Any:
        if info == 20:
            return False
        if info == 21:
            return True
        if info in (22, 23):
            return None
        if info == 25:
            raw = self.take(2)
            return float(struct.unpack(">e", raw)[0])
        if info == 26:
            return float(struct.unpack(">f", self.take(4))[0])
        if info == 27:
            return float(struct.unpack(">d", self.take(8))[0])
        raise CborError(f"CBOR simple value {info} is not accepted")


def decode(data: bytes) -> Any:
    reader = _Reader(data)
    value = reader.item(0)
    if reader.at != len(data):
        raise CborError("bytes follow the CBOR item")
    return value
