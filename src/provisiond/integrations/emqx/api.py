"""EMQX 5's REST API (``/api/v5``), for ending a device's sessions.

Authenticated with an API key and its secret key as HTTP Basic credentials (EMQX's
*System → API Key*). A user name's sessions are found with ``GET /api/v5/clients?username=``
(paged: ``page``, ``limit``; the answer's ``meta.hasnext``) and each is kicked with
``DELETE /api/v5/clients/{clientid}``, which disconnects the client and discards its session
(``204``; ``404 CLIENTID_NOT_FOUND`` when it went meanwhile). Errors are ``{"code",
"message"}``. Messages never hold the user name: with ``token_as_username`` it is a token.
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import quote

import httpx

from provisiond import __version__
from provisiond.errors import BrokerUnavailable

PAGE_LIMIT = 100  # clients per page
MAX_PAGES = 100  # a user name with more sessions than this is not a device's


class EmqxApi:
    def __init__(
        self, url: str, key: str, secret: str, *, timeout: float, tls: ssl.SSLContext | None = None
    ) -> None:
        self._url = url.rstrip("/")
        self._client = httpx.AsyncClient(
            base_url=self._url,
            auth=httpx.BasicAuth(key, secret),
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            verify=tls or True,
            headers={"Accept": "application/json", "User-Agent": f"provisiond/{__version__}"},
        )

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> httpx.Response:
        try:
            response = await self._client.request(method, path, params=params)
        except httpx.TimeoutException:
            raise BrokerUnavailable(f"EMQX's API at {self._url} did not answer in time") from None
        except httpx.HTTPError as err:
            raise BrokerUnavailable(
                f"cannot reach EMQX's API at {self._url}: {type(err).__name__}"
            ) from None
        if response.status_code in ok:
            return response
        code, message = _error(response)
        if response.status_code in (401, 403):
            raise BrokerUnavailable(
                f"EMQX's API refused provisiond (HTTP {response.status_code} {code}: "
                f"{message}): check broker__emqx_api_key and broker__emqx_api_secret, and "
                "that the key may manage clients"
            )
        raise BrokerUnavailable(
            f"EMQX's API answered {method} {path.split('?')[0]} with "
            f"HTTP {response.status_code} {code}: {message}"
        )

    async def sessions(self, username: str) -> list[str]:
        """The client ids of every session with this user name."""
        out: list[str] = []
        for page in range(1, MAX_PAGES + 1):
            response = await self._request(
                "GET",
                "/api/v5/clients",
                params={"username": username, "page": page, "limit": PAGE_LIMIT},
            )
            body = _json(response)
            data = body.get("data")
            if not isinstance(data, list):
                raise BrokerUnavailable(
                    "EMQX's API answered GET /api/v5/clients without a data list"
                )
            out += [
                c["clientid"]
                for c in data
                if isinstance(c, dict)
                and c.get("username") == username
                and isinstance(c.get("clientid"), str)
            ]
            meta = body.get("meta")
            if not (isinstance(meta, dict) and meta.get("hasnext") is True):
                break
        return list(dict.fromkeys(out))

    async def kick_username(self, username: str) -> int:
        """End every session of this user name; how many there were."""
        kicked = 0
        for client_id in await self.sessions(username):
            response = await self._request(
                "DELETE", f"/api/v5/clients/{quote(client_id, safe='')}", ok=(204, 404)
            )
            kicked += response.status_code == 204
        return kicked

    async def close(self) -> None:
        await self._client.aclose()


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise BrokerUnavailable("EMQX's API answered with something that is not a JSON object")
    return body


def _error(response: httpx.Response) -> tuple[str, str]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        return str(body.get("code", "")), str(body.get("message", ""))[:200]
    return "", response.text[:200]
