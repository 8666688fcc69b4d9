"""``/metrics``: on the HTTP server's port, or on a listener of its own (``metrics__port``),
behind a bearer token when ``metrics__token`` is set.

The listener of its own is an aiohttp site in the server's event loop: it serves
``GET /metrics`` and nothing else, so a port reachable from the monitoring network only
shows nothing but the metrics.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from provisiond.errors import RouteNotFound, Unauthenticated
from provisiond.services.hashing import hash_token, tokens_equal
from provisiond.settings import Settings
from provisiond.web import problems
from provisiond.web.deps import ContainerDep
from provisiond.web.observability import Metrics

log = logging.getLogger("provisiond.http")
PATH = "/metrics"


def allowed(settings: Settings, authorization: str | None) -> bool:
    """Whether a request with this Authorization header may read the metrics (the token
    compared by its SHA-256, in constant time)."""
    token = settings.metrics.token
    if token is None:
        return True
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return False
    return tokens_equal(hash_token(given.strip()), hash_token(token.get_secret_value()))


def add_route(app: FastAPI, settings: Settings) -> None:
    @app.get(
        PATH,
        tags=["operations"],
        response_class=Response,
        responses=problems.responses(Unauthenticated, RouteNotFound),
    )
    async def metrics(request: Request, c: ContainerDep) -> Response:
        """Prometheus metrics (docs/operations.md lists them): this process's counters and
        what waits in the database. With `metrics__token`: `Authorization: Bearer TOKEN`.
        With `metrics__port`: served on that port only (404 here)."""
        if settings.metrics.port is not None:
            raise RouteNotFound(f"no route {PATH}: the metrics are served on their own port")
        if not allowed(settings, request.headers.get("authorization")):
            raise Unauthenticated("send Authorization: Bearer <metrics__token>")
        body = await request.app.state.metrics.scrape(c)
        return Response(body, media_type=CONTENT_TYPE_LATEST)


@asynccontextmanager
async def own_listener(
    settings: Settings, metrics: Metrics, container: Any
) -> AsyncIterator[int | None]:
    """The metrics' own listener when ``metrics__port`` is set; yields the port bound
    (None: none)."""
    port = settings.metrics.port
    if port is None:
        yield None
        return

    async def scrape(request: web.Request) -> web.Response:
        if not allowed(settings, request.headers.get("Authorization")):
            return web.Response(
                status=401,
                text="send Authorization: Bearer <metrics__token>\n",
                headers={"WWW-Authenticate": 'Bearer realm="provisiond"'},
            )
        body = await metrics.scrape(container)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application(client_max_size=1024)
    app.router.add_get(PATH, scrape, allow_head=False)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        host = settings.metrics.host or settings.host
        await web.TCPSite(runner, host, port).start()
        bound = int(runner.addresses[0][1])  # the port taken (0 asks for any)
        log.info("metrics on http://%s:%d%s", host, bound, PATH)
        yield bound
    finally:
        await runner.cleanup()
