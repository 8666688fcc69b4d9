"""Bulk registration: the manufacturing path.

One import is one transaction with one ``devices.imported`` event: it happens whole or not
at all. Every record is validated, also after the first problem, so a failed import lists
every problem with its line; a file with any problem imports nothing. Each device gets a
fresh access token, handed to a :class:`CredentialSink` (the credentials file) and stored only
as the SHA-256 of its verifier.

Records are handled in batches of ``batch_size``: memory stays bounded whatever the file size.
While one batch is written, the next is read, checked and given its secrets (on SQLite the
database works without the GIL meanwhile; see :mod:`provisiond.store.bulk`).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import chain
from typing import Protocol

from provisiond.domain.catalog import DeviceModel, parse_model_name
from provisiond.domain.claims import ClaimProof, new_claim_code, normalise_claim_code
from provisiond.domain.credentials import CredentialType
from provisiond.domain.device import DeviceState
from provisiond.domain.events import EventType, NewEvent
from provisiond.domain.groups import Group
from provisiond.domain.importing import ImportRecord, parse_record
from provisiond.domain.profiles import Profile
from provisiond.domain.scope import Scope
from provisiond.domain.users import Role
from provisiond.errors import (
    DeviceExists,
    GroupNotFound,
    ImportInvalid,
    ModelNotFound,
    Problem,
    ProfileNotFound,
)
from provisiond.protocols.csv_cells import csv_lines
from provisiond.services.devices import Resolver
from provisiond.services.hashing import hash_claim_code, new_split_tokens
from provisiond.services.ids import canonical, new_id_hexes
from provisiond.services.import_formats import Item
from provisiond.services.scoping import require
from provisiond.services.sealing import Sealer
from provisiond.store.bulk import CredentialRow, DeviceRow, TagRow
from provisiond.store.uow import UnitOfWork

log = logging.getLogger(__name__)
ACCESS_TOKEN = CredentialType.ACCESS_TOKEN.value
STATISTICS_AFTER_ROWS = 10_000


# (serial, device id in its canonical text form (str(UUID)), credential type, secret)
SecretRow = tuple[str, str, str, str]
# The credentials file's header: the columns of a SecretRow.
SECRET_COLUMNS: SecretRow = ("serial", "device_id", "credential_type", "secret")


class CredentialSink(Protocol):
    """Where the secrets of an import go: written once, never stored in clear."""

    def add_rows(self, rows: Sequence[SecretRow]) -> None:
        """One batch's secrets, in order."""

    def prepare(self) -> None:
        """Make everything added durable; called just before the import commits."""

    def commit(self) -> None:
        """The import has committed: keep what was added (called at once, before anything
        else can fail; a sink discarded after this must keep it)."""


@dataclass(frozen=True, slots=True)
class ImportOptions:
    group: str | None = None  # for records with neither group nor owner: claim for this group
    model: str | None = None  # for records without a model
    profile: str | None = None  # for records without a profile: how they are claimed
    # The proof claims need for devices whose profile does not say (the claim_proof setting):
    # devices that need a claim code get one, written to the credentials file.
    default_claim_proof: ClaimProof = ClaimProof.NONE
    claim_code_length: int = 12  # characters of generated claim codes (setting)
    skip_existing: bool = False  # registered serials are skipped instead of refused
    # set when a broker's accounts are managed: the tokens are kept sealed for it
    broker_sealer: Sealer | None = None
    source: str = ""  # the file name, for the audit event
    batch_size: int = 20_000
    max_problems: int = 1_000


@dataclass(frozen=True, slots=True)
class ImportResult:
    event_id: int
    imported: int
    claimed: int
    skipped: int


@dataclass(frozen=True, slots=True)
class ImportCheck:
    """What an import would do (a dry run): devices it would register, of them claimed for a
    group or an owner, and registered serials it would skip."""

    devices: int
    claimed: int
    skipped: int


async def resolve_defaults(
    resolver: Resolver, *, group: str | None, model: str | None, profile: str | None
) -> tuple[Group | None, DeviceModel | None, Profile | None]:
    """The group, model and profile an import's options name (--group, --model, --profile),
    or the not-found error of the first that does not exist."""
    found_group = found_model = found_profile = None
    if model:
        m = await resolver.model(parse_model_name(model, field="--model"))
        if isinstance(m, Problem):
            raise ModelNotFound(f"--model: {m.message}", problems=[m])
        found_model = m
    if group:
        g = await resolver.group(group)
        if isinstance(g, Problem):
            raise GroupNotFound(f"--group: {g.message}", problems=[g])
        found_group = g
    if profile:
        p = await resolver.profile(profile)
        if isinstance(p, Problem):
            raise ProfileNotFound(f"--profile: {p.message}", problems=[p])
        found_profile = p
    return found_group, found_model, found_profile


