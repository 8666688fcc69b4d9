"""The serial: the unique identifier printed on a device.

One normalisation rule, used by every path that takes a serial (import, API, pages, MQTT):
trim, drop every whitespace character, upper-case. After that a serial is 1 to 64 characters
of ``A-Z 0-9 - _ . :``. ``" 70b3 d57e-d000 0001 "`` and ``"70B3D57E-D0000001"`` are the same device.
"""

from __future__ import annotations

import re

from provisiond.domain.limits import SERIAL_MAX
from provisiond.errors import InvalidInput, Problem

_VALID = re.compile(r"[A-Z0-9._:\-]+")
ALLOWED_DESCRIPTION = "letters A-Z, digits, '-', '_', '.' and ':'"


def normalise_serial(text: str) -> str:
    """Apply the normalisation rule only (no validation)."""
    return "".join(text.split()).upper()


def serial_problem(serial: str) -> str | None:
    """Why a *normalised* serial is invalid, or None when it is valid."""
    if not serial:
        return "is empty"
    if len(serial) > SERIAL_MAX:
        return f"is {len(serial)} characters long; at most {SERIAL_MAX} are allowed"
    if _VALID.fullmatch(serial) is None:
        bad = next(ch for ch in serial if _VALID.fullmatch(ch) is None)
        return f"contains {bad!r}; a serial may hold only {ALLOWED_DESCRIPTION}"
    return None


def parse_serial(text: str, *, field: str = "serial") -> str:
    """Normalise and validate a serial, or raise :class:`InvalidInput` naming the field."""
    serial = normalise_serial(text)
    problem = serial_problem(serial)
    if problem is not None:
        raise InvalidInput(f"{field} {problem}", problems=[Problem(problem, field=field)])
    return serial
