"""Keeping the user's MQTT broker in step with the registry.

The registry is the truth: a device's active access-token and MQTT-basic credentials, whose
secrets are kept sealed when a broker is configured (the broker needs them in clear, and
`provisiond broker sync` must be able to recreate an account after the broker lost it).
Two paths bring the broker in line:

- incremental: an event about a device's credentials (issued, revoked, device deleted,
  imported) queues the device (``pending_work``, filled from the outbox); :meth:`BrokerSync.
  apply_pending` creates, updates and removes its accounts, retrying with backoff while the
  broker is away;
- reconciliation: :meth:`BrokerSync.reconcile` lists the broker's accounts and roles and
  makes them match the registry, reporting what it changed (idempotent).

:class:`AccountKeeper` holds what both of Mosquitto's ways share; :class:`BrokerSync` is
the dynamic security plugin's (``broker__kind=mosquitto-dynsec``), where every account is in
the broker group ``provisiond-devices`` and has one role, ``provisiond-device-<device id>``,
whose ACLs allow the device's topic prefix only; ``services.broker_files`` writes
Mosquitto's password and ACL files instead (``mosquitto-files``).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from provisiond.domain.broker import (
    DEVICE_GROUP,
    BrokerAccount,
    account_for,
    device_of_role,
    role_name,
    topic_prefix,
)
from provisiond.domain.credentials import CredentialType
from provisiond.errors import BrokerUnavailable
from provisiond.protocols import dynsec
from provisiond.services.sealing import Sealer
from provisiond.store.integrations import RecordedAccount, SealedCredential
from provisiond.store.uow import UnitOfWork

log = logging.getLogger(__name__)
BATCH = 200  # commands per message to the broker
RETRY_MAX = timedelta(minutes=10)


class BrokerAdmin(Protocol):
    """An administrative connection to the broker's dynamic security API."""

    async def execute(self, commands: list[dict[str, Any]]) -> list[dynsec.Response]:
        """Run commands in order; their responses, or :class:`BrokerUnavailable`."""
        ...

    async def close(self) -> None: ...


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
        return bool(self.created or self.updated or self.deleted or self.roles_created
                    or self.roles_fixed or self.roles_deleted)

    def as_dict(self) -> dict[str, Any]:
        return {"accounts": self.accounts, "created": len(self.created),
                "updated": len(self.updated), "deleted": self.deleted,
                "roles_created": self.roles_created, "roles_fixed": self.roles_fixed,
                "roles_deleted": self.roles_deleted, "errors": self.errors,
                "dry_run": self.dry_run}


def retry_delay(attempts: int) -> timedelta:
    """1 s, 2 s, 4 s … at most 10 minutes."""
    return min(timedelta(seconds=2 ** min(attempts, 20)), RETRY_MAX)


Applied = tuple[list[uuid.UUID], dict[uuid.UUID, str], list[RecordedAccount], list[str]]
"""What one round of the incremental path did: devices in step, devices that failed (and
why), accounts made, accounts removed (their digests)."""


