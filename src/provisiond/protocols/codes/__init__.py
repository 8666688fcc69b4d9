"""Onboarding codes: every common format a device's label or QR carries, parsed and rendered.

Pure and sans-IO. Each format is a frozen value type with ``parse(text)`` (total: a value or
a :class:`PayloadError` saying what is wrong and where) and ``render()`` (its canonical
text). :func:`parse` decides the format of any text, as the claiming pages and
``provisiond codes parse`` do.
"""

from __future__ import annotations

import re

from provisiond.protocols.codes.base import Code, PayloadError
from provisiond.protocols.codes.claim import ClaimCode
from provisiond.protocols.codes.esp import EspProvCode
from provisiond.protocols.codes.lorawan import LoRaWanCode
from provisiond.protocols.codes.matter import MatterManualCode, MatterQr
from provisiond.protocols.codes.serial import SerialCode
from provisiond.protocols.codes.url import DeviceUrl

__all__ = [
    "FORMATS",
    "ClaimCode",
    "Code",
    "DeviceUrl",
    "EspProvCode",
    "LoRaWanCode",
    "MatterManualCode",
    "MatterQr",
    "PayloadError",
    "SerialCode",
    "parse",
]

FORMATS: dict[str, type[Code]] = {
    c.FORMAT: c
    for c in (
        SerialCode,
        DeviceUrl,
        LoRaWanCode,
        EspProvCode,
        MatterQr,
        MatterManualCode,
        ClaimCode,
    )
}

_MANUAL = re.compile(r"[0-9][0-9 \-]{9,25}")
_CLAIM = re.compile(r"[2-9A-Z]{4}(?:-[2-9A-Z]{4})*-[2-9A-Z]{1,4}")


def parse(text: str) -> Code:
    """The code this text is, by its shape: a prefix decides (``http(s)://`` a device URL,
    ``LW:``/``URN:LW:``/``URN:DEV:LW:`` LoRaWAN, ``MT:`` Matter, ``{`` ESP); then digits with a
    valid Verhoeff check are a Matter manual code, groups of four (``XXXX-XXXX-XXXX``) with a
    valid check character a claim code; anything else is a serial. A text with a known prefix
    that is not valid raises that format's error, not a serial's."""
    stripped = text.strip()
    head = stripped[:12].upper()
    if head.startswith(("HTTP://", "HTTPS://")):
        return DeviceUrl.parse(stripped)
    if head.startswith(("LW:", "URN:LW:", "URN:DEV:LW:")):
        return LoRaWanCode.parse(stripped)
    if head.startswith("MT:"):
        return MatterQr.parse(stripped)
    if stripped.startswith("{"):
        return EspProvCode.parse(stripped)
    if _MANUAL.fullmatch(stripped):
        digits = stripped.replace(" ", "").replace("-", "")
        if len(digits) in (11, 21):
            try:
                return MatterManualCode.parse(digits)
            except PayloadError:
                pass  # digits that are not a manual code: a serial, maybe
    if _CLAIM.fullmatch(stripped.upper()):
        try:
            return ClaimCode.parse(stripped)
        except PayloadError:
            pass
    return SerialCode.parse(stripped)
