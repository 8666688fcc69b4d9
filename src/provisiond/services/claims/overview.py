"""An admin's figures of their subtree: the onboarding funnel over a period, by group and by
model, the time to claim, the claims that failed or expired and why, the latest events.

The funnel is a cohort (domain/funnel.py): the devices registered in the period that are in
the admin's subtree now, and of them those provisioned and claimed so far; rates are over
the registered. Unowned stock (registered, not yet claimed) has no group: it counts for
admins of a top-level group, who run the instance's fleet, and for no one below. Claims
count for the subtree of their claimer (as their events do), by the day they started.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from provisiond.domain.claims import ClaimStatus
from provisiond.domain.events import Event
from provisiond.domain.funnel import (
    REASON_LABELS,
    REASON_STATUS,
    Counts,
    Period,
    median_bucket,
    parse_period,
)
from provisiond.domain.groups import SEPARATOR
from provisiond.domain.users import Role, User
from provisiond.errors import Forbidden
from provisiond.store.uow import UnitOfWork

STOCK = "Unclaimed stock"
NO_MODEL = "(no model)"


@dataclass(frozen=True, slots=True)
class Row:
    """One line of a breakdown: its label, its cohort, its median time-to-claim bucket."""

    label: str
    counts: Counts
    median: int | None = None


@dataclass(frozen=True, slots=True)
class Ending:
    """Claims ended unclaimed for one reason (or in one group, or of one model)."""

    label: str
    failed: int
    expired: int


@dataclass(frozen=True, slots=True)
class Overview:
    period: Period
    totals: Counts
    median: int | None  # the time-to-claim bucket of the middle claim (domain/funnel.py)
    days: list[str]  # the period's days, oldest first
    by_day: list[Counts]  # the cohort of each day
    by_group: list[Row]  # the admin's child groups (their subtrees), the group itself, stock
    by_model: list[Row]
    by_reason: list[Ending]
    endings_by_group: list[Ending]
    endings_by_model: list[Ending]
    events: list[Event]
    with_stock: bool

    @property
    def failed(self) -> int:
        return sum(e.failed for e in self.by_reason)

    @property
    def expired(self) -> int:
        return sum(e.expired for e in self.by_reason)


def child_of(path: str, under: str | None) -> str:
    """The child of ``under`` that ``path`` lies in (``under`` itself for its own; under
    None, every group: its top-level group)."""
    if under is None:
        return path.split(SEPARATOR, 1)[0]
    if path == under:
        return under
    rest = path[len(under) + 1 :]
    return under + SEPARATOR + rest.split(SEPARATOR, 1)[0]


def _label(path: str, under: str | None) -> str:
    if under is None:
        return path
    return (
        f"{path.rsplit(SEPARATOR, 1)[-1]} (directly)" if path == under else path[len(under) + 1 :]
    )


@dataclass(frozen=True, slots=True)
class PeriodSpec:
    """The period a form or a command asks for, as typed: a preset number of days (7, 30,
    90, or "custom") and/or the first and last day (YYYY-MM-DD); all empty: the default."""

    days: str = ""
    first: str = ""
    last: str = ""


async def overview(uow: UnitOfWork, *, user: User, spec: PeriodSpec, now: datetime) -> Overview:
    """An admin's view of their subtree over the period ``spec`` names (InvalidInput, by
    field — ``days``, ``from``, ``to`` — when it names none)."""
    if user.role is not Role.ADMIN:
        raise Forbidden("the overview is for admins")
    period = parse_period(days=spec.days, first=spec.first, last=spec.last, today=now.date())
    under = user.group_path
    # Devices of no group (the operator's stock) are an operator-wide admin's only, as
    # everywhere (docs/security.md): a customer's admin does not learn how many there are.
    with_stock = under is None
    first, last = period.first.isoformat(), period.last.isoformat()
    async with uow.read():
        figures = await uow.insights.funnel_by_group(
            under, with_stock=with_stock, first=first, last=last
        )
        model_figures = await uow.insights.funnel_by_model(
            under, with_stock=with_stock, first=first, last=last
        )
        daily = await uow.insights.funnel_by_day(
            under, with_stock=with_stock, first=first, last=last
        )
        lapsed = await uow.insights.lapsed_claims(under, first=first, last=last, now=now)
        groups = {g.id: g.path for g in await uow.groups.list(under)}
        models = {m.id: m.name for m in await uow.models.list()}
        events = await uow.insights.latest_events(under)

    def place(group_id: uuid.UUID | None) -> str:
        if group_id is None:
            return STOCK
        path = groups.get(group_id)
        return _group_label(child_of(path, under), under) if path is not None else STOCK

    def model(model_id: uuid.UUID | None) -> str:
        return models.get(model_id, NO_MODEL) if model_id else NO_MODEL

    by_group: dict[str, Counts] = defaultdict(Counts)
    group_delays: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    all_delays: dict[int, int] = defaultdict(int)
    reasons, ends_by_group, ends_by_model = Tally(), Tally(), Tally()
    for group_id, f in figures.items():
        key = place(group_id)
        by_group[key] += f.counts
        for bucket, n in f.delays.items():
            group_delays[key][bucket] += n
            all_delays[bucket] += n
        for reason, n in f.endings.items():
            reasons.add(REASON_LABELS[reason], REASON_STATUS[reason], n)
            ends_by_group.add(key, REASON_STATUS[reason], n)
    by_model: dict[str, Counts] = defaultdict(Counts)
    for model_id, m in model_figures.items():
        by_model[model(model_id)] += m.counts
        ends_by_model.add(model(model_id), ClaimStatus.FAILED, m.failed)
        ends_by_model.add(model(model_id), ClaimStatus.EXPIRED, m.expired)
    for e in lapsed:
        reasons.add(REASON_LABELS[e.reason], e.status, e.count)
        ends_by_group.add(place(e.group_id), e.status, e.count)
        ends_by_model.add(model(e.model_id), e.status, e.count)
    days = period.day_keys()
    return Overview(
        period=period,
        totals=sum(by_group.values(), Counts()),
        median=median_bucket(all_delays),
        days=days,
        by_day=[daily.get(d, Counts()) for d in days],
        by_group=[
            Row(key, counts, median_bucket(group_delays.get(key, {})))
            for key, counts in sorted(by_group.items(), key=_group_order)
            if counts.registered
        ],
        by_model=[Row(name, c) for name, c in sorted(by_model.items()) if c.registered],
        by_reason=reasons.rows(),
        endings_by_group=ends_by_group.rows(),
        endings_by_model=ends_by_model.rows(),
        events=events,
        with_stock=with_stock,
    )


class Tally:
    """Claims failed and expired, by label."""

    def __init__(self) -> None:
        self.failed: dict[str, int] = defaultdict(int)
        self.expired: dict[str, int] = defaultdict(int)

    def add(self, label: str, status: ClaimStatus, n: int) -> None:
        if n:
            (self.failed if status is ClaimStatus.FAILED else self.expired)[label] += n

    def rows(self) -> list[Ending]:
        f, e = self.failed, self.expired
        labels = sorted(set(f) | set(e), key=lambda k: (-(f[k] + e[k]), k))
        return [Ending(k, f[k], e[k]) for k in labels]


def _group_label(key: str, under: str | None) -> str:
    return key if key == STOCK else _label(key, under)


def _group_order(item: tuple[str, Counts]) -> tuple[int, str]:
    key = item[0]
    return (1 if key == STOCK else 0, key)
