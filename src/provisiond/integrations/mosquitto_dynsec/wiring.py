"""Mosquitto's dynamic security plugin (``broker__kind=mosquitto-dynsec``), registered."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from provisiond.errors import BrokerNotConfigured
from provisiond.integrations.integration import (
    NO_BROKER_KEPT,
    Integration,
    Wiring,
    account_keeper_loops,
)
from provisiond.integrations.mosquitto_dynsec.keeper import BrokerSync
from provisiond.services.broker_keeper import AccountKeeper
from provisiond.settings import BrokerKind, Settings


def _enabled(settings: Settings) -> bool:
    return settings.broker.kind is BrokerKind.MOSQUITTO_DYNSEC


@asynccontextmanager
async def open_dynsec(c: Wiring) -> AsyncIterator[BrokerSync]:
    """The dynamic security reconciler, connected (BrokerNotConfigured without broker__url)."""
    from provisiond.integrations.mosquitto_dynsec.admin import DynsecAdmin
    from provisiond.integrations.mqtt import tls_context

    b = c.settings.broker
    if b.password_url is None:
        raise BrokerNotConfigured(NO_BROKER_KEPT)
    tls = (
        tls_context(b.tls_ca_file, b.tls_cert_file, b.tls_key_file)
        if b.password_url.startswith("mqtts:")
        else None
    )
    admin = DynsecAdmin(b.password_url, timeout=b.timeout_seconds, tls=tls)
    try:
        yield BrokerSync(
            c.uow,
            admin,
            c.sealer,
            b.topic_prefix,
            c.now,
            token_as_username=b.token_as_username,
            namespace=b.namespace,
        )
    finally:
        await admin.close()


MOSQUITTO_DYNSEC: Integration[AccountKeeper] = Integration(
    "mosquitto-dynsec",
    enabled=_enabled,
    open=open_dynsec,
    loops=account_keeper_loops,
    work="broker",
    seals_secrets=_enabled,  # Mosquitto is given the accounts' passwords
)
