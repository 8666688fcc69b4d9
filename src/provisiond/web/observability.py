"""Request logs and Prometheus metrics for the HTTP server (the log's format: web/logs.py).

One log line per request (method, route template, status, duration) — never headers or
bodies, so no secret reaches a log. Metrics use a registry per app, so several apps (tests)
can live in one process.

Two kinds of metrics (docs/operations.md lists them): counters of what this process did
(requests, provisioning answers, claim steps), and gauges of what waits (the outbox,
webhook deliveries, broker accounts, The Things Stack, leases), read from the database at
each scrape (:meth:`Metrics.scrape`) so every instance reports the database's truth.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from provisiond.errors import ProvisiondError
from provisiond.services.metrics import (
    CLAIM_STEPS,
    DELIVERY_STATES,
    OUTCOMES,
    Backlog,
    read_backlog,
)

log = logging.getLogger("provisiond.http")


class Metrics:
    """The app's registry: per-process counters, and the backlog read at each scrape. It is
    the container's :class:`~provisiond.services.metrics.Counts`."""

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
        self.answers = Counter(
            "provisiond_provisioning_answers_total",
            "Provision requests answered, by transport (http, mqtt, coap) and outcome "
            "(SUCCESS, NOT_FOUND, FAILURE, THROTTLED: refused by a rate limit, ERROR: none)",
            ["transport", "outcome"],
            registry=self.registry,
        )
        self.claims = Counter(
            "provisiond_claim_steps_total",
            "Claim steps (start, prove, finish, cancel, associate) by outcome: success, "
            "throttled, or the code of the error that refused it",
            ["step", "outcome"],
            registry=self.registry,
        )
        self._answered: dict[tuple[str, str], Any] = {}
        for transport in ("http", "mqtt", "coap"):  # 0 from the start: rate() sees the 1st
            for outcome in OUTCOMES:
                self._answered[transport, outcome] = self.answers.labels(transport, outcome)
        for step in CLAIM_STEPS:
            self.claims.labels(step, "success")
        self.instance = Gauge(
            "provisiond_instance_info",
            "This instance, as named in the leases it holds",
            ["holder"],
            registry=self.registry,
        )
        self.backlog = BacklogCollector()
        self.registry.register(self.backlog)
        self._reading: asyncio.Future[Backlog | None] | None = None  # the read under way

    def provisioning_answered(self, transport: str, outcome: str) -> None:
        child = self._answered.get((transport, outcome))
        if child is None:  # the hot path of a storm: the labelled counter looked up once
            child = self._answered[transport, outcome] = self.answers.labels(transport, outcome)
        child.inc()

    def claim_step(self, step: str, outcome: str) -> None:
        self.claims.labels(step, outcome).inc()

    def held_by(self, holder: str) -> None:
        """This process's name in the leases (its background's)."""
        self.instance.clear()
        self.instance.labels(holder).set(1)

    async def scrape(self, container: Any) -> bytes:
        """The text exposition, with the backlog read from the database now (left out, and
        ``provisiond_backlog_up`` 0, when the database does not answer).

        Scrapes that arrive while a read is under way share it: a flood of requests on
        ``/metrics`` (anyone may ask it, without ``metrics__token``) makes one read of the
        database at a time, not one each."""
        reading = self._reading
        if reading is None:
            reading = self._reading = asyncio.ensure_future(self._read_backlog(container))
            reading.add_done_callback(self._read_done)
        self.backlog.latest = await asyncio.shield(reading)  # a scraper gone: the read goes on
        return generate_latest(self.registry)

    async def _read_backlog(self, container: Any) -> Backlog | None:
        try:
            return await read_backlog(container.uow(), container.now())
        except ProvisiondError as err:  # the database is away: the counters still answer
            log.warning("metrics: what waits could not be read: %s", err)
        except Exception:
            log.exception("metrics: what waits could not be read")
        return None

    def _read_done(self, reading: asyncio.Future[Backlog | None]) -> None:
        if self._reading is reading:
            self._reading = None

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


class BacklogCollector(Collector):
    """The gauges of what waits, from the backlog read for this scrape."""

    def __init__(self) -> None:
        self.latest: Backlog | None = None

    def describe(self) -> list[Any]:
        return []  # read at each scrape: nothing to check at registration

    def collect(self) -> Any:
        b = self.latest
        up = GaugeMetricFamily(
            "provisiond_backlog_up", "1: the figures of what waits were read from the database"
        )
        up.add_metric([], 0 if b is None else 1)
        yield up
        if b is None:
            return
        yield GaugeMetricFamily(
            "provisiond_outbox_entries",
            "Events in the outbox that the integrations have not taken yet",
            value=b.outbox_entries,
        )
        yield GaugeMetricFamily(
            "provisiond_outbox_oldest_age_seconds",
            "Age of the oldest event in the outbox (0: empty)",
            value=b.outbox_oldest_age_seconds,
        )
        deliveries = GaugeMetricFamily(
            "provisiond_webhook_deliveries",
            "Webhook deliveries per webhook: pending (not tried yet), retrying (failed, to be "
            "tried again), failed (given up)",
            labels=["webhook", "state"],
        )
        for webhook, states in sorted(b.deliveries.items()):
            for state in DELIVERY_STATES:
                deliveries.add_metric([webhook, state], states.get(state, 0))
        yield deliveries
        broker = GaugeMetricFamily(
            "provisiond_broker_accounts_waiting",
            "Devices whose broker accounts are not in step yet, by reason: queued, "
            "broker_unavailable (retrying with backoff), name_taken (for an operator)",
            labels=["reason"],
        )
        for reason, count in b.broker_waiting.items():
            broker.add_metric([reason], count)
        yield broker
        tts_waiting = GaugeMetricFamily(
            "provisiond_tts_registrations_waiting",
            "Devices The Things Stack is not in step with yet, by reason: queued, retrying "
            "(the server failed; backing off)",
            labels=["reason"],
        )
        for reason, count in b.tts_waiting.items():
            tts_waiting.add_metric([reason], count)
        yield tts_waiting
        tts = GaugeMetricFamily(
            "provisiond_tts_registrations",
            "provisiond's end devices in The Things Stack that wait for an operator, by "
            "status: failed (refused; provisiond lorawan status says why), conflict (another "
            "end device holds the ID or DevEUI)",
            labels=["status"],
        )
        for status, count in b.tts_registrations.items():
            tts.add_metric([status], count)
        yield tts
        leases = GaugeMetricFamily(
            "provisiond_lease_holder",
            "Background work leases and the instance holding each: 1 while held, 0 when "
            "the lease has expired (nobody runs that work)",
            labels=["lease", "holder"],
        )
        lapsed = GaugeMetricFamily(
            "provisiond_lease_lapsed_seconds",
            "How long ago a background work lease expired without being taken again (0 "
            "while held): nobody has run that work since",
            labels=["lease"],
        )
        for lease in b.leases:
            leases.add_metric([lease.name, lease.holder], 1 if lease.live else 0)
            lapsed.add_metric([lease.name], lease.lapsed_seconds)
        yield leases
        yield lapsed
        yield GaugeMetricFamily(
            "provisiond_instances",
            "provisiond instances alive on this database (their heartbeats)",
            value=b.instances,
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
