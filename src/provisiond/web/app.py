"""The ASGI application: admin API, health, readiness and metrics."""

from __future__ import annotations

import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import Receive, Scope, Send

from provisiond import __version__
from provisiond.errors import Unavailable
from provisiond.services import hashing
from provisiond.services.container import Container
from provisiond.services.health import check_ready
from provisiond.settings import Settings
from provisiond.web import coap, device_api, hooks, mqtt_listener, pages, pki, problems
from provisiond.web.api import (
    cas,
    devices,
    directory,
    events,
    imports,
    profiles,
    thingsboard,
    webhooks,
)
from provisiond.web.client_address import ClientAddresses
from provisiond.web.deps import ContainerDep
from provisiond.web.headers import BaselineHeadersMiddleware
from provisiond.web.limits import BodyLimits
from provisiond.web.observability import Metrics, RequestLogMiddleware, configure_logging

IMPORT_PATH = "/api/v1/devices/import"  # streams its body to disk, under its own limit
DESCRIPTION = """The provisiond admin API: devices, groups, users, the model catalogue,
operator tokens and bulk registration. Every route under /api/v1 needs an operator token
(`Authorization: Bearer pvd_…`, made with `provisiond tokens create`). Failures are RFC 9457
problem documents (`application/problem+json`) with a stable `code`."""


def build_app(
    settings: Settings, container_factory: Callable[[], AbstractAsyncContextManager[Container]]
) -> FastAPI:
    configure_logging(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        hashing.warm_up()  # before the first sign-in, so an unknown user's is no slower
        async with container_factory() as container:
            app.state.container = container
            s = container.settings
            context = (
                await coap.start(container, s.host, s.coap_port)
                if s.coap_port is not None
                else None
            )
            listener = (
                await mqtt_listener.start(
                    container, s.host, s.mqtt_port, _mqtt_tls(s), mqtt_listener.Limits.of(s)
                )
                if s.mqtt_enabled
                else None
            )
            app.state.mqtt_port = (
                listener.sockets[0].getsockname()[1] if listener is not None else None
            )
            try:
                async with container.background():
                    yield
            finally:
                if listener is not None:
                    listener.close()
                    await listener.wait_closed()
                if context is not None:
                    await context.shutdown()

    app = ProvisiondApp(
        title="provisiond",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.metrics = Metrics()
    if settings.trusted_proxies:
        app.client_addresses = ClientAddresses(settings.trusted_proxies)
    problems.install(app)
    # imports first: /devices/import is a static path
    for module in (
        imports,
        devices,
        directory,
        profiles,
        cas,
        webhooks,
        events,
        thingsboard,
        device_api,
        hooks,
        pki,
        pages,
    ):
        app.include_router(module.router)
    app.body_limits = BodyLimits(
        settings,
        operator_paths((imports, devices, directory, profiles, cas, webhooks, thingsboard)),
        import_path=IMPORT_PATH,
        provision_path=device_api.PROVISION_PATH,
    )
    app.mount("/static", StaticFiles(directory=pages.STATIC_DIR), name="static")
    _health_routes(app)
    app.add_middleware(RequestLogMiddleware, router=app.router, metrics=app.state.metrics)
    app.add_middleware(BaselineHeadersMiddleware)
    return app


class ProvisiondApp(FastAPI):
    """The FastAPI app, with the device API's hot path served first.

    ``POST /api/v1/provision`` is what a fleet of devices calls at once; FastAPI's routing,
    dependency injection and middleware stack cost several times the provisioning itself
    (benchmarks/provision_http.py), so that one path is answered here, by the same function
    the documented route calls, and counted in the same metrics.

    Before anything reads it, a request's client address is set to the client behind the
    trusted proxies, if any (web/client_address.py).
    """

    body_limits: BodyLimits | None = None
    client_addresses: ClientAddresses | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.client_addresses is not None and scope["type"] != "lifespan":
            self.client_addresses.rewrite(scope)
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
        elif self.body_limits is not None and self.body_limits.needs_guard(scope):
            await self.body_limits.guard(self._http, scope, receive, send)
        else:
            await self._http(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == device_api.PROVISION_PATH and scope["method"] == "POST":
            started = time.perf_counter()
            scope["app"] = self
            response = await device_api.provision_response(Request(scope, receive))
            await response(scope, receive, send)
            self.state.metrics.observe(
                "POST",
                device_api.PROVISION_PATH,
                response.status_code,
                time.perf_counter() - started,
            )
            return
        await super().__call__(scope, receive, send)


def operator_paths(modules: Iterable[Any]) -> set[str]:
    """The first three segments (``/api/v1/devices``) of the operator API's routes: their
    bodies get the operator's limit, every other route's the public one."""
    out = set()
    for module in modules:
        for route in module.router.routes:
            head = "/".join(route.path.split("/", 4)[:4])
            if "{" not in head:
                out.add(head)
    return out


def _health_routes(app: FastAPI) -> None:
    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """The process is alive (no dependency is checked)."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], responses=problems.responses(Unavailable))
    async def readyz(c: ContainerDep) -> dict[str, str]:
        """The database answers: this instance can take traffic."""
        await check_ready(c.uow())
        return {"status": "ready"}

    @app.get("/metrics", tags=["operations"], response_class=Response)
    async def metrics(request: Request) -> Response:
        """Prometheus metrics of this process."""
        registry: Any = request.app.state.metrics.registry
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def _mqtt_tls(settings: Settings) -> ssl.SSLContext | None:
    if settings.mqtt_tls_cert is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.mqtt_tls_cert, settings.mqtt_tls_key)
    return context
