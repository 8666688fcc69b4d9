"""Matter onboarding payloads: the ``MT:`` QR payload and the manual pairing codes.

QR: ``MT:`` and base-38 text of an 88-bit little-endian bit string (version 3 bits, vendor
id 16, product id 16, commissioning flow 2, discovery capabilities 8, discriminator 12,
passcode 27, padding 4), optionally followed by TLV data (kept as bytes). Base-38 packs
3 bytes into 5 characters (2 into 4, 1 into 2), least significant first, from
``0-9 A-Z - .``.

Manual code: 11 digits (10 and a Verhoeff check digit), or 21 when the vendor and product ids
are present (custom commissioning flow): a digit with the version, the ids flag and the top 2
bits of the 4-bit short discriminator; 5 digits with its low 2 bits and the passcode's low 14
bits; 4 digits with the passcode's high 13 bits; [vendor id, product id as 5 digits each];
the check digit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from provisiond.protocols.codes.base import PayloadError

BASE38 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-."
_INDEX = {c: i for i, c in enumerate(BASE38)}
_CHARS_FOR_BYTES = {1: 2, 2: 4, 3: 5}
_BYTES_FOR_CHARS = {2: 1, 4: 2, 5: 3}
FLOWS = ("standard", "user-intent", "custom")
DISCOVERY = {1: "soft-ap", 2: "ble", 4: "on-network"}
# Passcodes the specification forbids (trivial ones).
INVALID_PASSCODES = frozenset(
    {
        0,
        11111111,
        22222222,
        33333333,
        44444444,
        55555555,
        66666666,
        77777777,
        88888888,
        99999999,
        12345678,
        87654321,
    }
)


def base38_encode(data: bytes) -> str:
    out = []
    for i in range(0, len(data), 3):
        chunk = data[i : i + 3]
        value = int.from_bytes(chunk, "little")
        for _ in range(_CHARS_FOR_BYTES[len(chunk)]):
            value, digit = divmod(value, 38)
            out.append(BASE38[digit])
    return "".join(out)


def base38_decode(text: str, fmt: str = "matter-qr", offset: int = 0) -> bytes:
    out = bytearray()
    index = _INDEX
    for i in range(0, len(text), 5):
        chunk = text[i : i + 5]
        size = _BYTES_FOR_CHARS.get(len(chunk))
        if size is None:
            raise PayloadError(
                fmt, f"{len(text)} base-38 characters cannot be whole bytes", offset + i
            )
        value = 0
        try:
            for ch in reversed(chunk):
                value = value * 38 + index[ch]
        except KeyError:
            bad = next(j for j, ch in enumerate(chunk) if ch not in index)
            raise PayloadError(
                fmt, f"{chunk[bad]!r} is not a base-38 character", offset + i + bad
            ) from None
        if value >> (8 * size):
            raise PayloadError(fmt, "a base-38 group is out of range", offset + i)
        out += value.to_bytes(size, "little")
    return bytes(out)


# Verhoeff's check digit (dihedral group D5): multiplication, permutation and inverse tables.
# Written out here rather than called from python-stdnum, which the tests use as the oracle:
# its general-purpose version costs half of parsing a manual code.
_D = tuple(
    tuple(int(c) for c in row)
    for row in (
        "0123456789",
        "1234067895",
        "2340178956",
        "3401289567",
        "4012395678",
        "5987604321",
        "6598710432",
        "7659821043",
        "8765932104",
        "9876543210",
    )
)
_P = tuple(
    tuple(int(c) for c in row)
    for row in (
        "0123456789",
        "1576283094",
        "5803796142",
        "8916043527",
        "9453126870",
        "4286573901",
        "2793806415",
        "7046913258",
    )
)
_INV = (0, 4, 3, 2, 1, 5, 6, 7, 8, 9)


def verhoeff_digit(digits: str) -> str:
    """The Verhoeff check digit of a string of ASCII digits."""
    c = 0
    for i, ch in enumerate(reversed(digits)):
        c = _D[c][_P[(i + 1) % 8][ord(ch) - 48]]
    return str(_INV[c])


def _check(fmt: str, discriminator: int, passcode: int) -> None:
    if not 0 <= discriminator < 1 << 12:
        raise PayloadError(fmt, "the discriminator must be 0 to 4095")
    if not 1 <= passcode <= 99999998 or passcode in INVALID_PASSCODES:
        raise PayloadError(fmt, "the passcode must be 1 to 99999998 and not a trivial one")


@dataclass(frozen=True, slots=True)
class MatterQr:
    FORMAT: ClassVar[str] = "matter-qr"
    TITLE: ClassVar[str] = "Matter QR payload"

    vendor_id: int
    product_id: int
    discriminator: int  # 12 bits
    passcode: int  # 27 bits, 1..99999998
    flow: int = 0  # 0 standard, 1 user intent, 2 custom
    discovery: int = 4  # bit mask: 1 soft-AP, 2 BLE, 4 on network
    version: int = 0
    tlv: bytes = b""  # optional TLV data, kept as it came

    @classmethod
    def parse(cls, text: str) -> MatterQr:
        text = text.strip()
        if not text.upper().startswith("MT:"):
            raise PayloadError(cls.FORMAT, "does not start with MT:", 0)
        data = base38_decode(text[3:].upper(), cls.FORMAT, 3)
        if len(data) < 11:
            raise PayloadError(
                cls.FORMAT, f"holds {len(data)} bytes; the payload needs 11", len(text)
            )
        bits = int.from_bytes(data[:11], "little")
        version = bits & 0x7
        if version != 0:
            raise PayloadError(cls.FORMAT, f"version {version} is unknown (0 is defined)", 3)
        flow = (bits >> 35) & 0x3
        if flow == 3:
            raise PayloadError(cls.FORMAT, "commissioning flow 3 is reserved", 3)
        if bits >> 84:
            raise PayloadError(cls.FORMAT, "the padding bits are not zero", 3)
        code = cls(
            vendor_id=(bits >> 3) & 0xFFFF,
            product_id=(bits >> 19) & 0xFFFF,
            discriminator=(bits >> 45) & 0xFFF,
            passcode=(bits >> 57) & 0x7FFFFFF,
            flow=flow,
            discovery=(bits >> 37) & 0xFF,
            version=version,
            tlv=bytes(data[11:]),
        )
        _check(cls.FORMAT, code.discriminator, code.passcode)
        return code

    def render(self) -> str:
        _check(self.FORMAT, self.discriminator, self.passcode)
        bits = (
            self.version
            | self.vendor_id << 3
            | self.product_id << 19
            | self.flow << 35
            | self.discovery << 37
            | self.discriminator << 45
            | self.passcode << 57
        )
        return "MT:" + base38_encode(bits.to_bytes(11, "little") + self.tlv)

    def manual(self) -> MatterManualCode:
        """The manual pairing code of the same device (with the vendor and product ids unless
        the flow is standard)."""
        custom = self.flow != 0
        return MatterManualCode(
            self.discriminator >> 8,
            self.passcode,
            self.vendor_id if custom else None,
            self.product_id if custom else None,
        )

    def fields(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "vendor_id": self.vendor_id,
            "product_id": self.product_id,
            "flow": FLOWS[self.flow],
            "discovery": [name for bit, name in DISCOVERY.items() if self.discovery & bit],
            "discriminator": self.discriminator,
            "passcode": self.passcode,
            "tlv": self.tlv.hex() or None,
            "manual_code": self.manual().render(),
        }


@dataclass(frozen=True, slots=True)
class MatterManualCode:
    FORMAT: ClassVar[str] = "matter-manual"
    TITLE: ClassVar[str] = "Matter manual pairing code"

    short_discriminator: int  # the discriminator's top 4 bits
    passcode: int
    vendor_id: int | None = None  # with product_id: the 21-digit form
    product_id: int | None = None

    @classmethod
    def parse(cls, text: str) -> MatterManualCode:
        digits = text.strip().replace(" ", "").replace("-", "")
        if not (digits.isascii() and digits.isdigit()):
            bad = next((i for i, ch in enumerate(digits) if not "0" <= ch <= "9"), 0)
            raise PayloadError(cls.FORMAT, f"{digits[bad : bad + 1]!r} is not a digit", bad)
        if len(digits) not in (11, 21):
            raise PayloadError(cls.FORMAT, f"has {len(digits)} digits; a manual code has 11 or 21")
        if verhoeff_digit(digits[:-1]) != digits[-1]:
            raise PayloadError(
                cls.FORMAT, "the check digit does not match: a digit is mistyped", len(digits) - 1
            )
        first = int(digits[0])
        if first > 7:
            raise PayloadError(cls.FORMAT, "the first digit must be 0 to 7 (version 0)", 0)
        long_form = bool(first & 0x4)
        if long_form != (len(digits) == 21):
            raise PayloadError(
                cls.FORMAT,
                "the first digit says the ids are "
                f"{'present' if long_form else 'absent'}, the "
                f"length says otherwise",
                0,
            )
        chunk2, chunk3 = int(digits[1:6]), int(digits[6:10])
        if chunk2 >= 1 << 16 or chunk3 >= 1 << 13:
            raise PayloadError(cls.FORMAT, "a group of digits is out of range", 1)
        short = ((first & 0x3) << 2) | (chunk2 >> 14)
        passcode = (chunk3 << 14) | (chunk2 & 0x3FFF)
        vendor = product = None
        if long_form:
            vendor, product = int(digits[10:15]), int(digits[15:20])
            if vendor > 0xFFFF or product > 0xFFFF:
                raise PayloadError(cls.FORMAT, "the vendor or product id is over 65535", 10)
        _check(cls.FORMAT, short << 8, passcode)
        return cls(short, passcode, vendor, product)

    def render(self) -> str:
        _check(self.FORMAT, self.short_discriminator << 8, self.passcode)
        long_form = self.vendor_id is not None and self.product_id is not None
        first = (int(long_form) << 2) | (self.short_discriminator >> 2)
        chunk2 = ((self.short_discriminator & 0x3) << 14) | (self.passcode & 0x3FFF)
        body = f"{first}{chunk2:05d}{self.passcode >> 14:04d}"
        if long_form:
            body += f"{self.vendor_id:05d}{self.product_id:05d}"
        return body + verhoeff_digit(body)

    def fields(self) -> dict[str, Any]:
        return {
            "short_discriminator": self.short_discriminator,
            "passcode": self.passcode,
            "vendor_id": self.vendor_id,
            "product_id": self.product_id,
        }
