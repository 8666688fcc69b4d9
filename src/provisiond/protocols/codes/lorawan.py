"""LoRaWAN device identification QR codes, LoRa Alliance TR005.

    LW:D0:<JoinEUI>:<DevEUI>:<ProfileID>[:O<OwnerToken>][:S<SerNum>][:P<Proprietary>][:C<CheckSum>]

EUIs are 16 hex digits, the ProfileID 8 (vendor id and vendor profile id, 4 each). Optional
fields start with their letter; an empty one is the same as an absent one. The drafts are
read too: ``URN:LW:DP:<JoinEUI>:<DevEUI>:<ProfileID>[:%V…%S…%P…]`` (draft 2) and
``URN:DEV:LW:<JoinEUI>_<DevEUI>_<ProfileID>[_V…_S…_P…]`` (draft 3), their validation code
read as the owner token. The checksum is kept but not verified: its algorithm is not
confirmed here from the specification, so no code is refused for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

from provisiond.protocols.codes.base import PayloadError, check_hex

_OPTIONAL = {"O": "owner_token", "S": "serial_number", "P": "proprietary", "C": "checksum"}
_DRAFT_OPTIONAL = {"V": "owner_token", "S": "serial_number", "P": "proprietary"}
# The common case in one match; anything else goes the slow way, which says what is wrong.
_FAST = re.compile(
    r"LW:D0:([0-9A-Fa-f]{16}):([0-9A-Fa-f]{16}):([0-9A-Fa-f]{8})"
    r"((?::[OSPCosp][^:]*)*)"
)


@dataclass(frozen=True, slots=True)
class LoRaWanCode:
    FORMAT: ClassVar[str] = "lorawan"
    TITLE: ClassVar[str] = "LoRaWAN device QR (TR005)"

    join_eui: str  # 16 upper-case hex digits
    dev_eui: str
    profile_id: str  # 8 upper-case hex digits
    owner_token: str = ""
    serial_number: str = ""
    proprietary: str = ""
    checksum: str = ""
    draft: str = ""  # "" (TR005), "draft 2" or "draft 3": how it was written

    @classmethod
    def parse(cls, text: str) -> LoRaWanCode:
        text = text.strip()
        upper = text.upper()
        if upper.startswith("LW:D0:"):
            return cls._parse_final(text)
        if upper.startswith("URN:LW:DP:"):
            return cls._parse_draft2(text)
        if upper.startswith("URN:DEV:LW:"):
            return cls._parse_draft3(text)
        if upper.startswith("LW:"):
            raise PayloadError(cls.FORMAT, f"schema {text[3:5]!r} is unknown; TR005 defines D0", 3)
        raise PayloadError(cls.FORMAT, "does not start with LW:D0:")

    @classmethod
    def _ids(cls, parts: list[str], offsets: list[int]) -> tuple[str, str, str]:
        names = ("JoinEUI", "DevEUI", "ProfileID")
        sizes = (16, 16, 8)
        out = []
        for part, offset, name, size in zip(parts, offsets, names, sizes, strict=True):
            check_hex(cls.FORMAT, part, size, name, offset)
            out.append(part.upper())
        return out[0], out[1], out[2]

    @classmethod
    def _parse_final(cls, text: str) -> LoRaWanCode:
        fast = _FAST.fullmatch(text)
        if fast is not None:
            join, dev, profile, rest = fast.groups()
            if not rest:
                return cls(join.upper(), dev.upper(), profile.upper())
            optional: dict[str, str] = {}
            duplicate = False
            for part in rest[1:].split(":"):
                if len(part) > 1:
                    key = _OPTIONAL[part[0].upper()]
                    duplicate = duplicate or key in optional
                    optional[key] = part[1:]
            if not duplicate:
                return cls(join.upper(), dev.upper(), profile.upper(), **optional)
        return cls._parse_final_slowly(text)

    @classmethod
    def _parse_final_slowly(cls, text: str) -> LoRaWanCode:
        parts = text.split(":")
        if len(parts) < 5:
            raise PayloadError(
                cls.FORMAT, "needs JoinEUI, DevEUI and ProfileID after LW:D0:", len(text)
            )
        offsets = [sum(len(p) + 1 for p in parts[:i]) for i in range(len(parts))]
        join, dev, profile = cls._ids(parts[2:5], offsets[2:5])
        optional: dict[str, str] = {}
        for part, offset in zip(parts[5:], offsets[5:], strict=True):
            if not part:
                continue
            key = _OPTIONAL.get(part[0].upper())
            if key is None:
                raise PayloadError(
                    cls.FORMAT,
                    f"unknown optional field {part[0]!r} (TR005 has O, S, P and C)",
                    offset,
                )
            if key in optional and part[1:]:
                raise PayloadError(cls.FORMAT, f"field {part[0]!r} appears twice", offset)
            if part[1:]:
                optional[key] = part[1:]
        return cls(join, dev, profile, **optional)

    @classmethod
    def _parse_draft2(cls, text: str) -> LoRaWanCode:
        parts = text.split(":", 6)
        if len(parts) < 6:
            raise PayloadError(
                cls.FORMAT, "needs JoinEUI, DevEUI and ProfileID after URN:LW:DP:", len(text)
            )
        offsets = [sum(len(p) + 1 for p in parts[:i]) for i in range(len(parts))]
        join, dev, profile = cls._ids(parts[3:6], offsets[3:6])
        exts = parts[6].replace("%25", "%").split("%") if len(parts) == 7 else []
        fields = cls._draft_fields(exts, [offsets[-1]] * len(exts), "draft 2")
        return cls(join, dev, profile, draft="draft 2", **fields)

    @classmethod
    def _draft_fields(cls, exts: list[str], offsets: list[int], draft: str) -> dict[str, str]:
        """The drafts' optional fields: V (validation code, read as the owner token), S, P."""
        fields: dict[str, str] = {}
        for ext, offset in zip(exts, offsets, strict=True):
            if len(ext) > 1:
                key = _DRAFT_OPTIONAL.get(ext[0].upper())
                if key is None:
                    raise PayloadError(
                        cls.FORMAT,
                        f"unknown field {ext[0]!r} in {draft} (it has V, S and P)",
                        offset,
                    )
                fields[key] = ext[1:]
        return fields

    @classmethod
    def _parse_draft3(cls, text: str) -> LoRaWanCode:
        body = text[len("URN:DEV:LW:") :]
        parts = body.split("_")
        if len(parts) < 3:
            raise PayloadError(
                cls.FORMAT, "needs JoinEUI_DevEUI_ProfileID after URN:DEV:LW:", len(text)
            )
        base = len("URN:DEV:LW:")
        offsets = [base + sum(len(p) + 1 for p in parts[:i]) for i in range(len(parts))]
        join, dev, profile = cls._ids(parts[:3], offsets[:3])
        fields = cls._draft_fields(parts[3:], offsets[3:], "draft 3")
        return cls(join, dev, profile, draft="draft 3", **fields)

    def render(self) -> str:
        """The canonical TR005 text (drafts are rendered in the final form)."""
        text = f"LW:D0:{self.join_eui}:{self.dev_eui}:{self.profile_id}"
        for letter, key in _OPTIONAL.items():
            value = getattr(self, key)
            if value:
                text += f":{letter}{value}"
        return text

    def fields(self) -> dict[str, Any]:
        return {
            "join_eui": self.join_eui,
            "dev_eui": self.dev_eui,
            "vendor_id": self.profile_id[:4],
            "vendor_profile_id": self.profile_id[4:],
            "owner_token": self.owner_token or None,
            "serial_number": self.serial_number or None,
            "proprietary": self.proprietary or None,
            "checksum": (f"{self.checksum} (not verified)" if self.checksum else None),
            "written_as": self.draft or "TR005",
        }
