"""Users: people who sign in. Operators use API tokens instead."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from provisiond.domain.limits import EMAIL_MAX, PASSWORD_MAX, PASSWORD_MIN
from provisiond.errors import InvalidInput, Problem

if TYPE_CHECKING:
    from provisiond.domain.scope import Scope

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")


class Role(StrEnum):
    ADMIN = "admin"
    INSTALLER = "installer"
    VIEWER = "viewer"

    @property
    def may_claim(self) -> bool:
        return self in (Role.ADMIN, Role.INSTALLER)


@dataclass(frozen=True, slots=True)
class UserSpec:
    """What creating a user takes, as given (unchecked): the CLI's options and the API's
    body both build one; services.directory.create_user checks it."""

    email: str
    password: str
    role: str  # admin, installer or viewer
    group: str | None  # the path of the user's group; None: an operator-wide admin


@dataclass(frozen=True, slots=True)
class User:
    """A person who signs in. ``group_id``/``group_path`` None: an operator-wide admin, who
    sees every group and the devices of none (the CLI's scope, in the browser); only an
    admin can be one (the database checks it too)."""

    id: uuid.UUID
    email: str
    role: Role
    group_id: uuid.UUID | None
    group_path: str | None
    created_at: datetime
    disabled_at: datetime | None = None

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None

    @property
    def operator_wide(self) -> bool:
        return self.group_path is None

    @property
    def where(self) -> str:
        """Where the user belongs, in words: their group's path, or every group."""
        return self.group_path if self.group_path is not None else "every group (operator-wide)"

    @property
    def may_claim(self) -> bool:
        """A claim puts the device in the claimer's group: an operator-wide admin has none
        (they move stock to a customer's group from the console instead)."""
        return self.role.may_claim and self.group_path is not None

    @property
    def why_no_claims(self) -> str:
        """Why this user may not claim devices (when :attr:`may_claim` is false)."""
        if self.role.may_claim:
            return (
                "an operator-wide account belongs to no group to claim devices for: move "
                "devices to a customer's group from the console, or claim as a user of that group"
            )
        return "your role may not claim devices"

    @property
    def scope(self) -> Scope:
        from provisiond.domain.scope import Scope  # scope.py imports Role from here

        return Scope(self.role, self.group_path)


def parse_email(text: str, *, field: str = "email") -> str:
    email = text.strip().lower()
    problem = None
    if not email:
        problem = "is empty"
    elif len(email) > EMAIL_MAX:
        problem = f"is longer than {EMAIL_MAX} characters"
    elif _EMAIL.fullmatch(email) is None:
        problem = f"{text.strip()!r} is not an e-mail address"
    if problem:
        raise InvalidInput(f"{field} {problem}", problems=[Problem(problem, field=field)])
    return email


def parse_role(text: str, *, field: str = "role") -> Role:
    try:
        return Role(text.strip().lower())
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        problem = f"{text!r} is not a role; use one of {allowed}"
        raise InvalidInput(f"{field} {problem}", problems=[Problem(problem, field=field)]) from None


def check_password(password: str, *, field: str = "password") -> None:
    problem = None
    if len(password) < PASSWORD_MIN:
        problem = f"must be at least {PASSWORD_MIN} characters"
    elif len(password) > PASSWORD_MAX:
        problem = f"must be at most {PASSWORD_MAX} characters"
    if problem:
        raise InvalidInput(f"{field} {problem}", problems=[Problem(problem, field=field)])