class ImportProblems:
    """The problems of an import file: counted all, listed up to ``cap``."""

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

    def error(self) -> ImportInvalid:
        self.items.sort(key=lambda p: p.line or 0)
        plural = "s" if self.total != 1 else ""
        listed = (
            f" (the first {len(self.items)} are listed)" if self.total > len(self.items) else ""
        )
        return ImportInvalid(
            f"{self.total} problem{plural} found; nothing was imported{listed}",
            problems=self.items,
            problem_count=self.total,
        )


@dataclass(slots=True)
class _Secrets:
    """Ids and access tokens made for a batch before the database is asked anything."""

    device_ids: list[str]  # UUID.hex
    credential_ids: list[str]
    tokens: list[tuple[str, str]]  # (token, SHA-256 of its verifier)


def _make_secrets(batch: list[ImportRecord]) -> _Secrets:
    ids = new_id_hexes(2 * len(batch))
    credential_ids = ids[1::2]
    return _Secrets(ids[0::2], credential_ids, new_split_tokens(credential_ids))


# A record's placement: (model id, group id, owner id, state, profile id, needs a claim code),
# ids as UUID.hex; or what is wrong with it.
_Placement = tuple[str | None, str | None, str | None, str, str | None, bool] | list[Problem]
CLAIM_CODE = "claim-code"


CREDENTIALS_LINE_END = "\n"  # files of secrets that shell scripts read: no CR in the secret


def credential_csv(rows: Sequence[SecretRow]) -> str:
    """The CSV lines of ``rows``, neutralised as every CSV provisiond writes
    (:mod:`provisiond.protocols.csv_cells`). Lines end with LF, not RFC 4180's CRLF: shell
    scripts read this file (``cut -d, -f4``, ``IFS=, read``), and a CR would stay in the
    last cell, the secret.

    Serials, ids, types and tokens never need quoting or neutralising, so the lines are
    joined directly (a sixth of the csv module's time, a second per million devices); the
    checks below prove it for each batch (no cell starts with a character a spreadsheet
    would run, none holds a separator or a quote), and a batch that fails them is written
    cell by cell.
    """
    text = "".join(
        [f"{serial},{device},{kind},{secret}\n" for serial, device, kind, secret in rows]
    )
    n = len(rows)
    if (
        text.count(",") == 3 * n
        and text.count("\n") == n
        and "\r" not in text
        and '"' not in text
        and "=" not in text
        and "@" not in text
        and min(chain.from_iterable(rows), default=".") >= "."
    ):
        # no cell starts below '.' (- + ' TAB CR and the empty cell all sort below it)
        return text
    return csv_lines(rows, CREDENTIALS_LINE_END)


def _hex(value: uuid.UUID | None) -> str | None:
    return value.hex if value is not None else None


