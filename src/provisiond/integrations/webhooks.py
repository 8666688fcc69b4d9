"""Webhook deliveries over HTTP (aiohttp: its client keeps up with a thousand deliveries a
second on one core, where httpx's pool spends most of its time scheduling). One pooled
session, no redirects followed."""

from __future__ import annotations

import asyncio

import aiohttp

from provisiond import __version__
from provisiond.services.webhooks import SendFailed


class HttpSender:
    def __init__(self, timeout: float, *, connections: int = 100) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:  # made inside the running loop
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(limit=self._connections, limit_per_host=0),
                headers={"User-Agent": f"provisiond-webhooks/{__version__}"})
        return self._session

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        try:
            async with self._open().post(url, data=body, headers=headers,
                                         allow_redirects=False) as response:
                await response.read()
                return response.status
        except TimeoutError as err:
            raise SendFailed("no answer in time") from err
        except (aiohttp.ClientError, OSError) as err:
            raise SendFailed(f"cannot reach the receiver: {err or type(err).__name__}") from err

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            await asyncio.sleep(0)  # let the connector's transports close
            self._session = None
