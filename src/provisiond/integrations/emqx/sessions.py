"""Ending EMQX sessions of credentials that are no longer active (``broker__kind=emqx`` with
``broker__emqx_api_url``).

EMQX asks provisiond at each connection (web/hooks.py), so a revoked credential cannot
connect again; but a session that is already open lasts until it ends. Here revoking or
rotating a credential, or deleting a device, ends its sessions at once through EMQX's REST
API: provisiond records the user name of every active credential (``broker_accounts``, as
the Mosquitto keepers record the accounts they make) and, when a device's credentials
change, kicks every client whose user name is one of the device's names no longer active.
While EMQX's API cannot be reached the device waits in ``pending_work`` and is retried with
backoff, like every other broker's work. Sessions that no kick reaches still end at the
authentication answer's ``expire_at`` (``broker__session_max_seconds``).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from provisiond.errors import BrokerUnavailable
from provisiond.services.broker_keeper import AccountKeeper, Applied, Plan, SyncReport
from provisiond.services.sealing import Sealer
from provisiond.store.integrations import RecordedAccount
from provisiond.store.uow import UnitOfWork

CONCURRENCY = 8  # kicks in flight at once


class SessionAdmin(Protocol):
    """What ends a user name's sessions on the broker (integrations/emqx/api.py)."""

    async def kick_username(self, username: str) -> int:
        """End every session of this user name; how many (BrokerUnavailable if the broker
        cannot be asked)."""
        ...

    async def close(self) -> None: ...


class EmqxSessions(AccountKeeper):
    needs_passwords = False  # EMQX asks provisiond; only the names are kept

    def __init__(
        self,
        uow: Callable[[], UnitOfWork],
        admin: SessionAdmin,
        sealer: Sealer | None,
        prefix_template: str,
        clock: Callable[[], datetime],
        *,
        token_as_username: bool = False,
    ) -> None:
        super().__init__(uow, sealer, prefix_template, clock, token_as_username=token_as_username)
        self._admin = admin
        self._slots = asyncio.Semaphore(CONCURRENCY)

    async def _prepare(self) -> None:
        """Nothing: EMQX has no account to prepare."""

    async def _kick(self, r: RecordedAccount) -> str | None:
        """End the sessions of a recorded name; None, or why it could not be done."""
        async with self._slots:
            try:
                await self._admin.kick_username(self._recorded_name(r))
            except BrokerUnavailable as err:
                return str(err)
        return None

    async def _apply(self, plan: Plan) -> Applied:
        stale = [(d, r) for d in plan.device_ids for r in plan.stale(d)]
        outcomes = await asyncio.gather(*(self._kick(r) for _, r in stale))
        failures: dict[uuid.UUID, str] = {}
        removed: list[str] = []
        for (device_id, r), why in zip(stale, outcomes, strict=True):
            if why is None:
                removed.append(r.digest)
            else:
                failures.setdefault(device_id, why)
        created = [self._record(a) for d in plan.device_ids for a in plan.wanted[d]]
        done = [d for d in plan.device_ids if d not in failures]
        return done, failures, created, removed

    async def _reconcile(self, dry_run: bool, passwords: bool) -> SyncReport:  # noqa: ARG002
        """Record every active credential's name; end the sessions of every recorded name
        no longer active (a name whose sessions could not be ended stays recorded, to be
        tried again)."""
        report = SyncReport(dry_run=dry_run)
        holding = await self._wanted_accounts()
        report.accounts = len(holding.holders)
        async with self._uow().read() as uow:
            recorded = await uow.broker.recorded()
        keep = {a.digest for a in holding.holders}
        stale = [r for r in recorded if r.digest not in keep]
        report.deleted = len(stale)
        if dry_run:
            return report
        failed: set[str] = set()
        for r, why in zip(
            stale, await asyncio.gather(*(self._kick(r) for r in stale)), strict=True
        ):
            if why is not None:
                failed.add(r.digest)
                report.errors.append(f"device {r.device_id}: {why}")
        report.deleted -= len(failed)
        await self._record_all(holding, report, keep=failed)
        return report
