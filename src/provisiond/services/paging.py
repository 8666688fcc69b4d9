"""Keyset pagination, one scheme for every listing: devices by serial, groups by path, users
by e-mail, tokens and profiles by name, webhooks by id.

A listing asks the store for ``limit + 1`` rows after the cursor's key: the extra row says
whether there is a next page, whose cursor is the key of the last row shown. The cursor is
opaque to callers (base64 of the key), so the scheme can change without breaking them.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from provisiond.domain.limits import PAGE_SIZE_MAX
from provisiond.errors import InvalidCursor, InvalidInput, Problem

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(f"s:{key}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raw = ""
    if not raw.startswith("s:"):
        raise InvalidCursor(
            "the page cursor is not one provisiond gave out",
            problems=[Problem("is not a cursor from a previous page", "cursor")],
        )
    return raw[2:]


def limit_problem(limit: int) -> Problem | None:
    if not 1 <= limit <= PAGE_SIZE_MAX:
        return Problem(f"must be between 1 and {PAGE_SIZE_MAX}", "limit")
    return None


def start(cursor: str | None, limit: int) -> str | None:
    """The key to list after (None: from the start); refuses a bad limit or cursor."""
    problem = limit_problem(limit)
    if problem is not None:
        raise InvalidInput(str(problem), problems=[problem])
    return decode_cursor(cursor) if cursor else None


def page_of(rows: list[T], limit: int, key: Callable[[T], str]) -> Page[T]:
    """The page of ``rows`` (up to ``limit + 1`` fetched) and the cursor of the next one."""
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, encode_cursor(key(rows[-1])) if more and rows else None)


async def every_page(fetch: Callable[[str | None, int], Awaitable[Page[T]]]) -> list[T]:
    """Every item of a listing, page by page (the command line prints whole listings)."""
    items: list[T] = []
    cursor: str | None = None
    while True:
        page = await fetch(cursor, PAGE_SIZE_MAX)
        items.extend(page.items)
        if page.next_cursor is None:
            return items
        cursor = page.next_cursor
