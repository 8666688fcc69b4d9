"""An admin's figures of their subtree: the onboarding funnel and the latest events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from provisiond.domain.events import Event
from provisiond.domain.users import Role, User
from provisiond.errors import Forbidden
from provisiond.store.uow import UnitOfWork

FUNNEL_DAYS = 30


@dataclass(frozen=True, slots=True)
class Overview:
    days: list[str]  # the last FUNNEL_DAYS days, oldest first
    registered: list[int]  # cumulative, per day
    provisioned: list[int]
    claimed: list[int]
    events: list[Event]
    with_stock: bool


async def overview(uow: UnitOfWork, *, user: User, now: datetime) -> Overview:
    """An admin's view of their subtree: the onboarding funnel over the last 30 days and the
    latest events. Unowned stock (registered, not yet claimed) has no group: it counts for
    admins of a top-level group, who run the instance's fleet."""
    if user.role is not Role.ADMIN:
        raise Forbidden("the overview is for admins")
    first = (now - timedelta(days=FUNNEL_DAYS - 1)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    with_stock = "/" not in user.group_path
    async with uow.read():
        funnel = await uow.insights.funnel(user.group_path, with_stock=with_stock, since=first)
        events = await uow.insights.latest_events(user.group_path)
    days = [(first + timedelta(days=i)).strftime("%Y-%m-%d") for i in range(FUNNEL_DAYS)]
    series: list[list[int]] = [[], [], []]
    totals = list(funnel.base)
    for day in days:
        counts = funnel.days.get(day, [0, 0, 0])
        for i in range(3):
            totals[i] += counts[i]
            series[i].append(totals[i])
    return Overview(days, series[0], series[1], series[2], events, with_stock)
