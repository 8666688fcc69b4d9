"""What an integration is to the composition root: a descriptor, registered once.

An integration is a system provisiond keeps in step with the registry (a broker, The Things
Stack, webhook receivers). Each folder of integrations/ describes itself with one
:class:`Integration` (its ``wiring.py``); integrations/registry.py lists them, and
bootstrap.py loops over that list instead of branching on the settings. A plain list of
descriptors, as Datasette registers its own features through its plugin hooks.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from provisiond.services.background import Loop
from provisiond.services.broker_keeper import AccountKeeper
from provisiond.services.destinations import DestinationGuard
from provisiond.services.sealing import Sealer
from provisiond.settings import Settings
from provisiond.store.uow import UnitOfWork

K = TypeVar("K")

NO_BROKER_KEPT = (
    "no broker is kept in step: set broker__kind=mosquitto-dynsec and "
    "broker__url (PROVISIOND_BROKER__KIND, PROVISIOND_BROKER__URL), "
    "broker__kind=mosquitto-files and its files, or broker__kind=emqx and "
    "broker__emqx_api_url with its key"
)


class Wiring(Protocol):
    """What an integration is built from (bootstrap.py's Container)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def sealer(self) -> Sealer: ...

    @property
    def webhook_guard(self) -> DestinationGuard: ...

    def uow(self) -> UnitOfWork: ...

    def now(self) -> datetime: ...


def never(settings: Settings) -> bool:  # noqa: ARG001
    return False


@dataclass(frozen=True)
class Integration(Generic[K]):
    """One integration: when it is in use, how its keeper is made (connected, closed after)
    and the background loops `serve` runs with that keeper."""

    name: str
    enabled: Callable[[Settings], bool]
    open: Callable[[Wiring], AbstractAsyncContextManager[K]]
    loops: Callable[[K, Settings], list[Loop]]
    work: str | None = None  # the pending-work kind the outbox queues for it ("broker", "tts")
    seals_secrets: Callable[[Settings], bool] = never  # MQTT secrets are kept sealed for it


def account_keeper_loops(keeper: AccountKeeper, settings: Settings) -> list[Loop]:
    """A broker keeper's loops: queued devices, and reconciliation every sync_interval."""
    loops = [Loop("broker", keeper.apply_pending, idle=0.25)]
    interval = settings.broker.sync_interval_seconds
    if interval > 0:

        async def reconcile() -> int:
            await keeper.reconcile()
            return 0

        loops.append(Loop("broker-reconcile", reconcile, idle=interval, lease="broker"))
    return loops
