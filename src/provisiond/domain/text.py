"""Checks shared by every free-text field."""

from __future__ import annotations

import re

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")


def has_control_chars(text: str) -> bool:
    """True when ``text`` holds a C0/C1 control character (tabs and newlines included)."""
    return _CONTROL.search(text) is not None


def has_undecodable_bytes(text: str) -> bool:
    """True when ``text`` carries bytes that were not valid UTF-8 (decoded with surrogateescape)."""
    return not text.isascii() and _ESCAPED_BYTE.search(text) is not None


def format_wait(seconds: float) -> str:
    """A wait as a person reads it: ``45 s``, ``1 min``, ``4 min 59 s`` (never ``299 s``),
    rounded to the second and at least one (a wait of nothing is still a wait)."""
    total = max(1, round(seconds))
    minutes, rest = divmod(total, 60)
    if not minutes:
        return f"{rest} s"
    return f"{minutes} min {rest} s" if rest else f"{minutes} min"
