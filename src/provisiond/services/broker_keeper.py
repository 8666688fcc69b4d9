"""What every way of keeping a broker in step with the registry shares.

The registry is the truth: a device's active access-token and MQTT-basic credentials. Two
paths bring the broker in line:

- incremental: an event about a device's credentials (issued, revoked, device deleted,
  imported) queues the device (``pending_work``, filled from the outbox);
  :meth:`AccountKeeper.apply_pending` brings its accounts in step, retrying with backoff
  while the broker is away;
- reconciliation: :meth:`AccountKeeper.reconcile` makes the broker's accounts match the
  registry, reporting what it changed (idempotent).

Each round first decides which account holds each user name (domain/broker.py: the
credential issued first): a device whose name another credential holds waits in
``pending_work`` with that reason, and the broker never gets two accounts of one name.
provisiond records the accounts it made (``broker_accounts``), so those of revoked
credentials and deleted devices can be found and removed.

The subclasses, one per integration: integrations/mosquitto_dynsec/keeper.py (Mosquitto's
dynamic security plugin), integrations/mosquitto_files/keeper.py (Mosquitto's password and
ACL files), integrations/emqx/sessions.py (EMQX, which asks provisiond: there the round ends
the sessions of credentials no longer active).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from provisiond.domain.broker import BrokerAccount, account_for, name_holders, name_taken
from provisiond.domain.credentials import CredentialType
from provisiond.errors import BrokerUnavailable, ConfigurationError
from provisiond.services.broker_names import name_keys
from provisiond.services.sealing import Sealer, in_clear, read_in_clear
from provisiond.store.integrations import BrokerCredential, RecordedAccount
from provisiond.store.uow import UnitOfWork

log = logging.getLogger(__name__)
RETRY_MAX = timedelta(minutes=10)
PAGE = 5000  # credentials read at a time by reconciliation


@dataclass
class SyncReport:
    """What a reconciliation found and did (or would do, in a dry run)."""

    accounts: int = 0  # accounts the registry wants
    created: list[str] = field(default_factory=list)  # serial-free: credential ids
    updated: list[str] = field(default_factory=list)
    deleted: int = 0  # accounts removed from the broker
    roles_created: int = 0
    roles_fixed: int = 0
    roles_deleted: int = 0
    errors: list[str] = field(default_factory=list)
    dry_run: bool = False

    @property
    def changed(self) -> bool:
        return bool(
            self.created
            or self.updated
            or self.deleted
            or self.roles_created
            or self.roles_fixed
            or self.roles_deleted
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "accounts": self.accounts,
            "created": len(self.created),
            "updated": len(self.updated),
            "deleted": self.deleted,
            "roles_created": self.roles_created,
            "roles_fixed": self.roles_fixed,
            "roles_deleted": self.roles_deleted,
            "errors": self.errors,
            "dry_run": self.dry_run,
        }


def retry_delay(attempts: int) -> timedelta:
    """1 s, 2 s, 4 s … at most 10 minutes."""
    return min(timedelta(seconds=2 ** min(attempts, 20)), RETRY_MAX)


Applied = tuple[list[uuid.UUID], dict[uuid.UUID, str], list[RecordedAccount], list[str]]
"""What one round of the incremental path did: devices in step, devices that failed (and
why), accounts made, accounts removed (their digests)."""


@dataclass
class Plan:
    """One round of the incremental path: what the queued devices should have."""

    device_ids: list[uuid.UUID]
    wanted: dict[uuid.UUID, list[BrokerAccount]]  # the accounts whose names they hold
    have: dict[uuid.UUID, list[RecordedAccount]]  # what provisiond recorded for them
    blocked: dict[uuid.UUID, str] = field(default_factory=dict)  # a name held elsewhere
    claimed: set[str] = field(default_factory=set)  # digests this round's accounts take

    def stale(self, device_id: uuid.UUID) -> list[RecordedAccount]:
        """The device's recorded accounts it no longer has. A name another account of this
        round takes over is not among them: it is that account's now, not removed."""
        keep = {a.digest for a in self.wanted[device_id]}
        return [
            r for r in self.have[device_id] if r.digest not in keep and r.digest not in self.claimed
        ]


@dataclass
class Holding:
    """Accounts split by the naming rule: those that hold their names, and the waiting
    devices with the reason."""

    holders: list[BrokerAccount]
    blocked: dict[uuid.UUID, str]


