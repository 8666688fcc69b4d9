"""Request logs and Prometheus metrics for the HTTP server (the log's format: web/logs.py).

One log line per request (method, route template, status, duration) — never headers or
bodies, so no secret reaches a log. Metrics use a registry per app, so several apps (tests)
can live in one process.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("provisiond.http")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "provisiond_http_requests_total",
            "HTTP requests",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "provisiond_http_request_duration_seconds",
            "HTTP request duration",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
        )
        self.imported = Counter(
            "provisiond_devices_imported_total",
            "Devices registered by bulk imports",
            registry=self.registry,
        )
        self.import_failures = Counter(
            "provisiond_imports_refused_total",
            "Bulk imports refused for bad input",
            registry=self.registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count, time and log one request."""
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)
        if log.isEnabledFor(logging.INFO):
            log.info(
                "%s %s %s %.1f ms",
                method,
                route,
                status,
                seconds * 1000,
                extra={
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 2),
                },
            )


def route_template(app: Any, scope: Scope) -> str:
    """The template of the route that served ``scope`` (Starlette leaves the matched route
    in the scope); else the first route of ``app`` that matches it; else "unmatched"."""
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str) and path.startswith("/"):
        return path
    for route in getattr(app, "routes", []):
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return str(getattr(route, "path", scope["path"]))
    return "unmatched"


class RequestLogMiddleware:
    """Times every request; logs and counts it by route template (not raw path)."""

    def __init__(self, app: ASGIApp, *, router: Any, metrics: Metrics) -> None:
        self.app = app
        self.router = router
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.observe(
                scope["method"],
                route_template(self.router, scope),
                status,
                time.perf_counter() - started,
            )
