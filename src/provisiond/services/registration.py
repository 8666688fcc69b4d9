"""Bulk registration: the manufacturing path.

One import is one transaction with one ``devices.imported`` event: it happens whole or not
at all. Every record is validated, also after the first problem, so a failed import lists
every problem with its line; a file with any problem imports nothing. Each device gets a
fresh access token, handed to a :class:`CredentialSink` (the credentials file) and stored only
as its SHA-256.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from provisiond.domain.catalog import DeviceModel, parse_model_name
from provisiond.domain.credentials import CredentialType
from provisiond.domain.device import DeviceState
from provisiond.domain.events import EventType, NewEvent
from provisiond.domain.groups import Group
from provisiond.domain.importing import ImportRecord, parse_record
from provisiond.domain.users import User
from provisiond.errors import GroupNotFound, ImportInvalid, ModelNotFound, Problem
from provisiond.services.devices import Resolver
from provisiond.services.hashing import new_token
from provisiond.services.import_formats import Item
from provisiond.store.bulk import CredentialRow, DeviceRow, TagRow
from provisiond.store.uow import UnitOfWork


class CredentialSink(Protocol):
    """Where the secrets of an import go: written once, never stored in clear."""

    def add(self, serial: str, device_id: uuid.UUID, credential_type: str, secret: str) -> None:
        ...

    def prepare(self) -> None:
        """Make everything added durable; called just before the import commits."""


@dataclass(frozen=True, slots=True)
class ImportOptions:
    group: str | None = None  # for records with neither group nor owner: claim for this group
    model: str | None = None  # for records without a model
    skip_existing: bool = False  # registered serials are skipped instead of refused
    source: str = ""  # the file name, for the audit event
    batch_size: int = 5_000
    max_problems: int = 1_000


@dataclass(frozen=True, slots=True)
class ImportResult:
    event_id: int
    imported: int
    claimed: int
    skipped: int


class _Problems:
    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.items: list[Problem] = []
        self.total = 0

    def add(self, problem: Problem) -> None:
        self.total += 1
        if len(self.items) < self.cap:
            self.items.append(problem)

    def __bool__(self) -> bool:
        return self.total > 0


class _Importer:
    def __init__(self, uow: UnitOfWork, options: ImportOptions, sink: CredentialSink,
                 event_id: int, now: datetime) -> None:
        self.uow = uow
        self.options = options
        self.sink = sink
        self.event_id = event_id
        self.now = now
        self.resolver = Resolver(uow)
        self.problems = _Problems(options.max_problems)
        self.default_model: DeviceModel | None = None
        self.default_group: Group | None = None
        self.imported = self.claimed = self.skipped = 0

    async def load_defaults(self) -> None:
        if self.options.model:
            found = await self.resolver.model(parse_model_name(self.options.model, field="--model"))
            if isinstance(found, Problem):
                raise ModelNotFound(f"--model: {found.message}", problems=[found])
            self.default_model = found
        if self.options.group:
            group = await self.resolver.group(self.options.group)
            if isinstance(group, Problem):
                raise GroupNotFound(f"--group: {group.message}", problems=[group])
            self.default_group = group

    async def _lookups(self, batch: list[ImportRecord]
                       ) -> tuple[dict[str, DeviceModel | Problem], dict[str, Group | Problem],
                                  dict[str, User | Problem]]:
        models: dict[str, DeviceModel | Problem] = {}
        groups: dict[str, Group | Problem] = {}
        owners: dict[str, User | Problem] = {}
        for rec in batch:
            if rec.model is not None and rec.model not in models:
                models[rec.model] = await self.resolver.model(rec.model)
            if rec.group is not None and rec.group not in groups:
                groups[rec.group] = await self.resolver.group(rec.group)
            if rec.owner is not None and rec.owner not in owners:
                owners[rec.owner] = await self.resolver.owner(rec.owner)
        return models, groups, owners

    async def flush(self, batch: list[ImportRecord]) -> None:
        if not batch:
            return
        existing = await self.uow.bulk.existing_serials([r.serial for r in batch])
        models, groups, owners = await self._lookups(batch)
        devices: list[DeviceRow] = []
        tags: list[TagRow] = []
        creds: list[CredentialRow] = []
        add_problem = self.problems.add
        for rec in batch:
            if rec.serial in existing:
                if self.options.skip_existing:
                    self.skipped += 1
                else:
                    add_problem(Problem(f"{rec.serial} is already registered "
                                        "(--skip-existing skips such rows)",
                                        field="serial", line=rec.line))
                continue
            model = models[rec.model] if rec.model is not None else self.default_model
            group: Group | Problem | None = None
            owner: User | Problem | None = None
            if rec.owner is not None:
                owner = owners[rec.owner]
            elif rec.group is not None:
                group = groups[rec.group]
            else:
                group = self.default_group
            bad = False
            for found in (model, group, owner):
                if isinstance(found, Problem):
                    add_problem(Problem(found.message, field=found.field, line=rec.line))
                    bad = True
            if bad or self.problems:
                continue  # keep validating, but nothing will be written
            assert not isinstance(model, Problem)
            assert not isinstance(group, Problem)
            assert not isinstance(owner, Problem)
            device_id = uuid.uuid4()
            if owner is not None:
                state, group_id, owner_id = DeviceState.CLAIMED, owner.group_id, owner.id
            elif group is not None:
                state, group_id, owner_id = DeviceState.CLAIMED, group.id, None
            else:
                state, group_id, owner_id = DeviceState.REGISTERED, None, None
            devices.append((device_id, rec.serial, rec.name, model.id if model else None,
                            state.value, group_id, owner_id))
            for key, value in rec.tags.items():
                tags.append((device_id, key, value))
            secret, lookup = new_token()
            creds.append((uuid.uuid4(), device_id, CredentialType.ACCESS_TOKEN.value, lookup,
                          None))
            self.sink.add(rec.serial, device_id, CredentialType.ACCESS_TOKEN.value, secret)
            if state is DeviceState.CLAIMED:
                self.claimed += 1
        if self.problems:
            return
        await self.uow.bulk.write(devices, tags, creds, event_id=self.event_id, now=self.now)
        self.imported += len(devices)


async def register_devices(uow: UnitOfWork, *, items: Iterable[Item], options: ImportOptions,
                           sink: CredentialSink, actor: str, now: datetime) -> ImportResult:
    """Register every record of an import file, or none of them.

    Raises :class:`ImportInvalid` listing every problem (line and field) when anything in the
    file is wrong; the database is then unchanged and the sink must be discarded.
    """
    async with uow:
        event_id = await uow.events.add(NewEvent(EventType.DEVICES_IMPORTED, now, actor,
                                                 data={"source": options.source}))
        importer = _Importer(uow, options, sink, event_id, now)
        await importer.load_defaults()
        seen: dict[str, int] = {}
        batch: list[ImportRecord] = []
        records = 0
        for item in items:
            if isinstance(item, Problem):
                importer.problems.add(item)
                continue
            rec = parse_record(item.values, item.columns, item.line)
            if isinstance(rec, list):
                for problem in rec:
                    importer.problems.add(problem)
                continue
            records += 1
            first = seen.setdefault(rec.serial, rec.line)
            if first != rec.line:
                importer.problems.add(Problem(f"{rec.serial} is also on line {first}",
                                              field="serial", line=rec.line))
                continue
            batch.append(rec)
            if len(batch) >= options.batch_size:
                await importer.flush(batch)
                batch = []
        await importer.flush(batch)
        problems = importer.problems
        if not problems and records == 0 and importer.skipped == 0:
            problems.add(Problem("the file has a header but no devices", line=2))
        if problems:
            problems.items.sort(key=lambda p: (p.line or 0))
            more = problems.total - len(problems.items)
            summary = f"{problems.total} problem{'s' if problems.total != 1 else ''} found"
            raise ImportInvalid(
                f"{summary}; nothing was imported"
                + (f" (the first {len(problems.items)} are listed)" if more else ""),
                problems=problems.items, problem_count=problems.total,
            )
        result = ImportResult(event_id, importer.imported, importer.claimed, importer.skipped)
        await uow.bulk.finish_event(event_id, {
            "source": options.source, "imported": result.imported, "claimed": result.claimed,
            "skipped": result.skipped, "group": options.group, "model": options.model,
        })
        sink.prepare()
        await uow.commit()
    return result
