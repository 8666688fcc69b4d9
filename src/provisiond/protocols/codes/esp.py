"""ESP provisioning QR codes (ESP-IDF wifi_provisioning, ESP RainMaker):

    {"ver":"v1","name":"PROV_1A2B3C","pop":"abcd1234","transport":"softap"}

``transport`` is ``softap`` or ``ble``; ``username`` comes with security 2 (and ``pop`` is then
the password); ``security`` may say which scheme. Firmware builds this with ``snprintf`` and
no escaping, so a name or PoP holding a quote or backslash yields text that is not JSON: when
strict JSON fails, the fields are read by their keys, tolerating that.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, ClassVar

from provisiond.protocols.codes.base import PayloadError

TRANSPORTS = ("softap", "ble", "on-network")
_KEYS = ("ver", "name", "pop", "transport", "username", "password", "security")
# "key" : "value" where the value runs to the quote that precedes the next key or the end
_LOOSE = re.compile(
    r'"('
    + "|".join(_KEYS)
    + r')"\s*:\s*"(.*?)"\s*(?=,\s*"(?:'
    + "|".join(_KEYS)
    + r')"\s*:|\}\s*$)',
    re.DOTALL,
)


@dataclass(frozen=True, slots=True)
class EspProvCode:
    FORMAT: ClassVar[str] = "esp"
    TITLE: ClassVar[str] = "ESP provisioning QR"

    name: str  # the device's provisioning name (SoftAP SSID or BLE name)
    transport: str
    pop: str = ""  # proof of possession (security 1) or password (security 2)
    username: str = ""  # security 2
    version: str = "v1"
    security: str = ""

    @staticmethod
    def default_name(node: str) -> str:
        """The provisioning name when none is given: ``PROV_`` and the node's last 6
        characters (ESP-IDF's examples use the MAC address's last 3 bytes)."""
        return f"PROV_{node[-6:]}"

    @classmethod
    def parse(cls, text: str) -> EspProvCode:
        text = text.strip()
        if not text.startswith("{"):
            raise PayloadError(cls.FORMAT, "does not start with '{'", 0)
        if not text.endswith("}"):
            raise PayloadError(
                cls.FORMAT,
                "does not end with '}': cut short? (ESP-IDF's example writes it into 150 bytes)",
                len(text) - 1,
            )
        try:
            data = json.loads(text)
            values = dict(data) if isinstance(data, dict) else None
        except ValueError:
            values = None
        if values is None:
            values = {m.group(1): m.group(2) for m in _LOOSE.finditer(text)}
            if not values:
                raise PayloadError(cls.FORMAT, "neither JSON nor the ESP QR fields")
        for key, value in values.items():
            if key in _KEYS and not isinstance(value, str | int):
                raise PayloadError(cls.FORMAT, f"{key!r} must be text")
        name = str(values.get("name", ""))
        transport = str(values.get("transport", "")).lower()
        if not name:
            raise PayloadError(cls.FORMAT, 'has no "name" (the device\'s provisioning name)')
        if transport not in TRANSPORTS:
            shown = repr(transport) if transport else "none"
            raise PayloadError(cls.FORMAT, f"transport {shown}; expected softap or ble")
        return cls(
            name=name,
            transport=transport,
            pop=str(values.get("pop", "") or values.get("password", "")),
            username=str(values.get("username", "")),
            version=str(values.get("ver", "v1")),
            security=str(values.get("security", "")),
        )

    def render(self) -> str:
        data: dict[str, str] = {"ver": self.version, "name": self.name}
        if self.username:
            data["username"] = self.username
        if self.pop:
            data["pop"] = self.pop
        data["transport"] = self.transport
        if self.security:
            data["security"] = self.security
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False)

    def fields(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "transport": self.transport,
            "pop": self.pop or None,
            "username": self.username or None,
            "version": self.version,
            "security": self.security or ("2" if self.username else "1" if self.pop else "0"),
        }
