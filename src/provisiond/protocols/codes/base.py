"""What every onboarding code format shares: a total parser's error, and the value protocol."""

from __future__ import annotations

from typing import Any, ClassVar, Protocol


class PayloadError(ValueError):
    """Text that is not a valid code of a format: what is wrong, and where (a 0-based offset
    into the text, when one place is to blame)."""

    def __init__(self, format_name: str, message: str, position: int | None = None) -> None:
        where = f" (at character {position + 1})" if position is not None else ""
        super().__init__(f"{format_name}: {message}{where}")
        self.format_name = format_name
        self.message = message
        self.position = position


class Code(Protocol):
    """A parsed code: frozen, comparable, rendered back to its canonical text."""

    FORMAT: ClassVar[str]  # a short name: serial, url, lorawan, esp, matter-qr, …
    TITLE: ClassVar[str]  # what people call it

    def render(self) -> str: ...

    def fields(self) -> dict[str, Any]:
        """The code's fields, for people and for JSON."""
        ...


def check_hex(format_name: str, text: str, digits: int, what: str, offset: int) -> int:
    """``text`` as a number of exactly ``digits`` hex digits, or PayloadError naming it."""
    if len(text) != digits:
        raise PayloadError(
            format_name, f"the {what} must be {digits} hexadecimal digits, not {len(text)}", offset
        )
    for i, ch in enumerate(text):
        if ch not in "0123456789abcdefABCDEF":
            raise PayloadError(
                format_name,
                f"the {what} holds {ch!r}, which is not a hexadecimal digit",
                offset + i,
            )
    return int(text, 16)
