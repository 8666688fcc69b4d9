"""A plain serial, normalised with the foundation's rule (trim, no whitespace, upper case)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from provisiond.domain.serials import normalise_serial, serial_problem
from provisiond.protocols.codes.base import PayloadError


@dataclass(frozen=True, slots=True)
class SerialCode:
    FORMAT: ClassVar[str] = "serial"
    TITLE: ClassVar[str] = "device serial"

    serial: str

    @classmethod
    def parse(cls, text: str) -> SerialCode:
        serial = normalise_serial(text)
        problem = serial_problem(serial)
        if problem is not None:
            raise PayloadError(cls.FORMAT, f"the serial {problem}")
        return cls(serial)

    def render(self) -> str:
        return self.serial

    def fields(self) -> dict[str, Any]:
        return {"serial": self.serial}
