"""The ASGI application: admin API, health, readiness and metrics.

The device API's routes (transports/http) are not this package's: bootstrap.py hands them to
:func:`build_app`, with the provisioning path to answer first (:class:`FastRoute`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles
from starlette.routing import BaseRoute
from starlette.types import Receive, Scope, Send

from provisiond import __version__
from provisiond.errors import ProvisiondError, Unavailable
from provisiond.services import hashing
from provisiond.services.background import Background
from provisiond.services.container import Container
from provisiond.services.health import check_ready
from provisiond.settings import Settings
from provisiond.web import hooks, pages, pki, problems
from provisiond.web.api import (
    cas,
    devices,
    directory,
    events,
    imports,
    people,
    profiles,
    thingsboard,
    webhooks,
)
from provisiond.web.client_address import ClientAddresses
from provisiond.web.deps import ContainerDep
from provisiond.web.headers import BASELINE_HEADERS, BaselineHeadersMiddleware
from provisiond.web.limits import BodyLimits
from provisiond.web.logs import configure_logging
from provisiond.web.metrics import add_route as add_metrics_route
from provisiond.web.metrics import own_listener
from provisiond.web.observability import Metrics, RequestLogMiddleware

IMPORT_PATH = "/api/v1/devices/import"  # streams its body to disk, under its own limit
DESCRIPTION = """The provisiond admin API: devices, groups, users, the model catalogue,
operator tokens and bulk registration. Every route under /api/v1 needs an operator token
(`Authorization: Bearer pvd_…`, made with `provisiond tokens create`). Failures are RFC 9457
problem documents (`application/problem+json`) with a stable `code`."""
log = logging.getLogger("provisiond.http")


@dataclass(frozen=True, slots=True)
class FastRoute:
    """A ``POST`` path answered before the app's routing and middleware (the device API's
    provisioning): ``answer`` renders the success; a failure it raises is answered here as a
    problem document, and either gets the baseline headers."""

    path: str
    answer: Callable[[Request], Awaitable[Response]]


API_MODULES = (  # imports first: /devices/import is a static path
    imports,
    devices,
    directory,
    people,
    profiles,
    cas,
    webhooks,
    events,
    thingsboard,
)


def _route_table(device_routers: tuple[APIRouter, ...]) -> tuple[BaseRoute, ...]:
    """The admin API's routes, then the device API's, then the hooks', PKI's and pages',
    included once per process and shared by every app built in it.

    FastAPI prepares an included router's routes (their dependencies, request and response
    models, handlers) for the inclusion that holds them, on the first request that looks
    through it: about 40 ms of CPU for provisiond's, once per app. A process serves one app;
    the test suite builds hundreds in each of its processes. The routes depend on no
    setting: what differs between apps (the container, the limits, the fast route) is on
    the app. Nothing here overrides dependencies (``app.dependency_overrides``), which an
    app would otherwise lend its inclusions."""
    key = tuple(id(r) for r in device_routers)  # APIRouter is not hashable
    if key in _ROUTE_TABLES:
        return _ROUTE_TABLES[key][1]
    table = APIRouter()
    for module in API_MODULES:
        table.include_router(module.router)
    for router in device_routers:
        table.include_router(router)
    for module in (hooks, pki, pages):
        table.include_router(module.router)
    _ROUTE_TABLES[key] = (device_routers, tuple(table.routes))  # keeps the routers, so ids hold
    return _ROUTE_TABLES[key][1]


_ROUTE_TABLES: dict[tuple[int, ...], tuple[tuple[APIRouter, ...], tuple[BaseRoute, ...]]] = {}


def build_app(
    settings: Settings,
    container_factory: Callable[[], AbstractAsyncContextManager[Container]],
    *,
    device_routers: Sequence[APIRouter] = (),
    fast_route: FastRoute | None = None,
) -> FastAPI:
    """The app; ``device_routers`` are served after the admin API (bootstrap gives the
    device API's), ``fast_route`` before everything."""
    configure_logging(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        hashing.warm_up()  # before the first sign-in, so an unknown user's is no slower
        metrics: Metrics = app.state.metrics
        async with container_factory() as container:
            app.state.container = container
            async with (
                container.background() as background,
                own_listener(settings, metrics, container) as metrics_port,
            ):
                if isinstance(background, Background):
                    metrics.held_by(background.holder)
                app.state.metrics_port = metrics_port
                yield

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
    app.router.routes.extend(_route_table(tuple(device_routers)))
    app.fast_route = fast_route
    app.body_limits = BodyLimits(
        settings,
        operator_paths((imports, devices, directory, profiles, cas, webhooks, thingsboard))
        | {CONSOLE_IMPORT_PATH},  # an admin's file, as large as the operator API's bodies
        import_path=IMPORT_PATH,
        provision_path=fast_route.path if fast_route else None,
        counts=app.state.metrics,
    )
    app.mount("/static", StaticFiles(directory=pages.STATIC_DIR), name="static")
    _health_routes(app)
    add_metrics_route(app, settings)
    app.add_middleware(RequestLogMiddleware, router=app.router, metrics=app.state.metrics)
    app.add_middleware(BaselineHeadersMiddleware)
    return app


class ProvisiondApp(FastAPI):
    """The FastAPI app, with the device API's hot path served first.

    ``POST /api/v1/provision`` is what a fleet of devices calls at once; FastAPI's routing,
    dependency injection and middleware stack cost several times the provisioning itself
    (benchmarks/provision_http.py), so that one path (the :class:`FastRoute`) is answered
    here, by the same function the documented route calls, and counted in the same metrics.

    Before anything reads it, a request's client address is set to the client behind the
    trusted proxies, if any (web/client_address.py).
    """

    body_limits: BodyLimits | None = None
    client_addresses: ClientAddresses | None = None
    fast_route: FastRoute | None = None

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            self.openapi_schema = problems.add_problem_schemas(super().openapi())
        return self.openapi_schema

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
        fast = self.fast_route
        if fast is not None and scope["path"] == fast.path and scope["method"] == "POST":
            started = time.perf_counter()
            scope["app"] = self
            response = await _answer_first(fast, Request(scope, receive))
            await response(scope, receive, send)
            self.state.metrics.observe(
                "POST", fast.path, response.status_code, time.perf_counter() - started
            )
            return
        await super().__call__(scope, receive, send)


async def _answer_first(fast: FastRoute, request: Request) -> Response:
    """The fast route's answer; its failures answered as the exception handlers would."""
    try:
        response = await fast.answer(request)
    except ProvisiondError as err:
        return problems.problem_response(err, request)
    except Exception as err:
        log.error("unexpected failure on POST %s", fast.path, exc_info=err)
        return problems.problem_response(
            ProvisiondError("an unexpected error happened; it was logged"), request
        )
    # served before the middleware (BaselineHeadersMiddleware): the headers are set here
    response.headers.update(BASELINE_HEADERS)
    return response


#: The console's import form: its body gets the operator API's limit, not a public page's.
CONSOLE_IMPORT_PATH = "/import"


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
