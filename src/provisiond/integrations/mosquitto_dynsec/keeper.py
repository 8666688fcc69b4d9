"""Keeping Mosquitto's dynamic security plugin in step with the registry
(``broker__kind=mosquitto-dynsec``).

Every account provisiond manages is in the broker group ``provisiond-devices`` and has one
role, ``provisiond-device-<device id>``, whose ACLs allow the device's topic prefix only.
With ``broker__namespace`` set (several registries on one broker) they are
``provisiond-<namespace>-devices`` and ``provisiond-<namespace>-device-<device id>``: a
registry lists, changes and deletes only the clients of its group and the roles of its
prefix, and leaves a client of another registry's group alone even when it has a name this
registry wants (reported as an error) — unless the client's role names one of this
registry's devices: then it is its own account from before a change of namespace, and is
moved into the new one.
What the ways of keeping a broker share — the queue, the records, who holds a user name —
is in services/broker_keeper.py; integrations/mosquitto_files/ writes Mosquitto's password
and ACL files instead (``mosquitto-files``), integrations/emqx/ ends EMQX sessions.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from provisiond.domain.broker import (
    BrokerAccount,
    device_group,
    device_of_role,
    is_device_group,
    is_device_role,
    role_name,
    topic_prefix,
)
from provisiond.errors import BrokerUnavailable
from provisiond.integrations.mosquitto_dynsec import protocol as dynsec
from provisiond.services.broker_keeper import AccountKeeper, Applied, Plan, SyncReport
from provisiond.services.sealing import Sealer
from provisiond.store.integrations import RecordedAccount
from provisiond.store.uow import UnitOfWork

BATCH = 200  # commands per message to the broker


class BrokerAdmin(Protocol):
    """An administrative connection to the broker's dynamic security API."""

    async def execute(self, commands: list[dict[str, Any]]) -> list[dynsec.Response]:
        """Run commands in order; their responses, or :class:`BrokerUnavailable`."""
        ...

    async def close(self) -> None: ...


