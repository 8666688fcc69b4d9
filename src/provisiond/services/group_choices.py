"""The groups a form offers: the caller's subtree, in path order, without the device
counts of the groups listing (services/directory.py list_groups). Counting the devices of
every group reads every device of the subtree — at a million devices it cost the console's
forms (import, profiles, labels, tokens, webhooks) more than the rest of the page."""

from __future__ import annotations

from provisiond.domain.groups import Group
from provisiond.domain.scope import Scope
from provisiond.store.uow import UnitOfWork


async def list_group_choices(
    uow: UnitOfWork, *, scope: Scope, limit: int | None = None
) -> list[Group]:
    """The groups of ``scope``'s subtree (every group for an operator-wide caller), in path
    order, at most ``limit`` of them."""
    async with uow.read():
        return await uow.groups.list(scope.group_path, limit=limit)
