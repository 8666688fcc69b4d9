"""Checks shared by every free-text field."""

from __future__ import annotations


def has_control_chars(text: str) -> bool:
    """True when ``text`` holds a C0/C1 control character (tabs and newlines included)."""
    return any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in text)


def has_undecodable_bytes(text: str) -> bool:
    """True when ``text`` carries bytes that were not valid UTF-8 (decoded with surrogateescape)."""
    if text.isascii():
        return False
    return any("\udc80" <= ch <= "\udcff" for ch in text)
