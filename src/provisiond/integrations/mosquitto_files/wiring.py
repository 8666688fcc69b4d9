"""Mosquitto's password and ACL files (``broker__kind=mosquitto-files``), registered."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from provisiond.errors import BrokerNotConfigured
from provisiond.integrations.integration import Integration, Wiring, account_keeper_loops
from provisiond.integrations.mosquitto_files.keeper import FileBrokerSync
from provisiond.services.broker_keeper import AccountKeeper
from provisiond.settings import BrokerKind, Settings


def _enabled(settings: Settings) -> bool:
    return settings.broker.kind is BrokerKind.MOSQUITTO_FILES


@asynccontextmanager
async def open_files(c: Wiring) -> AsyncIterator[FileBrokerSync]:
    """The files' keeper (nothing to connect: it writes the files and has Mosquitto reload)."""
    from provisiond.integrations.mosquitto_files.files import MosquittoFiles

    b = c.settings.broker
    if b.password_file is None or b.acl_file is None:  # the settings refuse it too
        raise BrokerNotConfigured(
            "broker__kind=mosquitto-files needs broker__password_file and broker__acl_file"
        )
    files = MosquittoFiles(
        b.password_file,
        b.acl_file,
        pid_file=b.pid_file,
        reload_command=b.reload_command,
        timeout=b.timeout_seconds,
        namespace=b.namespace,
    )
    yield FileBrokerSync(
        c.uow,
        files,
        c.sealer,
        b.topic_prefix,
        c.now,
        reload_interval=b.reload_interval_seconds,
        token_as_username=b.token_as_username,
    )


MOSQUITTO_FILES: Integration[AccountKeeper] = Integration(
    "mosquitto-files",
    enabled=_enabled,
    open=open_files,
    loops=account_keeper_loops,
    work="broker",
    seals_secrets=_enabled,  # the files hold the accounts' password hashes
)