class _Importer:
    def __init__(
        self,
        uow: UnitOfWork,
        options: ImportOptions,
        sink: CredentialSink,
        event_id: int,
        now: datetime,
        scope: Scope,
        write: bool = True,
    ) -> None:
        self.uow = uow
        self.write = write  # False: a dry run, every check made and nothing written
        self.options = options
        self.sink = sink
        self.event_id = event_id
        self.now = now
        self.scope = scope
        self.resolver = Resolver(uow, scope)
        self.problems = ImportProblems(options.max_problems)
        self.default_model: DeviceModel | None = None
        self.default_group: Group | None = None
        self.default_profile: Profile | None = None
        self.imported = self.claimed = self.skipped = 0
        self.placements: dict[tuple[str | None, ...], _Placement] = {}

    async def load_defaults(self) -> None:
        o = self.options
        self.default_group, self.default_model, self.default_profile = await resolve_defaults(
            self.resolver, group=o.group, model=o.model, profile=o.profile
        )

    async def _placement(
        self,
        model_name: str | None,
        group_path: str | None,
        owner_email: str | None,
        profile_name: str | None,
    ) -> _Placement:
        """Where a record with these cells goes, or the problems (without a line)."""
        model = await self.resolver.model(model_name) if model_name else self.default_model
        owner = await self.resolver.owner(owner_email) if owner_email else None
        group = (
            await self.resolver.group(group_path)
            if group_path
            else None
            if owner_email
            else self.default_group
        )
        profile = (
            await self.resolver.profile(profile_name) if profile_name else self.default_profile
        )
        if (
            isinstance(model, Problem)
            or isinstance(group, Problem)
            or isinstance(owner, Problem)
            or isinstance(profile, Problem)
        ):
            return [p for p in (model, group, owner, profile) if isinstance(p, Problem)]
        group_id = owner.group_id if owner else group.id if group else None
        if group_id is None and not self.scope.operator_wide:
            return [
                Problem(
                    f"this caller's scope is the subtree {self.scope.group_path!r}: "
                    "give each device a group or an owner within it",
                    field="group",
                )
            ]
        state = DeviceState.CLAIMED if group_id else DeviceState.REGISTERED
        proof = (
            profile.claim_proof
            if profile and profile.claim_proof
            else self.options.default_claim_proof
        )
        return (
            _hex(model.id) if model else None,
            _hex(group_id),
            _hex(owner.id) if owner else None,
            state.value,
            _hex(profile.id) if profile else None,
            proof is ClaimProof.CODE,
        )

    async def flush(self, batch: list[ImportRecord], made: _Secrets, existing: set[str]) -> None:  # noqa: C901, PLR0912 - one branch per outcome of an import row (new, existing, duplicate, refused)
        """Write one batch (``existing``: which of its serials are registered): resolve the
        placements, insert."""
        if not batch:
            return
        devices: list[DeviceRow] = []
        tags: list[TagRow] = []
        creds: list[CredentialRow] = []
        secrets: list[SecretRow] = []
        placements = self.placements
        sealer = self.options.broker_sealer
        turn = self.uow.bulk.turn_every
        for i, rec in enumerate(batch):
            if i and i % turn == 0:
                await asyncio.sleep(0)
            if rec.serial in existing:
                if self.options.skip_existing:
                    self.skipped += 1
                else:
                    self.problems.add(
                        Problem(
                            f"{rec.serial} is already registered (--skip-existing skips such rows)",
                            field="serial",
                            line=rec.line,
                        )
                    )
                continue
            key = (rec.model, rec.group, rec.owner, rec.profile)
            placed = placements.get(key)
            if placed is None:
                placed = placements[key] = await self._placement(*key)
            if isinstance(placed, list):
                for p in placed:
                    self.problems.add(Problem(p.message, field=p.field, line=rec.line))
                continue
            if self.problems:
                continue  # keep validating, but nothing will be written
            if not self.write:  # a dry run: counted, no secret made
                self.imported += 1
                self.claimed += placed[1] is not None
                continue
            model_id, group_id, owner_id, state, profile_id, needs_code = placed
            device_id = made.device_ids[i]
            device_text = canonical(device_id)
            code_hash = None
            if needs_code:
                code = new_claim_code(self.options.claim_code_length)
                code_hash = hash_claim_code(normalise_claim_code(code))
                secrets.append((rec.serial, device_text, CLAIM_CODE, code))
            devices.append(
                (
                    device_id,
                    rec.serial,
                    rec.name,
                    model_id,
                    state,
                    group_id,
                    owner_id,
                    profile_id,
                    code_hash,
                )
            )
            if rec.tags:
                tags.extend((device_id, rec.serial, k, v) for k, v in rec.tags.items())
            token, verifier_hash = made.tokens[i]
            creds.append(
                (
                    made.credential_ids[i],
                    device_id,
                    ACCESS_TOKEN,
                    None,
                    verifier_hash,
                    sealer.seal(token) if sealer is not None else None,
                )
            )
            secrets.append((rec.serial, device_text, ACCESS_TOKEN, token))
            self.claimed += group_id is not None
        if devices and not self.problems:
            self.imported += len(devices)
            self.sink.add_rows(secrets)
            await self.uow.bulk.write(devices, tags, creds, event_id=self.event_id, now=self.now)


async def register_devices(
    uow: UnitOfWork,
    *,
    scope: Scope,
    items: Iterable[Item],
    options: ImportOptions,
    sink: CredentialSink,
    actor: str,
    now: datetime,
) -> ImportResult:
    """Register every record of an import file, or none of them.

    A scoped caller (installer or admin) places every device in its subtree; groups,
    owners and profiles outside it are reported as missing ones are.
    Raises :class:`ImportInvalid` listing every problem (line and field) when anything in the
    file is wrong; the database is then unchanged and the sink must be discarded.
    """
    require(scope, Role.INSTALLER, "registering devices")
    async with uow:
        uow.conflicts_as(
            DeviceExists(
                "another import or request registered some of these serials at the same time; "
                "nothing was imported: run the import again (with --skip-existing to skip them)"
            )
        )
        event_id = await uow.events.add(
            NewEvent(EventType.DEVICES_IMPORTED, now, actor, data={"source": options.source})
        )
        importer = _Importer(uow, options, sink, event_id, now, scope)
        await _import_all(uow, importer, _Producer(items, options.batch_size, uow.bulk.turn_every))
        result = ImportResult(event_id, importer.imported, importer.claimed, importer.skipped)
        await uow.bulk.finish_event(
            event_id,
            {
                "source": options.source,
                "imported": result.imported,
                "claimed": result.claimed,
                "skipped": result.skipped,
                "group": options.group,
                "model": options.model,
                "profile": options.profile,
            },
        )
        sink.prepare()
        await uow.commit()
        sink.commit()
    if result.imported >= STATISTICS_AFTER_ROWS:
        await _refresh_statistics(uow)
    return result


