"""The composition root: settings -> engine -> services -> HTTP app / CLI.

Nothing else builds engines or reads settings; adapters receive what they need from here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING

from provisiond.services.accounts import SessionPolicy
from provisiond.services.certificates import SignerCache
from provisiond.services.claim_hub import ClaimHub
from provisiond.services.claiming import ClaimPolicy
from provisiond.services.provisioning import ProvisionPolicy, policy_from
from provisiond.services.ratelimit import RateLimiter
from provisiond.settings import Settings
from provisiond.store import migrate
from provisiond.store.database import DatabaseOptions, create_engine
from provisiond.store.provision_writer import ProvisionWriter
from provisiond.store.uow import Database, UnitOfWork

if TYPE_CHECKING:
    from fastapi import FastAPI


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Container:
    settings: Settings
    database: Database
    clock: Callable[[], datetime] = field(default=utc_now)
    limiter: RateLimiter = field(default_factory=RateLimiter)
    signers: SignerCache = field(default_factory=SignerCache)
    hub: ClaimHub = field(default_factory=ClaimHub)

    def uow(self) -> UnitOfWork:
        return self.database.uow()

    @property
    def provision_writer(self) -> ProvisionWriter:
        return self.database.provision_writer

    @cached_property
    def provision_policy(self) -> ProvisionPolicy:
        """The provisioning rules' settings, the same for every transport (made once)."""
        s = self.settings
        return policy_from(s.provision_retry_window_seconds,
                           s.provision_unknown_source_rate_per_minute, s.ca_passphrase,
                           self.signers)

    @cached_property
    def claim_policy(self) -> ClaimPolicy:
        s = self.settings
        return ClaimPolicy(s.claim_proof, s.claim_window_seconds, s.claim_rate_per_minute,
                           s.claim_code_attempts_per_minute)

    @cached_property
    def session_policy(self) -> SessionPolicy:
        s = self.settings
        return SessionPolicy(timedelta(hours=s.session_hours),
                             timedelta(minutes=s.session_idle_minutes),
                             s.login_failures_before_lockout,
                             timedelta(minutes=s.login_lockout_minutes),
                             s.login_rate_per_minute)

    def now(self) -> datetime:
        return self.clock()


def build_database(settings: Settings) -> Database:
    options = DatabaseOptions(
        sqlite_synchronous=settings.sqlite_synchronous.value,
        sqlite_busy_timeout_ms=settings.sqlite_busy_timeout_ms,
        pool_size=settings.database_pool_size,
    )
    return Database(create_engine(settings.effective_database_url, options), options)


@asynccontextmanager
async def open_container(settings: Settings, *, check_schema: bool = True
                         ) -> AsyncIterator[Container]:
    """A container for one CLI command or one server process; closes the engine after."""
    if check_schema:
        migrate.check_current(settings.effective_database_url)
    database = build_database(settings)
    try:
        yield Container(settings, database)
    finally:
        await database.dispose()


def check_database(settings: Settings) -> None:
    """Raise SchemaOutdated unless the schema is at this version's head."""
    migrate.check_current(settings.effective_database_url)


def upgrade_database(settings: Settings, revision: str = "head") -> None:
    migrate.upgrade(settings.effective_database_url, revision)


def downgrade_database(settings: Settings, revision: str) -> None:
    migrate.downgrade(settings.effective_database_url, revision)


def database_revision(settings: Settings) -> tuple[str | None, str]:
    return migrate.current_revision(settings.effective_database_url), migrate.head_revision()


def create_app(settings: Settings) -> FastAPI:
    """The ASGI app, with its own container opened at startup and closed at shutdown."""
    from provisiond.web.app import build_app

    app: FastAPI = build_app(settings, lambda: open_container(settings))
    return app
