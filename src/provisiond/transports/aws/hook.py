"""The pre-provisioning hook's HTTP client: POST the request as JSON, read the JSON answer
(services/aws_fleet.py decides what it means). With ``aws__hook_secret`` each request
carries ``X-Provisiond-Signature: sha256=<hex HMAC-SHA256 of the body>``."""

from __future__ import annotations

import hashlib
import hmac

import httpx
import orjson

from provisiond.services.aws_fleet import HookFailed

MAX_ANSWER_BYTES = 64 * 1024


class HookClient:
    def __init__(self, secret: str | None, timeout: float) -> None:
        self.secret = secret.encode() if secret else None
        # the service's deadline cancels the request; httpx's own is a backstop
        self.client = httpx.AsyncClient(timeout=timeout + 1, follow_redirects=False)

    async def ask(self, url: str, body: dict[str, object]) -> object:
        content = orjson.dumps(body)
        headers = {"Content-Type": "application/json"}
        if self.secret is not None:
            digest = hmac.new(self.secret, content, hashlib.sha256).hexdigest()
            headers["X-Provisiond-Signature"] = f"sha256={digest}"
        try:
            async with self.client.stream("POST", url, content=content, headers=headers) as r:
                if not 200 <= r.status_code < 300:
                    raise HookFailed(f"the hook answered HTTP {r.status_code}")
                answer = bytearray()
                async for chunk in r.aiter_bytes():
                    answer += chunk
                    if len(answer) > MAX_ANSWER_BYTES:
                        raise HookFailed(f"the hook's answer is over {MAX_ANSWER_BYTES} bytes")
        except httpx.HTTPError as err:
            raise HookFailed(f"the hook could not be asked: {err!r}") from None
        try:
            return orjson.loads(answer)
        except orjson.JSONDecodeError:
            raise HookFailed("the hook's answer is not JSON") from None

    async def close(self) -> None:
        await self.client.aclose()