class AccountKeeper(ABC):
    """What every way of keeping a broker's accounts shares: the queue of devices to bring
    in step, provisiond's record of the accounts it made, the registry's wanted accounts."""

    def __init__(self, uow: Callable[[], UnitOfWork], sealer: Sealer, prefix_template: str,
                 clock: Callable[[], datetime]) -> None:
        self._uow = uow
        self._sealer = sealer
        self._template = prefix_template
        self._clock = clock
        self._busy = asyncio.Lock()  # the incremental path and reconciliation take turns

    def _account(self, c: SealedCredential) -> BrokerAccount | None:
        return account_for(CredentialType(c.type), device_id=c.device_id,
                           credential_id=c.credential_id, lookup=c.lookup,
                           client_id=c.client_id, secret=self._sealer.unseal(c.secret_sealed))

    def _record(self, a: BrokerAccount) -> RecordedAccount:
        return RecordedAccount(a.digest, a.device_id, a.credential_id,
                               self._sealer.seal(a.username))

    def _by_device(self, device_ids: list[uuid.UUID], sealed: list[SealedCredential],
                   recorded: list[RecordedAccount]
                   ) -> tuple[dict[uuid.UUID, list[BrokerAccount]],
                              dict[uuid.UUID, list[RecordedAccount]]]:
        """Each device's wanted accounts, and the accounts provisiond recorded for it."""
        wanted: dict[uuid.UUID, list[BrokerAccount]] = {d: [] for d in device_ids}
        for c in sealed:
            account = self._account(c)
            if account is not None:
                wanted[c.device_id].append(account)
        have: dict[uuid.UUID, list[RecordedAccount]] = {d: [] for d in device_ids}
        for r in recorded:
            have[r.device_id].append(r)
        return wanted, have

    # ----------------------------------------------------------------------- incremental

    async def apply_pending(self, limit: int = 500) -> int:
        """Bring the accounts of up to ``limit`` queued devices in step; how many were."""
        async with self._busy:
            return await self._apply_pending(limit)

    @abstractmethod
    async def _prepare(self) -> None:
        """What must be on the broker before any account (BrokerUnavailable if it cannot)."""

    @abstractmethod
    async def _apply(self, device_ids: list[uuid.UUID], sealed: list[SealedCredential],
                     recorded: list[RecordedAccount]) -> Applied:
        """Make these devices' accounts on the broker the ones ``sealed`` asks for."""

    async def _apply_pending(self, limit: int) -> int:
        now = self._clock()
        async with self._uow().read() as uow:
            device_ids = await uow.broker.pending.due(now, limit)
            if not device_ids:
                return 0
            sealed = await uow.broker.sealed_credentials(device_ids)
            recorded = await uow.broker.recorded(device_ids)
        try:
            await self._prepare()
            done, failures, created, removed = await self._apply(device_ids, sealed, recorded)
        except BrokerUnavailable as err:
            done, failures, created, removed = [], dict.fromkeys(device_ids, str(err)), [], []
        async with self._uow() as uow:
            await uow.broker.record(created, now)
            await uow.broker.forget(removed)
            await uow.broker.pending.done(done)
            if failures:
                tries = await uow.broker.pending.attempts(list(failures))
                for device_id, error in failures.items():
                    await uow.broker.pending.failed(device_id, error,
                                                    now + retry_delay(tries.get(device_id, 0)))
            await uow.commit()
        if failures:
            log.warning("broker: %d device(s) not in step yet (%s); retrying with backoff",
                        len(failures), next(iter(failures.values())))
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

    async def _wanted_accounts(self) -> list[BrokerAccount]:
        out: list[BrokerAccount] = []
        after: uuid.UUID | None = None
        while True:
            async with self._uow().read() as uow:
                page = await uow.broker.all_sealed_credentials(after, 5000)
            for c in page:
                account = self._account(c)
                if account is not None:
                    out.append(account)
            if len(page) < 5000:
                return out
            after = page[-1].credential_id

    async def _record_all(self, wanted: list[BrokerAccount]) -> None:
        """Make provisiond's record of broker accounts the wanted set."""
        now = self._clock()
        async with self._uow() as uow:
            have = {r.digest for r in await uow.broker.recorded()}
            keep = {a.digest for a in wanted}
            await uow.broker.forget(sorted(have - keep))
            await uow.broker.record([self._record(a) for a in wanted if a.digest not in have],
                                    now)
            await uow.commit()


