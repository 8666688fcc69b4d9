"""What the metrics report, without the metrics library (the web layer renders them).

Two kinds of figures:

- **events** counted by this process: provisioning answers by transport and outcome, claim
  steps by outcome. The services and adapters call a :class:`Counts` (the web layer's
  implements it with Prometheus counters; :data:`NO_COUNTS` counts nothing).
- **what is waiting**, the database's truth shared by every instance: read at each scrape by
  :func:`read_backlog` (store/backlog.py), so that every instance behind a load balancer
  reports the same figures.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from provisiond.domain.broker import NAME_TAKEN
from provisiond.errors import ProvisiondError, TooManyRequests
from provisiond.protocols import thingsboard as tb
from provisiond.services.background import INSTANCE_PREFIX
from provisiond.services.issuing import ProvisionAnswer
from provisiond.store.backlog import DELIVERY_STATES as DELIVERY_STATES  # the web renders them
from provisiond.store.uow import UnitOfWork

THROTTLED = "THROTTLED"  # a provisioning answer refused by a rate limit (HTTP 429)
ERROR = "ERROR"  # no answer: provisiond failed (the database is away, …)
OUTCOMES = (tb.SUCCESS, tb.NOT_FOUND, tb.FAILURE, THROTTLED, ERROR)
CLAIM_STEPS = ("start", "prove", "finish", "cancel", "associate")

BROKER_REASONS = ("queued", "broker_unavailable", "name_taken")
TTS_REASONS = ("queued", "retrying")
TTS_STATUSES = ("failed", "conflict")  # those that wait for an operator


class Counts(Protocol):
    """Where the services and adapters count what happened."""

    def provisioning_answered(self, transport: str, outcome: str) -> None:
        """A provision request over ``transport`` was answered with ``outcome``
        (one of :data:`OUTCOMES`)."""

    def claim_step(self, step: str, outcome: str) -> None:
        """A claim step (one of :data:`CLAIM_STEPS`) ended: ``success``, ``throttled`` or
        the stable code of the error that refused it."""


class _NoCounts:
    def provisioning_answered(self, transport: str, outcome: str) -> None:
        pass

    def claim_step(self, step: str, outcome: str) -> None:
        pass


NO_COUNTS: Counts = _NoCounts()


def answer_outcome(answer: ProvisionAnswer) -> str:
    if answer.retry_after:
        return THROTTLED
    status = answer.body.get("status")
    return status if status in (tb.SUCCESS, tb.NOT_FOUND) else tb.FAILURE


@contextmanager
def counted_claim(counts: Counts, step: str) -> Iterator[None]:
    """Count the claim step the block runs, by how it ended."""
    try:
        yield
    except TooManyRequests:
        counts.claim_step(step, "throttled")
        raise
    except ProvisiondError as err:
        counts.claim_step(step, err.code)
        raise
    counts.claim_step(step, "success")


@dataclass(frozen=True, slots=True)
class Lease:
    name: str
    holder: str
    live: bool  # unexpired: its holder runs the work
    lapsed_seconds: float  # since it expired (0 while live): nobody took it over since


@dataclass(frozen=True, slots=True)
class Backlog:
    """What waits, as every instance sees it."""

    outbox_entries: int
    outbox_oldest_age_seconds: float  # 0 when the outbox is empty
    deliveries: dict[str, dict[str, int]]  # webhook id -> DELIVERY_STATES -> count
    broker_waiting: dict[str, int]  # BROKER_REASONS -> devices
    tts_waiting: dict[str, int]  # TTS_REASONS -> devices
    tts_registrations: dict[str, int]  # TTS_STATUSES -> end devices
    leases: list[Lease]
    instances: int  # instances alive (their heartbeat leases)


async def read_backlog(uow: UnitOfWork, now: datetime) -> Backlog:
    """The figures of what waits, in one read transaction."""
    async with uow.read():
        depth, oldest = await uow.backlog.outbox()
        deliveries = await uow.backlog.deliveries()
        waiting = await uow.backlog.waiting(NAME_TAKEN)
        tts = await uow.backlog.tts_records(TTS_STATUSES)
        leases = await uow.backlog.leases(INSTANCE_PREFIX)
        instances = await uow.leases.live(INSTANCE_PREFIX, now)
    broker = dict.fromkeys(BROKER_REASONS, 0)
    tts_waiting = dict.fromkeys(TTS_REASONS, 0)
    for w in waiting:
        if w.kind == "broker":
            broker["broker_unavailable" if w.reason == "failed" else w.reason] += w.count
        elif w.kind == "tts":
            reason = "queued" if w.reason == "queued" else "retrying"
            tts_waiting[reason] += w.count
    return Backlog(
        outbox_entries=depth,
        outbox_oldest_age_seconds=max((now - oldest).total_seconds(), 0.0) if oldest else 0.0,
        deliveries={str(k): v for k, v in deliveries.items()},
        broker_waiting=broker,
        tts_waiting=tts_waiting,
        tts_registrations={s: tts.get(s, 0) for s in TTS_STATUSES},
        leases=[
            Lease(
                r.name,
                r.holder,
                r.expires_at > now,
                max((now - r.expires_at).total_seconds(), 0.0),
            )
            for r in leases
        ],
        instances=instances,
    )
