"""Groups: the organisation tree (organisation / customer / region / site, any depth).

A group is addressed by its path, the names from the root joined with ``/``:
``"Sadler-Isberg/West/Anaheim"``. A user sees the devices of their group's whole subtree.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from provisiond.domain.limits import GROUP_DEPTH_MAX, GROUP_SEGMENT_MAX
from provisiond.domain.text import has_control_chars
from provisiond.errors import InvalidInput, Problem

SEPARATOR = "/"


@dataclass(frozen=True, slots=True)
class Group:
    id: uuid.UUID
    name: str
    path: str
    parent_id: uuid.UUID | None
    depth: int
    created_at: datetime

    @property
    def parent_path(self) -> str | None:
        return parent_path(self.path)


def parse_group_path(text: str, *, field: str = "group") -> str:
    """Validate a group path and return it in canonical form (segments trimmed)."""
    raw = text.strip().strip(SEPARATOR)
    if not raw:
        raise InvalidInput(f"{field} is empty", problems=[Problem("is empty", field=field)])
    segments = [s.strip() for s in raw.split(SEPARATOR)]
    for seg in segments:
        problem = None
        if not seg:
            problem = "has an empty segment ('//')"
        elif len(seg) > GROUP_SEGMENT_MAX:
            problem = f"has a segment longer than {GROUP_SEGMENT_MAX} characters"
        elif has_control_chars(seg):
            problem = "contains a control character"
        if problem:
            raise InvalidInput(
                f"{field} {text!r} {problem}", problems=[Problem(problem, field=field)]
            )
    if len(segments) > GROUP_DEPTH_MAX:
        problem = f"is {len(segments)} levels deep; at most {GROUP_DEPTH_MAX} are allowed"
        raise InvalidInput(f"{field} {problem}", problems=[Problem(problem, field=field)])
    return SEPARATOR.join(segments)


def parent_path(path: str) -> str | None:
    head, sep, _ = path.rpartition(SEPARATOR)
    return head if sep else None


def lineage(path: str) -> list[str]:
    """Every path from the root down to ``path``: ``a/b/c`` -> ``[a, a/b, a/b/c]``."""
    parts = path.split(SEPARATOR)
    return [SEPARATOR.join(parts[: i + 1]) for i in range(len(parts))]


def is_within(path: str, ancestor: str) -> bool:
    """True when ``path`` is ``ancestor`` or lies below it."""
    return path == ancestor or path.startswith(ancestor + SEPARATOR)
