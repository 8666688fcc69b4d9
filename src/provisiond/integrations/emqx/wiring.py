"""EMQX's sessions, ended through its REST API (``broker__kind=emqx`` with
``broker__emqx_api_url``), registered. EMQX's authentication and authorisation hooks are
web/hooks.py over services/mqtt_auth.py (web does not import integrations)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from provisiond.errors import BrokerNotConfigured
from provisiond.integrations.emqx.sessions import EmqxSessions
from provisiond.integrations.integration import Integration, Wiring, account_keeper_loops
from provisiond.services.broker_keeper import AccountKeeper
from provisiond.settings import Settings


def _enabled(settings: Settings) -> bool:
    return settings.broker.emqx_api


def _seals(settings: Settings) -> bool:
    """Sessions are named by the MQTT secret itself with token_as_username."""
    return settings.broker.emqx_api and settings.broker.token_as_username


@asynccontextmanager
async def open_emqx(c: Wiring) -> AsyncIterator[EmqxSessions]:
    """The EMQX sessions' keeper, with its API client (closed after)."""
    from provisiond.integrations.emqx.api import EmqxApi
    from provisiond.integrations.mqtt import tls_context

    b = c.settings.broker
    if b.emqx_api_url is None or b.emqx_api_key is None or b.emqx_api_secret is None:
        raise BrokerNotConfigured(
            "broker__emqx_api_url needs broker__emqx_api_key and broker__emqx_api_secret"
        )  # the settings refuse it too
    tls = (
        tls_context(b.tls_ca_file, b.tls_cert_file, b.tls_key_file)
        if b.emqx_api_url.startswith("https:")
        else None
    )
    api = EmqxApi(
        b.emqx_api_url,
        b.emqx_api_key,
        b.emqx_api_secret.get_secret_value(),
        timeout=b.timeout_seconds,
        tls=tls,
    )
    # names that are no token are recorded in clear: no passphrase is needed for them
    sealer = c.sealer if b.token_as_username or c.settings.device_key_passphrase else None
    try:
        yield EmqxSessions(
            c.uow,
            api,
            sealer,
            b.topic_prefix,
            c.now,
            token_as_username=b.token_as_username,
        )
    finally:
        await api.close()


EMQX: Integration[AccountKeeper] = Integration(
    "emqx",
    enabled=_enabled,
    open=open_emqx,
    loops=account_keeper_loops,
    work="broker",
    seals_secrets=_seals,
)