class BrokerSync(AccountKeeper):
    """Mosquitto's dynamic security plugin: commands over its control topic."""

    def __init__(
        self,
        uow: Callable[[], UnitOfWork],
        admin: BrokerAdmin,
        sealer: Sealer,
        prefix_template: str,
        clock: Callable[[], datetime],
        *,
        token_as_username: bool = False,
        namespace: str = "",
    ) -> None:
        super().__init__(uow, sealer, prefix_template, clock, token_as_username=token_as_username)
        self._admin = admin
        self._group_ready = False
        self._namespace = namespace
        self._group = device_group(namespace)

    def _role(self, device_id: uuid.UUID) -> str:
        return role_name(device_id, self._namespace)

    def _foreign(self, client: dict[str, Any], a: BrokerAccount) -> str | None:
        """Why a client on the broker with ``a``'s user name is not this registry's to
        change (None: it is in this registry's group, in no provisiond group, or it is this
        device's account from before a change of namespace)."""
        groups = dynsec.names(client.get("groups"), "groupname")
        if self._group in groups:
            return None
        others = [g for g in groups if is_device_group(g)]
        if not others or _old_roles(client, a.device_id):
            return None
        return (
            f"credential {a.credential_id}: its user name is held by an account of another "
            f"registry (broker group {others[0]}); left alone"
        )

    # --------------------------------------------------------------------------- helpers

    def _acls(self, device_id: uuid.UUID) -> list[dynsec.Acl]:
        return dynsec.prefix_acls(topic_prefix(self._template, device_id))

    def _create(self, a: BrokerAccount) -> dict[str, Any]:
        return dynsec.create_client(
            a.username,
            self._password(a),
            clientid=a.client_id,
            roles=[self._role(a.device_id)],
            groups=[self._group],
            textname=f"provisiond device {a.device_id}",
        )

    def _modify(self, a: BrokerAccount) -> dict[str, Any]:
        return dynsec.modify_client(
            a.username,
            password=self._password(a),
            clientid=a.client_id,
            roles=[self._role(a.device_id)],
            groups=[self._group],
        )

    async def _run(self, commands: list[dict[str, Any]]) -> list[dynsec.Response]:
        out: list[dynsec.Response] = []
        for start in range(0, len(commands), BATCH):
            chunk = commands[start : start + BATCH]
            answers = await self._admin.execute(chunk)
            if len(answers) != len(chunk):
                raise BrokerUnavailable(
                    f"the broker answered {len(answers)} of {len(chunk)} commands"
                )
            out.extend(answers)
        return out

    async def ensure_group(self) -> None:
        if self._group_ready:
            return
        textname = "Devices managed by provisiond" + (
            f" (namespace {self._namespace})" if self._namespace else ""
        )
        (answer,) = await self._admin.execute([dynsec.create_group(self._group, textname=textname)])
        if not answer.ok and answer.error not in dynsec.ALREADY:
            raise BrokerUnavailable(
                f"the broker refused to create group {self._group}: {answer.error}"
            )
        self._group_ready = True

    async def _prepare(self) -> None:
        await self.ensure_group()

    async def _apply(self, plan: Plan) -> Applied:  # noqa: C901, PLR0912 - one branch per dynamic-security command kind and its answer
        """Roles, then clients (an existing one is modified), then stale clients removed,
        and roles of devices left without an account deleted last: Mosquitto 2.0.11 crashes
        later on a role deleted while a client still holds it."""
        commands: list[dict[str, Any]] = []
        owners: list[tuple[uuid.UUID, str, BrokerAccount | None]] = []  # per command
        for device_id in plan.device_ids:
            if plan.wanted[device_id]:
                commands.append(dynsec.create_role(self._role(device_id), self._acls(device_id)))
                owners.append((device_id, "role", None))
        for device_id in plan.device_ids:
            for a in plan.wanted[device_id]:
                commands.append(self._create(a))
                owners.append((device_id, "client", a))
        for device_id in plan.device_ids:
            for r in plan.stale(device_id):
                commands.append(dynsec.delete_client(self._recorded_name(r)))
                owners.append((device_id, "delete:" + r.digest, None))
        failures: dict[uuid.UUID, str] = {}
        created: list[RecordedAccount] = []
        removed: list[str] = []
        retry: list[tuple[uuid.UUID, BrokerAccount]] = []
        for (device_id, what, account), answer in zip(
            owners, await self._run(commands), strict=True
        ):
            if answer.ok or (answer.error in dynsec.GONE and what != "client"):
                if what.startswith("delete:"):
                    removed.append(what[len("delete:") :])
                elif account is not None:
                    created.append(self._record(account))
            elif (
                what == "client" and answer.error == "Client already exists" and account is not None
            ):
                retry.append((device_id, account))
            elif answer.error not in dynsec.ALREADY:
                failures.setdefault(device_id, f"{answer.command}: {answer.error}")
        retry = await self._takeable(retry, failures)
        modify = [self._modify(a) for _, a in retry]
        for (device_id, account), answer in zip(retry, await self._run(modify), strict=True):
            if answer.ok:
                created.append(self._record(account))
            else:
                failures.setdefault(device_id, f"{answer.command}: {answer.error}")
        unroles = [d for d in plan.device_ids if not plan.wanted[d]]
        for device_id, answer in zip(
            unroles,
            await self._run([dynsec.delete_role(self._role(d)) for d in unroles]),
            strict=True,
        ):
            if not answer.ok and answer.error not in dynsec.GONE:
                failures.setdefault(device_id, f"{answer.command}: {answer.error}")
        done = [d for d in plan.device_ids if d not in failures]
        return done, failures, created, removed

    async def _takeable(
        self, existing: list[tuple[uuid.UUID, BrokerAccount]], failures: dict[uuid.UUID, str]
    ) -> list[tuple[uuid.UUID, BrokerAccount]]:
        """Of the accounts whose user name a client on the broker has already, those this
        registry may take over (the others fail with the reason: another registry's)."""
        if not existing:
            return []
        answers = await self._run([dynsec.get_client(a.username) for _, a in existing])
        out = []
        for (device_id, a), answer in zip(existing, answers, strict=True):
            client = answer.data.get("client") if answer.ok else None
            why = self._foreign(client, a) if isinstance(client, dict) else None
            if why is None:
                out.append((device_id, a))
            else:
                failures.setdefault(device_id, why)
        return out

    # -------------------------------------------------------------------- reconciliation

    async def _list(self, make: Callable[..., dict[str, Any]], key: str) -> list[dict[str, Any]]:
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

    def _client_matches(self, client: dict[str, Any], a: BrokerAccount) -> bool:
        return (
            dynsec.names(client.get("roles"), "rolename") == [self._role(a.device_id)]
            and self._group in dynsec.names(client.get("groups"), "groupname")
            and (client.get("clientid") or None) == a.client_id
        )

    async def _reconcile(self, dry_run: bool, passwords: bool) -> SyncReport:  # noqa: C901, PLR0912 - the broker's state against ours, one branch per difference
        report = SyncReport(dry_run=dry_run)
        if not dry_run:
            await self.ensure_group()
        # The broker first, then the registry: an account made in between (by another
        # instance's incremental path) is then wanted, never taken for a stale one.
        clients = {
            c["username"]: c
            for c in await self._list(dynsec.list_clients, "clients")
            if isinstance(c.get("username"), str)
        }
        roles = {
            r["rolename"]: r
            for r in await self._list(dynsec.list_roles, "roles")
            if isinstance(r.get("rolename"), str)
        }
        holding = await self._wanted_accounts()
        wanted = holding.holders
        report.accounts = len(wanted)

        commands: list[dict[str, Any]] = []
        devices_wanted = {a.device_id for a in wanted}
        for device_id in sorted(devices_wanted):
            name = self._role(device_id)
            acls = self._acls(device_id)
            if name not in roles:
                commands.append(dynsec.create_role(name, acls))
                report.roles_created += 1
                continue
            # ACLs are corrected in place: a role deleted under its clients is unsafe
            have = _acl_set(roles[name].get("acls"))
            want = {(a.acltype, a.topic, a.allow): a for a in acls}
            stale = [
                dynsec.remove_role_acl(name, dynsec.Acl(t, topic))
                for t, topic, allow in have
                if (t, topic, allow) not in want
            ]
            missing = [dynsec.add_role_acl(name, a) for key, a in want.items() if key not in have]
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
            elif (why := self._foreign(client, a)) is not None:
                report.errors.append(why)
            elif passwords or not self._client_matches(client, a):
                commands.append(self._modify(a))
                report.updated.append(str(a.credential_id))
                # its role of a namespace it had before: no client holds it any more
                old = [r for r in _old_roles(client, a.device_id) if r != self._role(a.device_id)]
                commands += [dynsec.delete_role(r) for r in old]
                report.roles_deleted += len(old)
        for username, client in clients.items():
            if username not in usernames and self._group in dynsec.names(
                client.get("groups"), "groupname"
            ):
                commands.append(dynsec.delete_client(username))
                report.deleted += 1
        orphans = [
            r
            for r in roles
            if (owner := device_of_role(r, self._namespace)) is not None
            and owner not in devices_wanted
        ]
        for username, client in clients.items():  # someone else's client holding one
            if username in usernames or self._group in dynsec.names(
                client.get("groups"), "groupname"
            ):
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
        await self._record_all(holding, report)
        return report


def _acl_set(acls: object) -> set[tuple[str, str, bool]]:
    if not isinstance(acls, list):
        return set()
    return {
        (str(a.get("acltype")), str(a.get("topic")), bool(a.get("allow")))
        for a in acls
        if isinstance(a, dict)
    }


def _old_roles(client: dict[str, Any], device_id: uuid.UUID) -> list[str]:
    """The client's roles that are provisiond's role of this device, in any namespace."""
    return [
        r for r in dynsec.names(client.get("roles"), "rolename") if is_device_role(r, device_id)
    ]
