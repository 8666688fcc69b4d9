"""Webhook deliveries over HTTP (httpx): one pooled client, no redirects followed."""

from __future__ import annotations

import httpx

from provisiond import __version__
from provisiond.services.webhooks import SendFailed


class HttpSender:
    def __init__(self, timeout: float, *, connections: int = 100) -> None:
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout), follow_redirects=False,
            limits=httpx.Limits(max_connections=connections,
                                max_keepalive_connections=connections),
            headers={"User-Agent": f"provisiond-webhooks/{__version__}"})

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        try:
            response = await self._client.post(url, content=body, headers=headers)
        except httpx.TimeoutException as err:
            raise SendFailed(f"no answer in time ({type(err).__name__})") from err
        except httpx.HTTPError as err:
            raise SendFailed(f"cannot reach the receiver: {err or type(err).__name__}") from err
        await response.aclose()
        return response.status_code

    async def close(self) -> None:
        await self._client.aclose()
