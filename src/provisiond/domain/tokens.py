"""Operator API tokens (bearer tokens for the admin API and scripts)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from provisiond.domain.limits import TOKEN_NAME_MAX
from provisiond.domain.scope import Scope
from provisiond.domain.users import Role
from provisiond.errors import InvalidInput, Problem

_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
_SPAN = re.compile(r"([1-9][0-9]{0,5})([hdw])")
_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}
PREFIX = "pvd_"


@dataclass(frozen=True, slots=True)
class TokenSpec:
    """What creating an operator token takes, as given (unchecked): the CLI's options and
    the API's body both build one; services.directory.create_token checks it."""

    name: str
    role: str = Role.ADMIN.value
    group: str | None = None  # None: operator-wide
    expires: str | None = None  # a span from now (12h, 30d, 8w) or an ISO date or date-time


@dataclass(frozen=True, slots=True)
class ApiToken:
    id: uuid.UUID
    name: str
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
    role: Role = Role.ADMIN
    group_path: str | None = None  # None: operator-wide
    expires_at: datetime | None = None

    @property
    def scope(self) -> Scope:
        return Scope(self.role, self.group_path)


def parse_token_name(text: str, *, field: str = "name") -> str:
    name = text.strip()
    problem = None
    if not name:
        problem = "is empty"
    elif len(name) > TOKEN_NAME_MAX:
        problem = f"is longer than {TOKEN_NAME_MAX} characters"
    elif _NAME.fullmatch(name) is None:
        problem = "may hold only letters, digits, '_', '.' and '-'"
    if problem:
        raise InvalidInput(f"{field} {problem}", problems=[Problem(problem, field=field)])
    return name


def parse_expiry(text: str, *, now: datetime, field: str = "expires") -> datetime:
    """When a token expires: a span from ``now`` (``12h``, ``30d``, ``8w``), an ISO date
    (its start, UTC) or an ISO date and time (UTC unless it names an offset); in the
    future."""
    value = text.strip().lower()
    at: datetime | None = None
    span = _SPAN.fullmatch(value)
    if span:
        at = now + int(span.group(1)) * _UNITS[span.group(2)]
    else:
        try:
            at = (
                datetime.fromisoformat(value.upper())
                if "t" in value or " " in value
                else datetime.combine(date.fromisoformat(value), datetime.min.time())
            )
        except ValueError:
            at = None
        if at is not None and at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
    problem = None
    if at is None:
        problem = f"{text!r} is neither a span (12h, 30d, 8w) nor an ISO date or date-time"
    elif at <= now:
        problem = f"{text.strip()!r} is not in the future"
    if problem or at is None:
        raise InvalidInput(f"{field} {problem}", problems=[Problem(str(problem), field=field)])
    return at.astimezone(UTC)
