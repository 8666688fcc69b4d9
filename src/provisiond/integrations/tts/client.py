"""The Things Stack's HTTP API (httpx), authenticated with an API key."""

from __future__ import annotations

from typing import Any

import httpx

from provisiond import __version__
from provisiond.integrations.tts.protocol import Answer, Call


class HttpTtsClient:
    def __init__(self, url: str, api_key: str, *, timeout: float) -> None:
        self._client = httpx.AsyncClient(
            base_url=url.rstrip("/"),
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            headers={
                "Authorization": f"Bearer {api_key}",
                "Accept": "application/json",
                "User-Agent": f"provisiond/{__version__}",
            },
        )

    async def call(self, call: Call) -> Answer:
        try:
            response = await self._client.request(call.method, call.path, json=call.body)
        except httpx.TimeoutException:
            return Answer(None, "no answer in time")
        except httpx.HTTPError as err:
            return Answer(None, f"cannot reach The Things Stack: {err or type(err).__name__}")
        text = response.text[:300]
        body: Any = None
        try:  # The Things Stack's errors: {"code": …, "message": "error:…", "details": […]}
            body = response.json()
            if isinstance(body, dict) and isinstance(body.get("message"), str):
                text = body["message"][:300]
        except ValueError:
            pass
        return Answer(response.status_code, text, body)

    async def close(self) -> None:
        await self._client.aclose()
