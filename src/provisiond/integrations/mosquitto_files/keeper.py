"""Keeping Mosquitto's password and ACL files in step with the registry
(``broker__kind=mosquitto-files``).

The dynamic security plugin of Mosquitto 2.0 saves its whole configuration after every
command, so each account costs more than the last: at ten thousand accounts it makes a few
per second. Here provisiond writes the accounts into the ``password_file`` and ``acl_file``
Mosquitto already reads, many devices per write, and has Mosquitto read them again: a
write costs the same whatever it holds, so the accounts keep up with provisioning.

- incremental: every queued device (``pending_work``) waiting is taken at once, its
  accounts added, replaced or removed in provisiond's part of the files, and the files
  written once — at most once per ``broker__reload_interval_seconds``, so Mosquitto is not
  made to reload the files continually under a provisioning storm;
- reconciliation: provisiond's part of the files is made to match the registry (accounts
  added, removed, their rules and passwords corrected), reporting what changed.

Each account may publish and subscribe under its device's topic prefix only (a ``topic
readwrite PREFIX/#`` rule under its ``user`` line). Mosquitto's files cannot bind an
account to a client id: MQTT-basic credentials' client ids are not enforced by the broker
in this mode.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Protocol, TypeVar

from provisiond.domain.broker import BrokerAccount, topic_prefix
from provisiond.integrations.mosquitto_files import protocol as mosquitto_files
from provisiond.integrations.mosquitto_files.protocol import Entry, Files
from provisiond.services.broker_keeper import AccountKeeper, Applied, Plan, SyncReport
from provisiond.services.sealing import Sealer
from provisiond.store.integrations import RecordedAccount
from provisiond.store.uow import UnitOfWork

T = TypeVar("T")
BATCH = 20_000  # devices per write at most


class AccountFiles(Protocol):
    """Mosquitto's password and ACL files, changed under a lock and reloaded."""

    async def change(self, edit: Callable[[Files], tuple[bool, T]], *, reload: bool = False) -> T:
        """Run ``edit`` on the files; write them if it says they changed, then make
        Mosquitto read them (BrokerUnavailable if any of it fails)."""
        ...


class FileBrokerSync(AccountKeeper):
    def __init__(
        self,
        uow: Callable[[], UnitOfWork],
        files: AccountFiles,
        sealer: Sealer,
        prefix_template: str,
        clock: Callable[[], datetime],
        *,
        reload_interval: float = 1.0,
        token_as_username: bool = False,
    ) -> None:
        super().__init__(uow, sealer, prefix_template, clock, token_as_username=token_as_username)
        self._files = files
        self._interval = reload_interval
        self._last_write = -float("inf")  # time.monotonic() of the last round

    def _topics(self, device_id: uuid.UUID) -> tuple[str, ...]:
        return (f"{topic_prefix(self._template, device_id)}/#",)

    def _entry(self, a: BrokerAccount, have: Entry | None, *, rehash: bool = False) -> Entry:
        """The account's entry: ``have`` when it is already right, else a new one."""
        topics = self._topics(a.device_id)
        password = self._password(a)
        if (
            have is not None
            and have.topics == topics
            and not rehash
            and mosquitto_files.password_matches(password, have.hashed)
        ):
            return have
        return Entry(a.username, mosquitto_files.hash_password(password), topics)

    # ----------------------------------------------------------------------- incremental

    async def _prepare(self) -> None:
        """Nothing: the files need no group or role before the accounts."""

    async def apply_pending(self, limit: int = BATCH) -> int:
        """Bring every queued device's accounts in step (up to ``limit``) in one write;
        0 without waiting when the last write is less than the reload interval ago."""
        if time.monotonic() - self._last_write < self._interval:
            return 0
        return await super().apply_pending(limit)

    async def _apply(self, plan: Plan) -> Applied:
        gone = {r.digest: self._recorded_name(r) for rs in plan.have.values() for r in rs}

        def edit(files: Files) -> tuple[bool, Applied]:
            changed = False
            failures: dict[uuid.UUID, str] = {}
            created: list[RecordedAccount] = []
            removed: list[str] = []
            for device_id in plan.device_ids:
                for r in plan.stale(device_id):  # revoked: out, whatever else happens
                    changed |= files.accounts.pop(gone[r.digest], None) is not None
                    removed.append(r.digest)
                for a in plan.wanted[device_id]:
                    why = _unwritable(files, a)
                    if why is not None:
                        failures.setdefault(device_id, why)
                        continue
                    current = files.accounts.get(a.username)
                    entry = self._entry(a, current)
                    if entry is not current:
                        files.accounts[a.username] = entry
                        changed = True
                    created.append(self._record(a))
            done = [d for d in plan.device_ids if d not in failures]
            return changed, (done, failures, created, removed)

        try:  # reload even when the files are right: a retry may be owed one
            return await self._files.change(edit, reload=True)
        finally:
            self._last_write = time.monotonic()

    # -------------------------------------------------------------------- reconciliation

    async def _reconcile(self, dry_run: bool, passwords: bool) -> SyncReport:  # noqa: C901 - the files' state against ours, one branch per difference
        report = SyncReport(dry_run=dry_run)
        holding = await self._wanted_accounts()
        wanted = holding.holders
        report.accounts = len(wanted)

        def edit(files: Files) -> tuple[bool, None]:
            usernames = set()
            for a in wanted:
                why = _unwritable(files, a)
                if why is not None:
                    report.errors.append(f"device {a.device_id}: {why}")
                    continue
                usernames.add(a.username)
                current = files.accounts.get(a.username)
                entry = self._entry(a, current, rehash=passwords)
                if current is None:
                    report.created.append(str(a.credential_id))
                elif entry is not current:
                    report.updated.append(str(a.credential_id))
                if not dry_run:
                    files.accounts[a.username] = entry
            for username in list(files.accounts):
                if username not in usernames:
                    report.deleted += 1
                    if not dry_run:
                        del files.accounts[username]
            return report.changed and not dry_run, None

        await self._files.change(edit, reload=not dry_run)
        if not dry_run:
            await self._record_all(holding, report)
        return report


def _unwritable(files: Files, a: BrokerAccount) -> str | None:
    """Why an account cannot be written in this registry's section (None: it can)."""
    if a.username in files.others:
        return (
            "its user name is an account of another registry's section of the files "
            "(broker__namespace); left alone"
        )
    return mosquitto_files.unwritable(a.username)