class AccountKeeper(ABC):
    """The queue of devices to bring in step, provisiond's record of the accounts it made,
    the registry's wanted accounts and who holds each name."""

    needs_passwords = True  # the broker is given passwords (EMQX's way asks instead)

    def __init__(
        self,
        uow: Callable[[], UnitOfWork],
        sealer: Sealer | None,
        prefix_template: str,
        clock: Callable[[], datetime],
        *,
        token_as_username: bool = False,
    ) -> None:
        self._uow = uow
        self._sealer = sealer
        self._template = prefix_template
        self._clock = clock
        self._token_as_username = token_as_username
        self._busy = asyncio.Lock()  # the incremental path and reconciliation take turns

    @property
    def _sealed_only(self) -> bool:
        """Only credentials whose secret provisiond keeps have an account: the broker needs
        the password, or (token_as_username) the name is the token."""
        return self.needs_passwords or self._token_as_username

    def _unseal(self, value: str) -> str:
        if self._sealer is None:
            return read_in_clear(value)
        return self._sealer.unseal(value)

    def _account(self, c: BrokerCredential) -> BrokerAccount | None:
        secret = None
        if self._sealed_only:
            if c.secret_sealed is None:
                return None
            secret = self._unseal(c.secret_sealed)
        return account_for(
            CredentialType(c.type),
            device_id=c.device_id,
            credential_id=c.credential_id,
            lookup=c.lookup,
            client_id=c.client_id,
            serial=c.serial,
            secret=secret,
            token_as_username=self._token_as_username,
            issued_at=c.created_at,
        )

    def _accounts(self, found: list[BrokerCredential]) -> list[BrokerAccount]:
        return [a for c in found if (a := self._account(c)) is not None]

    @staticmethod
    def _password(a: BrokerAccount) -> str:
        """The account's password (the keepers that give passwords read sealed credentials
        only, so there is one)."""
        if a.password is None:
            raise BrokerUnavailable(f"no secret kept for credential {a.credential_id}")
        return a.password

    def _record(self, a: BrokerAccount) -> RecordedAccount:
        """The record of an account; its user name sealed when it is a token."""
        if not a.secret_name:
            name = in_clear(a.username)
        elif self._sealer is None:
            raise ConfigurationError("token_as_username needs device_key_passphrase")
        else:
            name = self._sealer.seal(a.username)
        return RecordedAccount(a.digest, a.device_id, a.credential_id, name)

    def _recorded_name(self, r: RecordedAccount) -> str:
        """The user name of a recorded account."""
        return self._unseal(r.username_sealed)

    # ------------------------------------------------------------------------ naming

    async def _rivals(self, uow: UnitOfWork, accounts: list[BrokerAccount]) -> list[BrokerAccount]:
        """The other active credentials that want one of these accounts' names."""
        names = {a.username for a in accounts}
        if not names:
            return []
        mine = {a.credential_id for a in accounts}
        found = await uow.broker.claimants(
            name_keys(names, token_as_username=self._token_as_username),
            sealed_only=self._sealed_only,
        )
        return [
            a
            for a in self._accounts([c for c in found if c.credential_id not in mine])
            if a.username in names
        ]

    @staticmethod
    def _holding(accounts: list[BrokerAccount], rivals: list[BrokerAccount]) -> Holding:
        holders = name_holders([*accounts, *rivals])
        held = [a for a in accounts if holders[a.username].credential_id == a.credential_id]
        blocked = {
            a.device_id: name_taken(holders[a.username])
            for a in accounts
            if holders[a.username].credential_id != a.credential_id
        }
        return Holding(held, blocked)

    # ----------------------------------------------------------------------- incremental

    async def apply_pending(self, limit: int = 500) -> int:
        """Bring the accounts of up to ``limit`` queued devices in step; how many were."""
        async with self._busy:
            return await self._apply_pending(limit)

    @abstractmethod
    async def _prepare(self) -> None:
        """What must be on the broker before any account (BrokerUnavailable if it cannot)."""

    @abstractmethod
    async def _apply(self, plan: Plan) -> Applied:
        """Make these devices' accounts on the broker the ones the plan asks for."""

    async def _load(self, device_ids: list[uuid.UUID]) -> tuple[Plan, set[uuid.UUID]]:
        """The round's plan, and the devices (outside it) whose recorded accounts it takes
        over: they are queued again, to wait with the reason."""
        async with self._uow().read() as uow:
            accounts = self._accounts(
                await uow.broker.credentials(device_ids, sealed_only=self._sealed_only)
            )
            recorded = await uow.broker.recorded(device_ids)
            holding = self._holding(accounts, await self._rivals(uow, accounts))
            others = await uow.broker.recorded_digests([a.digest for a in holding.holders])
        plan = Plan(
            device_ids,
            {d: [] for d in device_ids},
            {d: [] for d in device_ids},
            holding.blocked,
            {a.digest for a in holding.holders},
        )
        for a in holding.holders:
            plan.wanted[a.device_id].append(a)
        for r in recorded:
            plan.have[r.device_id].append(r)
        taking = {a.digest: a.credential_id for a in holding.holders}
        displaced = {
            r.device_id
            for r in others
            if r.device_id not in plan.wanted and r.credential_id != taking[r.digest]
        }
        return plan, displaced

    async def _apply_pending(self, limit: int) -> int:
        now = self._clock()
        async with self._uow().read() as uow:
            device_ids = await uow.broker.pending.due(now, limit)
        if not device_ids:
            return 0
        plan, displaced = await self._load(device_ids)
        try:
            await self._prepare()
            done, failures, created, removed = await self._apply(plan)
        except BrokerUnavailable as err:
            done, failures, created, removed = [], dict.fromkeys(device_ids, str(err)), [], []
        for device_id, why in plan.blocked.items():
            failures.setdefault(device_id, why)
        done = [d for d in done if d not in failures]
        async with self._uow() as uow:
            await uow.broker.record(created, now)
            await uow.broker.forget(removed)
            await uow.broker.pending.done(done)
            await uow.broker.pending.mark(displaced)
            if failures:
                tries = await uow.broker.pending.attempts(list(failures))
                for device_id, error in failures.items():
                    await uow.broker.pending.failed(
                        device_id, error, now + retry_delay(tries.get(device_id, 0))
                    )
            await uow.commit()
        if failures:
            log.warning(
                "broker: %d device(s) not in step yet (%s); retrying with backoff",
                len(failures),
                next(iter(failures.values())),
            )
        return len(done)

    # -------------------------------------------------------------------- reconciliation

    async def reconcile(self, *, dry_run: bool = False, passwords: bool = False) -> SyncReport:
        """Make the broker's accounts match the registry; what changed.

        ``passwords``: set every account's password again (a broker restored from an old
        backup may hold outdated ones)."""
        async with self._busy:
            return await self._reconcile(dry_run, passwords)

    @abstractmethod
    async def _reconcile(self, dry_run: bool, passwords: bool) -> SyncReport: ...

    async def _wanted_accounts(self) -> Holding:
        """Every account the registry wants, split by who holds each name."""
        out: list[BrokerAccount] = []
        after: uuid.UUID | None = None
        while True:
            async with self._uow().read() as uow:
                page = await uow.broker.all_credentials(after, PAGE, sealed_only=self._sealed_only)
            out += self._accounts(page)
            if len(page) < PAGE:
                return self._holding(out, [])
            after = page[-1].credential_id

    async def _record_all(
        self, holding: Holding, report: SyncReport, *, keep: set[str] | None = None
    ) -> None:
        """Make provisiond's record of broker accounts the wanted set (and ``keep``: stale
        ones not yet removed); queue the devices that wait for a name, with the reason
        (`provisiond broker status` shows them)."""
        now = self._clock()
        for why in sorted(set(holding.blocked.values())):
            report.errors.append(f"a device waits: {why}")
        async with self._uow() as uow:
            have = {r.digest: r for r in await uow.broker.recorded()}
            wanted = {a.digest for a in holding.holders} | (keep or set())
            await uow.broker.forget(sorted(set(have) - wanted))
            await uow.broker.record(
                [
                    self._record(a)
                    for a in holding.holders
                    if a.digest not in have or have[a.digest].credential_id != a.credential_id
                ],
                now,
            )
            if holding.blocked:
                await uow.broker.pending.mark(holding.blocked)
                tries = await uow.broker.pending.attempts(list(holding.blocked))
                for device_id, why in holding.blocked.items():
                    await uow.broker.pending.failed(
                        device_id, why, now + retry_delay(tries.get(device_id, 0))
                    )
            await uow.commit()


async def broker_status(uow: UnitOfWork) -> dict[str, Any]:
    """What `provisiond broker status` shows: accounts made, events queued, devices waiting."""
    async with uow.read():
        pending = await uow.broker.pending.listed()
        accounts = await uow.broker.count()
        queued = await uow.outbox.size()
    return {
        "accounts": accounts,
        "events_queued": queued,
        "pending": [
            {
                "device_id": str(d),
                "attempts": a,
                "next_attempt_at": n.isoformat() if n else None,
                "error": e,
            }
            for d, a, n, e in pending
        ],
    }
