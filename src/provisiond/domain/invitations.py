"""Invitation and password-reset links: single-use, expiring, addressed to one e-mail.

A link carries a random token (``secrets``, 256 bits); only its SHA-256 is stored, so the
database never holds a token that opens anything. A link works once, until it expires, and
while no newer link for the same person replaced it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from provisiond.domain.users import Role


class LinkPurpose(StrEnum):
    INVITATION = "invitation"  # becomes a new user with its role and group
    PASSWORD_RESET = "password-reset"  # sets an existing user's password

    @property
    def path(self) -> str:
        """Where the link opens, below the service's public address."""
        return "/invitations/" if self is LinkPurpose.INVITATION else "/password-reset/"


@dataclass(frozen=True, slots=True)
class InviteSpec:
    """What inviting a person takes, as given (unchecked); services.invitations checks it."""

    email: str
    role: str  # admin, installer or viewer
    group: str  # the path of the group the user will belong to


@dataclass(frozen=True, slots=True)
class Link:
    """A stored link (never its token)."""

    id: uuid.UUID
    purpose: LinkPurpose
    email: str
    role: Role | None  # an invitation's (None for a reset: the user keeps theirs)
    group_id: uuid.UUID | None  # an invitation's group
    group_path: str | None
    user_id: uuid.UUID | None  # a reset's user
    created_at: datetime
    expires_at: datetime
    created_by: str
    used_at: datetime | None = None
    revoked_at: datetime | None = None

    def usable(self, now: datetime) -> bool:
        return self.used_at is None and self.revoked_at is None and now < self.expires_at


@dataclass(frozen=True, slots=True)
class IssuedLink:
    """A link just made: its token (here only, never again), and whether it was mailed."""

    link: Link
    token: str
    url: str
    mailed: bool
    mail_problem: str | None = None  # why it could not be mailed, when a server is set