async def check_import(
    uow: UnitOfWork,
    *,
    scope: Scope,
    items: Iterable[Item],
    options: ImportOptions,
    now: datetime,
) -> ImportCheck:
    """A dry run of :func:`register_devices`: the same checks of every record (its cells,
    its group, owner, model and profile in the caller's scope, serials repeated in the file or
    already registered), in a read-only transaction. Nothing is written, not even an audit
    event, and no secret is made. Raises :class:`ImportInvalid` as the import would."""
    require(scope, Role.INSTALLER, "registering devices")
    async with uow.read():
        importer = _Importer(uow, options, _NoSink(), 0, now, scope, write=False)
        producer = _Producer(items, options.batch_size, uow.bulk.turn_every, secrets=False)
        await _import_all(uow, importer, producer)
    return ImportCheck(importer.imported, importer.claimed, importer.skipped)


class _NoSink:
    """A dry run's sink: it is never given a secret."""

    def add_rows(self, rows: Sequence[SecretRow]) -> None:
        raise AssertionError(f"a dry run makes no secret ({len(rows)} given)")

    def prepare(self) -> None:
        return None

    def commit(self) -> None:
        return None


async def _import_all(uow: UnitOfWork, importer: _Importer, producer: _Producer) -> None:
    """Check every record of the file and (unless a dry run) write them, batch by batch;
    ImportInvalid listing every problem if any."""
    await importer.load_defaults()
    try:
        # A batch is read and checked while the previous one is written: the write
        # returns once the batch is on its way (see provisiond.store.bulk).
        batch = await producer.next_batch()
        existing = uow.bulk.lookup(batch.serials())
        while batch:
            for problem in batch.problems:
                importer.problems.add(problem)
            found = await existing
            following = await producer.next_batch()
            existing = uow.bulk.lookup(following.serials())
            await importer.flush(batch.records, batch.secrets, found)
            batch = following
        await uow.bulk.drain()
    except BaseException:
        await uow.bulk.discard()
        raise
    problems = importer.problems
    if not problems and producer.records == 0:
        problems.add(Problem("the file has a header but no devices", line=2))
    if problems:
        raise problems.error()


async def _refresh_statistics(uow: UnitOfWork) -> None:
    """A large load leaves the planner's statistics describing the table before it (and
    autovacuum may be off, or minutes away): refresh them, best effort: the import has
    committed, so a failure here must not be reported as the import's."""
    try:
        async with uow:
            await uow.bulk.refresh_statistics()
            await uow.commit()
    except Exception as err:  # logged: the import itself succeeded
        log.warning("refreshing planner statistics after the import failed: %s", err)


@dataclass(slots=True)
class _Batch:
    records: list[ImportRecord]
    secrets: _Secrets
    problems: list[Problem]

    def __bool__(self) -> bool:
        return bool(self.records or self.problems)

    def serials(self) -> list[str]:
        return [r.serial for r in self.records]


class _Producer:
    """Turns the items of an import file into validated batches, with their ids and secrets;
    finds serials repeated within the file."""

    def __init__(
        self, items: Iterable[Item], batch_size: int, turn_every: int, secrets: bool = True
    ) -> None:
        self.items = iter(items)
        self.secrets = secrets  # False: a dry run, which makes no ids or secrets
        self.batch_size = batch_size
        self.turn_every = turn_every  # records between two turns of the event loop
        self.seen: dict[str, int] = {}
        self.records = 0

    async def next_batch(self) -> _Batch:
        records: list[ImportRecord] = []
        problems: list[Problem] = []
        seen = self.seen
        for n, item in enumerate(self.items, 1):
            if n % self.turn_every == 0:
                await asyncio.sleep(0)
            if isinstance(item, Problem):
                problems.append(item)
            else:
                rec = parse_record(item.values, item.columns, item.line)
                if isinstance(rec, list):
                    problems.extend(rec)
                else:
                    self.records += 1
                    first = seen.setdefault(rec.serial, rec.line)
                    if first == rec.line:
                        records.append(rec)
                    else:
                        problems.append(
                            Problem(
                                f"{rec.serial} is also on line {first}",
                                field="serial",
                                line=rec.line,
                            )
                        )
            if len(records) >= self.batch_size or len(problems) >= self.batch_size:
                break
        made = _make_secrets(records) if self.secrets else _Secrets([], [], [])
        return _Batch(records, made, problems)
