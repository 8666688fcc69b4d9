"""Scopes: what a caller may see and change — a role over one group's subtree.

One rule for every adapter: a signed-in user's scope is their role over their group's
subtree; an operator token's is the role and subtree it was created with; the command line,
which holds the database itself, is operator-wide. Services take a ``Scope`` and enforce it,
so the REST API, the pages and the CLI cannot disagree about who sees what.

Devices without a group (stock nobody has claimed yet, released devices) belong to no
customer: only an operator-wide scope sees them.
"""

from __future__ import annotations

from dataclasses import dataclass

from provisiond.domain.groups import SEPARATOR
from provisiond.domain.users import Role

_RANK = {Role.VIEWER: 0, Role.INSTALLER: 1, Role.ADMIN: 2}


def within(path: str, under: str) -> bool:
    """``path`` is ``under`` or below it (compared as text segments, never by collation)."""
    return path == under or path.startswith(under + SEPARATOR)


@dataclass(frozen=True, slots=True)
class Scope:
    role: Role
    group_path: str | None  # None: operator-wide (every group, and ungrouped devices)

    @classmethod
    def operator(cls) -> Scope:
        """The command line's scope, and an operator-wide admin token's."""
        return cls(Role.ADMIN, None)

    @property
    def operator_wide(self) -> bool:
        return self.group_path is None

    def covers(self, path: str | None) -> bool:
        """This scope may see what sits in the group at ``path`` (None: no group)."""
        if self.group_path is None:
            return True
        return path is not None and within(path, self.group_path)

    def may(self, role: Role) -> bool:
        """This scope's role is at least ``role``."""
        return _RANK[self.role] >= _RANK[role]

    def includes(self, other: Scope) -> bool:
        """``other`` is no broader than this scope: a subtree of it, and no higher role."""
        if not self.may(other.role):
            return False
        if self.group_path is None:
            return True
        return other.group_path is not None and within(other.group_path, self.group_path)
