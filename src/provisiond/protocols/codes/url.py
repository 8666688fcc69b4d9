"""The provisiond device URL on a label: ``https://HOST/d/{serial}``, optionally with the
claim code (``?code=…``). A phone's camera app opens it directly; provisiond's own reader
takes the serial (and code) from it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import parse_qs, quote, unquote, urlsplit

from provisiond.domain.serials import normalise_serial, serial_problem
from provisiond.protocols.codes.base import PayloadError

# The common case (no escapes, no other query): one match; the rest goes through urlsplit.
_FAST = re.compile(
    r"(https?)://([A-Za-z0-9.\-]+(?::[0-9]+)?)((?:/[A-Za-z0-9._\-]+)*)"
    r"/d/([A-Za-z0-9._:\-]+)/?(?:\?code=([A-Za-z0-9\-]*))?"
)
_SERIAL = re.compile(r"[A-Z0-9._:\-]{1,64}")


@dataclass(frozen=True, slots=True)
class DeviceUrl:
    FORMAT: ClassVar[str] = "url"
    TITLE: ClassVar[str] = "provisiond device URL"

    base: str  # scheme://host[:port][/prefix], no trailing slash
    serial: str
    claim_code: str | None = None

    @classmethod
    def parse(cls, text: str) -> DeviceUrl:
        text = text.strip()
        fast = _FAST.fullmatch(text)
        if fast is not None:
            scheme, host, prefix, raw_serial, code = fast.groups()
            serial = raw_serial.upper()
            if _SERIAL.fullmatch(serial):
                return cls(
                    f"{scheme.lower()}://{host.lower()}{prefix}",
                    serial,
                    code.upper() if code else None,
                )
        parts = urlsplit(text)
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            raise PayloadError(cls.FORMAT, "not an http(s) URL with a host")
        path = parts.path
        marker = path.rfind("/d/")
        if marker < 0:
            raise PayloadError(
                cls.FORMAT,
                "the path has no /d/{serial}",
                text.find(parts.netloc) + len(parts.netloc),
            )
        raw = unquote(path[marker + 3 :]).rstrip("/")
        serial = normalise_serial(raw)
        problem = serial_problem(serial)
        if problem is not None:
            raise PayloadError(cls.FORMAT, f"the serial {problem}", text.find(path) + marker + 3)
        code = parse_qs(parts.query).get("code", [None])[0]
        base = f"{parts.scheme.lower()}://{parts.netloc.lower()}{path[:marker]}"
        return cls(base, serial, code.strip().upper() if code else None)

    def render(self) -> str:
        url = f"{self.base}/d/{quote(self.serial, safe='')}"
        return f"{url}?code={quote(self.claim_code, safe='')}" if self.claim_code else url

    def fields(self) -> dict[str, Any]:
        return {"base": self.base, "serial": self.serial, "claim_code": self.claim_code}
