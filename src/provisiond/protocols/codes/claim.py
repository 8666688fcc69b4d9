"""provisiond's claim codes, typed by people from a label: an alphabet without look-alikes,
groups of four, a check character (the rules are in domain/claims.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from provisiond.domain.claims import normalise_claim_code
from provisiond.errors import InvalidInput
from provisiond.protocols.codes.base import PayloadError


@dataclass(frozen=True, slots=True)
class ClaimCode:
    FORMAT: ClassVar[str] = "claim-code"
    TITLE: ClassVar[str] = "provisiond claim code"

    code: str  # canonical: upper case, no separators, check character last

    @classmethod
    def parse(cls, text: str) -> ClaimCode:
        try:
            return cls(normalise_claim_code(text))
        except InvalidInput as err:
            raise PayloadError(
                cls.FORMAT, err.problems[0].message if err.problems else err.detail
            ) from None

    def render(self) -> str:
        return "-".join(self.code[i : i + 4] for i in range(0, len(self.code), 4))

    def fields(self) -> dict[str, Any]:
        return {"code": self.render()}
