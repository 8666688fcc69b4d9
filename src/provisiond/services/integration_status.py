"""What an admin sees of the integrations: the figures /metrics reports (services/metrics.py
``read_backlog``, the database's truth shared by every instance), and the deliveries waiting
for the webhooks of the admin's own subtree.

The backlog's figures about provisiond's machinery — the outbox, the broker accounts and The
Things Stack registrations waiting, the leases and the instances alive — are provisiond-wide:
they name no device, group or customer, but they are every customer's activity together, so
they are an operator-wide admin's only. The per-webhook figures name webhooks: each caller gets
those its scope covers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from provisiond.domain.scope import Scope
from provisiond.domain.users import Role
from provisiond.domain.webhooks import Webhook
from provisiond.services.metrics import DELIVERY_STATES, Backlog, read_backlog
from provisiond.services.scoping import require
from provisiond.store.uow import UnitOfWork


@dataclass(frozen=True, slots=True)
class IntegrationStatus:
    # provisiond-wide figures, for an operator-wide caller only (None for any other); its
    # ``deliveries`` are not for a page
    backlog: Backlog | None
    webhooks: list[tuple[Webhook, dict[str, int]]]  # the caller's, DELIVERY_STATES -> count


async def integration_status(
    uow: Callable[[], UnitOfWork], *, scope: Scope, now: datetime
) -> IntegrationStatus:
    """The backlog as /metrics reads it (an operator-wide caller's), with the webhook
    figures of ``scope`` only."""
    require(scope, Role.ADMIN, "reading the integrations' status")
    # the instance's backlog is read only for the caller who may see it
    backlog = await read_backlog(uow(), now) if scope.operator_wide else None
    async with uow().read() as reader:
        hooks = await reader.webhooks.in_subtree(scope.group_path)
        if backlog is None:  # a customer's admin: their webhooks' counts, no one else's read
            counts = await reader.backlog.deliveries(of=[w.id for w in hooks])
            deliveries = {str(k): v for k, v in counts.items()}
        else:
            deliveries = backlog.deliveries
    empty = dict.fromkeys(DELIVERY_STATES, 0)
    return IntegrationStatus(backlog, [(w, deliveries.get(str(w.id), empty)) for w in hooks])