class BrokerSync(AccountKeeper):
    """Mosquitto's dynamic security plugin: commands over its control topic."""

    def __init__(self, uow: Callable[[], UnitOfWork], admin: BrokerAdmin, sealer: Sealer,
                 prefix_template: str, clock: Callable[[], datetime]) -> None:
        super().__init__(uow, sealer, prefix_template, clock)
        self._admin = admin
        self._group_ready = False

    # --------------------------------------------------------------------------- helpers

    def _acls(self, device_id: uuid.UUID) -> list[dynsec.Acl]:
        return dynsec.prefix_acls(topic_prefix(self._template, device_id))

    def _create(self, a: BrokerAccount) -> dict[str, Any]:
        return dynsec.create_client(a.username, a.password, clientid=a.client_id,
                                    roles=[role_name(a.device_id)], groups=[DEVICE_GROUP],
                                    textname=f"provisiond device {a.device_id}")

    def _modify(self, a: BrokerAccount) -> dict[str, Any]:
        return dynsec.modify_client(a.username, password=a.password, clientid=a.client_id,
                                    roles=[role_name(a.device_id)], groups=[DEVICE_GROUP])

    async def _run(self, commands: list[dict[str, Any]]) -> list[dynsec.Response]:
        out: list[dynsec.Response] = []
        for start in range(0, len(commands), BATCH):
            chunk = commands[start:start + BATCH]
            answers = await self._admin.execute(chunk)
            if len(answers) != len(chunk):
                raise BrokerUnavailable(
                    f"the broker answered {len(answers)} of {len(chunk)} commands")
            out.extend(answers)
        return out

    async def ensure_group(self) -> None:
        if self._group_ready:
            return
        (answer,) = await self._admin.execute([dynsec.create_group(
            DEVICE_GROUP, textname="Devices managed by provisiond")])
        if not answer.ok and answer.error not in dynsec.ALREADY:
            raise BrokerUnavailable(f"the broker refused to create group {DEVICE_GROUP}: "
                                    f"{answer.error}")
        self._group_ready = True

    async def _prepare(self) -> None:
        await self.ensure_group()

    async def _apply(self, device_ids: list[uuid.UUID], sealed: list[SealedCredential],
                     recorded: list[RecordedAccount]) -> Applied:
        wanted, have = self._by_device(device_ids, sealed, recorded)

        commands: list[dict[str, Any]] = []
        owners: list[tuple[uuid.UUID, str, BrokerAccount | None]] = []  # per command
        for device_id in device_ids:
            accounts = wanted[device_id]
            keep = {a.digest for a in accounts}
            if accounts:
                commands.append(dynsec.create_role(role_name(device_id),
                                                   self._acls(device_id)))
                owners.append((device_id, "role", None))
            for a in accounts:
                commands.append(self._create(a))
                owners.append((device_id, "client", a))
            for r in have[device_id]:
                if r.digest not in keep:
                    commands.append(dynsec.delete_client(self._sealer.unseal(r.username_sealed)))
                    owners.append((device_id, "delete:" + r.digest, None))
            if not accounts:
                commands.append(dynsec.delete_role(role_name(device_id)))
                owners.append((device_id, "unrole", None))
        answers = await self._run(commands)

        failures: dict[uuid.UUID, str] = {}
        created: list[RecordedAccount] = []
        removed: list[str] = []
        retry: list[dict[str, Any]] = []
        retry_owners: list[tuple[uuid.UUID, BrokerAccount]] = []
        for (device_id, what, account), answer in zip(owners, answers, strict=True):
            if answer.ok or (answer.error in dynsec.GONE and what != "client"):
                if what.startswith("delete:"):
                    removed.append(what[len("delete:"):])
                elif account is not None:
                    created.append(self._record(account))
            elif what == "client" and answer.error == "Client already exists" \
                    and account is not None:
                retry.append(self._modify(account))
                retry_owners.append((device_id, account))
            elif answer.error in dynsec.ALREADY:
                continue
            else:
                failures.setdefault(device_id, f"{answer.command}: {answer.error}")
        if retry:
            for (device_id, account), answer in zip(retry_owners, await self._run(retry),
                                                    strict=True):
                if answer.ok:
                    created.append(self._record(account))
                else:
                    failures.setdefault(device_id, f"{answer.command}: {answer.error}")
        done = [d for d in device_ids if d not in failures]
        return done, failures, created, removed

    # -------------------------------------------------------------------- reconciliation

    async def _list(self, make: Callable[..., dict[str, Any]], key: str
                    ) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        while True:
            (answer,) = await self._admin.execute([make(offset=len(items), count=1000)])
            if not answer.ok:
                raise BrokerUnavailable(f"{answer.command}: {answer.error}")
            page = answer.data.get(key)
            if not isinstance(page, list):
                raise BrokerUnavailable(f"{answer.command}: the answer has no {key} list")
            items.extend(p for p in page if isinstance(p, dict))
            total = answer.data.get("totalCount")
            if not page or not isinstance(total, int) or len(items) >= total:
                return items

    async def _reconcile(self, dry_run: bool, passwords: bool) -> SyncReport:
        report = SyncReport(dry_run=dry_run)
        if not dry_run:
            await self.ensure_group()
        # The broker first, then the registry: an account made in between (by another
        # instance's incremental path) is then wanted, never taken for a stale one.
        clients = {c["username"]: c for c in await self._list(dynsec.list_clients, "clients")
                   if isinstance(c.get("username"), str)}
        roles = {r["rolename"]: r for r in await self._list(dynsec.list_roles, "roles")
                 if isinstance(r.get("rolename"), str)}
        wanted = await self._wanted_accounts()
        report.accounts = len(wanted)

        commands: list[dict[str, Any]] = []
        devices_wanted = {a.device_id for a in wanted}
        for device_id in sorted(devices_wanted):
            name = role_name(device_id)
            acls = self._acls(device_id)
            if name not in roles:
                commands.append(dynsec.create_role(name, acls))
                report.roles_created += 1
                continue
            # ACLs are corrected in place: a role deleted under its clients is unsafe
            have = _acl_set(roles[name].get("acls"))
            want = {(a.acltype, a.topic, a.allow): a for a in acls}
            stale = [dynsec.remove_role_acl(name, dynsec.Acl(t, topic))
                     for t, topic, allow in have if (t, topic, allow) not in want]
            missing = [dynsec.add_role_acl(name, a) for key, a in want.items()
                       if key not in have]
            if stale or missing:
                commands += stale + missing
                report.roles_fixed += 1
        usernames = set()
        for a in wanted:
            usernames.add(a.username)
            client = clients.get(a.username)
            if client is None:
                commands.append(self._create(a))
                report.created.append(str(a.credential_id))
            elif passwords or not _client_matches(client, a):
                commands.append(self._modify(a))
                report.updated.append(str(a.credential_id))
        for username, client in clients.items():
            if username not in usernames and DEVICE_GROUP in dynsec.names(
                    client.get("groups"), "groupname"):
                commands.append(dynsec.delete_client(username))
                report.deleted += 1
        orphans = [r for r in roles
                   if (owner := device_of_role(r)) is not None and owner not in devices_wanted]
        for username, client in clients.items():  # someone else's client holding one
            if username in usernames or DEVICE_GROUP in dynsec.names(client.get("groups"),
                                                                     "groupname"):
                continue
            for rolename in set(dynsec.names(client.get("roles"), "rolename")) & set(orphans):
                commands.append(dynsec.remove_client_role(username, rolename))
        for rolename in orphans:
            commands.append(dynsec.delete_role(rolename))
            report.roles_deleted += 1
        if dry_run:
            return report
        for answer in await self._run(commands):
            if not answer.ok and answer.error not in dynsec.ALREADY | dynsec.GONE:
                report.errors.append(f"{answer.command}: {answer.error}")
        await self._record_all(wanted)
        return report


def _acl_set(acls: object) -> set[tuple[str, str, bool]]:
    if not isinstance(acls, list):
        return set()
    return {(str(a.get("acltype")), str(a.get("topic")), bool(a.get("allow")))
            for a in acls if isinstance(a, dict)}


def _client_matches(client: dict[str, Any], a: BrokerAccount) -> bool:
    return (dynsec.names(client.get("roles"), "rolename") == [role_name(a.device_id)]
            and DEVICE_GROUP in dynsec.names(client.get("groups"), "groupname")
            and (client.get("clientid") or None) == a.client_id)


async def broker_status(uow: UnitOfWork) -> dict[str, Any]:
    """What `provisiond broker status` shows: accounts made, events queued, devices waiting."""
    async with uow.read():
        pending = await uow.broker.pending.listed()
        accounts = await uow.broker.count()
        queued = await uow.outbox.size()
    return {"accounts": accounts, "events_queued": queued,
            "pending": [{"device_id": str(d), "attempts": a,
                         "next_attempt_at": n.isoformat() if n else None, "error": e}
                        for d, a, n, e in pending]}
