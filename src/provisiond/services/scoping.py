"""A caller's scope, enforced by the use cases (domain/scope.py holds the subtree rule).

Two ways to say no, and neither tells a scoped caller anything about other customers:

- what lies outside the caller's subtree answers exactly as what does not exist (the same
  not-found error, the same words), so serials, names and ids cannot be probed;
- what the caller's role may not do, or what only an operator-wide scope may do (the model
  catalogue, certificate authorities, ungrouped devices and profiles, operator-wide
  tokens), is refused with 403 before anything is looked up, whatever the request names.
"""

from __future__ import annotations

from provisiond.domain.events import Event
from provisiond.domain.groups import Group
from provisiond.domain.scope import Scope
from provisiond.domain.users import Role
from provisiond.errors import Forbidden, GroupNotFound
from provisiond.store.uow import UnitOfWork


def require(scope: Scope, role: Role, doing: str) -> None:
    """``doing`` needs at least ``role``."""
    if not scope.may(role):
        raise Forbidden(
            f"{doing} needs the {role} role; this caller is a {scope.role}", role=scope.role.value
        )


def require_operator(scope: Scope, doing: str) -> None:
    """``doing`` changes something global: operator-wide admins only."""
    require(scope, Role.ADMIN, doing)
    if not scope.operator_wide:
        raise Forbidden(
            f"{doing} is for operator-wide admins; this caller's scope is the "
            f"subtree {scope.group_path!r}"
        )


def require_group(scope: Scope, path: str | None, doing: str) -> None:
    """``doing`` puts something in the group at ``path`` (None: in no group, or
    operator-wide): it must be within the caller's subtree. Refused alike whether or not
    the group exists."""
    if path is None and not scope.operator_wide:
        raise Forbidden(
            f"{doing}: this caller's scope is the subtree {scope.group_path!r}; "
            "name a group within it"
        )
    if not scope.covers(path):
        raise Forbidden(f"{doing}: {path!r} is outside this caller's subtree {scope.group_path!r}")


async def group_in_scope(uow: UnitOfWork, scope: Scope, path: str) -> Group:
    """The group at ``path`` in the open transaction; GroupNotFound when there is none or
    it lies outside the caller's subtree (which is not even looked up)."""
    group = await uow.groups.find_by_path(path) if scope.covers(path) else None
    if group is None:
        raise GroupNotFound(f"no group {path!r}", path=path)
    return group


def readable(scope: Scope, events: list[Event]) -> list[Event]:
    """The events of a device's history that ``scope`` may read: those of its subtree, and
    those of no customer (a stock registration). A device released with its history kept
    carries its previous owner's events, which its next owner must not read."""
    return [e for e in events if e.group_path is None or scope.covers(e.group_path)]
