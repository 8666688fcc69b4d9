"""The Things Stack (``tts__url``), registered."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from provisiond.errors import TtsNotConfigured
from provisiond.integrations.integration import Integration, Wiring
from provisiond.integrations.tts.sync import Addresses, TtsSync
from provisiond.services.background import Loop
from provisiond.settings import Settings


def _enabled(settings: Settings) -> bool:
    return settings.tts.enabled


@asynccontextmanager
async def open_tts(c: Wiring) -> AsyncIterator[TtsSync]:
    """The Things Stack registrar (TtsNotConfigured without tts__url)."""
    from provisiond.integrations.tts.client import HttpTtsClient

    t = c.settings.tts
    if t.url is None or t.api_key is None:
        raise TtsNotConfigured(
            "The Things Stack is not configured: set tts__url and "
            "tts__api_key (PROVISIOND_TTS__URL, PROVISIOND_TTS__API_KEY)"
        )
    client = HttpTtsClient(t.url, t.api_key.get_secret_value(), timeout=t.timeout_seconds)
    try:
        yield TtsSync(
            c.uow,
            client,
            c.sealer,
            t.network,
            Addresses(
                t.address(t.network_server_address),
                t.address(t.application_server_address),
                t.address(t.join_server_address),
            ),
            c.now,
        )
    finally:
        await client.close()


def _loops(tts: TtsSync, settings: Settings) -> list[Loop]:  # noqa: ARG001
    return [Loop("tts", tts.apply_pending, idle=0.5)]


TTS: Integration[TtsSync] = Integration(
    "tts", enabled=_enabled, open=open_tts, loops=_loops, work="tts"
)
