"""Operator API tokens (bearer tokens for the admin API and scripts)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from provisiond.domain.limits import TOKEN_NAME_MAX
from provisiond.domain.scope import Scope
from provisiond.domain.users import Role
from provisiond.errors import InvalidInput, Problem

_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
PREFIX = "pvd_"


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
