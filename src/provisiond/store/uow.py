"""The unit of work: one transaction, with every repository bound to it.

    async with uow:                # a write transaction (BEGIN IMMEDIATE on SQLite)
        ...
        await uow.commit()         # leaving without commit rolls back

    async with uow.read():         # a read-only transaction
        ...

Driver failures that mean the database is gone or locked become
:class:`~provisiond.errors.Unavailable`; a unique-constraint race becomes the ``conflict``
given to :meth:`UnitOfWork.conflicts_as`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Self

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from provisiond.errors import ProvisiondError, Unavailable
from provisiond.store.aws import AwsRepository
from provisiond.store.backlog import BacklogRepository
from provisiond.store.bulk import BulkDeviceWriter
from provisiond.store.certificates import CertificateRepository
from provisiond.store.claims import AssociationRepository, ClaimRepository
from provisiond.store.database import DatabaseOptions, translate
from provisiond.store.devices import CredentialRepository, DeviceRepository, EventRepository
from provisiond.store.directory import (
    GroupRepository,
    ModelRepository,
    TokenRepository,
    UserRepository,
)
from provisiond.store.dps import DpsRepository
from provisiond.store.insights import InsightRepository
from provisiond.store.integrations import (
    BrokerRepository,
    LeaseRepository,
    OutboxRepository,
    PendingWork,
)
from provisiond.store.invitations import InvitationRepository
from provisiond.store.profiles import CaRepository, ProfileRepository
from provisiond.store.provision_writer import ProvisionWriter
from provisiond.store.sessions import SessionRepository
from provisiond.store.summaries import SummaryRepository
from provisiond.store.tts import TtsRepository
from provisiond.store.webhooks import WebhookRepository


class UnitOfWork:
    groups: GroupRepository
    users: UserRepository
    models: ModelRepository
    tokens: TokenRepository
    profiles: ProfileRepository
    cas: CaRepository
    certificates: CertificateRepository
    devices: DeviceRepository
    credentials: CredentialRepository
    events: EventRepository
    bulk: BulkDeviceWriter
    claims: ClaimRepository
    sessions: SessionRepository
    insights: InsightRepository
    summaries: SummaryRepository
    outbox: OutboxRepository
    broker: BrokerRepository
    leases: LeaseRepository
    webhooks: WebhookRepository
    tts: TtsRepository
    associations: AssociationRepository
    backlog: BacklogRepository
    invitations: InvitationRepository
    dps: DpsRepository
    aws: AwsRepository

    def __init__(self, engine: AsyncEngine, writer: asyncio.Lock | None = None) -> None:
        self._engine = engine
        self._writer = writer
        self._holds_writer = False
        self._conn: AsyncConnection | None = None
        self._conflict: ProvisiondError | None = None

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    def conflicts_as(self, error: ProvisiondError) -> None:
        """Report a unique-constraint violation during this transaction as ``error``."""
        self._conflict = error

    async def _open(self, write: bool) -> None:
        if self._conn is not None:
            raise RuntimeError("a unit of work is used for one transaction only")
        if write and self._writer is not None:
            await self._writer.acquire()
            self._holds_writer = True
        try:
            conn = await self._engine.connect()
            try:
                if write:
                    conn = await conn.execution_options(provisiond_write=True)
                await conn.begin()
            except BaseException:
                await conn.close()
                raise
        except BaseException as err:
            self._release_writer()
            if isinstance(err, DBAPIError):
                raise (translate(err) or Unavailable(str(err))) from err
            if isinstance(err, OSError):
                raise Unavailable(f"the database is unavailable: {err}") from err
            raise
        self._conn = conn
        self.groups = GroupRepository(conn)
        self.users = UserRepository(conn)
        self.models = ModelRepository(conn)
        self.tokens = TokenRepository(conn)
        self.profiles = ProfileRepository(conn)
        self.cas = CaRepository(conn)
        self.certificates = CertificateRepository(conn)
        self.devices = DeviceRepository(conn)
        self.credentials = CredentialRepository(conn)
        self.events = EventRepository(conn)
        self.bulk = BulkDeviceWriter(conn)
        self.claims = ClaimRepository(conn)
        self.sessions = SessionRepository(conn)
        self.insights = InsightRepository(conn)
        self.summaries = SummaryRepository(conn)
        self.outbox = OutboxRepository(conn)
        self.broker = BrokerRepository(conn)
        self.leases = LeaseRepository(conn)
        self.webhooks = WebhookRepository(conn)
        self.tts = TtsRepository(conn)
        self.associations = AssociationRepository(conn)
        self.backlog = BacklogRepository(conn)
        self.invitations = InvitationRepository(conn)
        self.dps = DpsRepository(conn)
        self.aws = AwsRepository(conn)

    def _release_writer(self) -> None:
        if self._holds_writer and self._writer is not None:
            self._holds_writer = False
            self._writer.release()

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        try:
            if conn is None:
                return
            try:
                if conn.in_transaction():
                    await conn.rollback()
            finally:
                await conn.close()
        finally:
            self._release_writer()

    async def __aenter__(self) -> Self:
        await self._open(write=True)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._close()
        except DBAPIError:
            if exc is None:
                raise
        if isinstance(exc, IntegrityError) and self._conflict is not None:
            raise self._conflict from exc
        if isinstance(exc, DBAPIError):
            translated = translate(exc)
            if translated is not None:
                raise translated from exc

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Self]:
        await self._open(write=False)
        try:
            yield self
        except DBAPIError as err:
            translated = translate(err)
            if translated is not None:
                raise translated from err
            raise
        finally:
            await self._close()

    def pending(self, kind: str) -> PendingWork:
        """The devices integration ``kind`` must bring in step ("broker", "tts")."""
        if self._conn is None:
            raise RuntimeError("pending work outside a transaction")
        return PendingWork(self._conn, kind)

    async def ping(self) -> None:
        """Round-trip to the database (readiness checks)."""
        if self._conn is None:
            raise RuntimeError("ping outside a transaction")
        await self._conn.execute(text("SELECT 1"))

    async def commit(self) -> None:
        if self._conn is None:
            raise RuntimeError("commit outside a transaction")
        await self._conn.commit()


class Database:
    """The engine, a factory of units of work, and the provisioning writer. One per process."""

    def __init__(self, engine: AsyncEngine, options: DatabaseOptions | None = None) -> None:
        self.engine = engine
        # Self-provisioning's write path: its own thread and connection, started on first use.
        self.provision_writer = ProvisionWriter(engine.url, options or DatabaseOptions())
        # SQLite has one writer at a time. Writers of this process queue here, in order and
        # without polling, instead of in SQLite's busy handler (which sleeps and retries:
        # under load its waits reach 100 ms and writers starve). Other processes still meet
        # at the file lock (busy_timeout).
        self._writer = asyncio.Lock() if engine.dialect.name == "sqlite" else None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.engine, self._writer)

    async def dispose(self) -> None:
        await self.provision_writer.close()
        await self.engine.dispose()
