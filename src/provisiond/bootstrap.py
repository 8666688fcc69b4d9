"""The composition root: settings -> engine -> services -> HTTP app / CLI.

Nothing else builds engines or reads settings; adapters receive what they need from here.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache, cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provisiond.errors import BrokerNotConfigured, ConfigurationError
from provisiond.integrations.integration import NO_BROKER_KEPT
from provisiond.integrations.registry import BROKER_KEEPERS, INTEGRATIONS, TTS
from provisiond.services.accounts import SessionPolicy, forget_sign_in_addresses
from provisiond.services.background import INSTANCE_PREFIX, Background, Loop
from provisiond.services.broker_keeper import AccountKeeper
from provisiond.services.certificates import PkiUrls, SignerCache
from provisiond.services.claim_hub import ClaimHub
from provisiond.services.claims.policy import ClaimPolicy
from provisiond.services.claims.windows import open_device_window, press_button
from provisiond.services.container import Container as ContainerInterface
from provisiond.services.crl_files import CrlPublisher
from provisiond.services.destinations import DestinationGuard
from provisiond.services.metrics import NO_COUNTS, Counts
from provisiond.services.ocsp import OcspResponder
from provisiond.services.outbox import Dispatcher
from provisiond.services.provisioning import Provisioner, ProvisionPolicy, policy_from
from provisiond.services.ratelimit import RateLimiter
from provisiond.services.revocation import CrlMaker, CrlPolicy, request_crls
from provisiond.services.sealing import Sealer, in_clear
from provisiond.services.summaries import COMPACT_EVERY, compact_summaries_step
from provisiond.services.webhooks import fan_out
from provisiond.settings import Settings
from provisiond.store import migrate
from provisiond.store.database import DatabaseOptions, create_engine
from provisiond.store.provision_writer import ProvisionWriter
from provisiond.store.uow import Database, UnitOfWork

if TYPE_CHECKING:
    import ssl

    from fastapi import APIRouter, FastAPI

    from provisiond.integrations.device_events import DeviceEventSubscriber
    from provisiond.integrations.pg_notify import PgClaimRelay
    from provisiond.integrations.tts.sync import TtsSync
    from provisiond.wifi.client import ProvisioningClient
    from provisiond.wifi.emulator import DeviceConfig


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Container(ContainerInterface):
    settings: Settings
    database: Database
    clock: Callable[[], datetime] = field(default=utc_now)
    limiter: RateLimiter = field(default_factory=RateLimiter)
    signers: SignerCache = field(init=False)  # its certificates name this service's URLs
    hub: ClaimHub = field(default_factory=ClaimHub)
    device_events: DeviceEventSubscriber | None = None  # set by background() with a broker
    claim_relay: PgClaimRelay | None = None  # set by background() on PostgreSQL
    counts: Counts = NO_COUNTS  # what happened, counted (the server's metrics)

    def __post_init__(self) -> None:
        self.signers = SignerCache(self.pki_urls)

    def uow(self) -> UnitOfWork:
        return self.database.uow()

    @property
    def pki_urls(self) -> PkiUrls:
        """Where the CAs' CRLs, certificates and OCSP answers are published."""
        return PkiUrls(self.settings.effective_public_url)

    @cached_property
    def crl_maker(self) -> CrlMaker:
        s = self.settings
        policy = CrlPolicy(
            timedelta(hours=s.crl_validity_hours),
            timedelta(hours=s.crl_refresh_hours),
            self.pki_urls,
        )
        return CrlMaker(self.uow, self.signers, s.ca_passphrase, policy, self.now)

    @cached_property
    def ocsp(self) -> OcspResponder:
        s = self.settings
        return OcspResponder(
            self.uow,
            self.signers,
            s.ca_passphrase,
            timedelta(seconds=s.ocsp_validity_seconds),
            self.now,
        )

    @property
    def provision_writer(self) -> ProvisionWriter:
        return self.database.provision_writer

    @cached_property
    def provision_policy(self) -> ProvisionPolicy:
        """The provisioning rules' settings, the same for every transport (made once)."""
        s = self.settings
        return policy_from(
            s.provisioning.unknown_source_rate_per_minute,
            s.ca_passphrase,
            self.signers,
            self.broker_sealer,
        )

    @cached_property
    def provisioner(self) -> Provisioner:
        """Provisioning as every transport calls it (HTTP, MQTT, CoAP): one rate limiter, one
        writer, one policy; the clock read at each request (tests set ``clock``)."""
        return Provisioner(
            self.provision_writer, self.limiter, self.provision_policy, self.now, self.counts
        )

    @cached_property
    def claim_policy(self) -> ClaimPolicy:
        s = self.settings
        return ClaimPolicy(
            s.claims.proof,
            s.claims.window_seconds,
            s.claims.rate_per_minute,
            s.claims.code_attempts_per_minute,
            s.claims.device_lookup_rate_per_minute,
        )

    @cached_property
    def session_policy(self) -> SessionPolicy:
        s = self.settings
        return SessionPolicy(
            timedelta(hours=s.sessions.hours),
            timedelta(minutes=s.sessions.idle_minutes),
            s.sessions.login_failures_before_lockout,
            timedelta(minutes=s.sessions.login_lockout_minutes),
            s.sessions.login_rate_per_minute,
            s.sessions.login_account_failures_before_slowdown,
            timedelta(seconds=s.sessions.login_account_slowdown_seconds),
        )

    def now(self) -> datetime:
        return self.clock()

    @cached_property
    def sealer(self) -> Sealer:
        """Seals the device secrets provisiond must hand on later (device_key_passphrase)."""
        return make_sealer(self.settings)

    @cached_property
    def webhook_guard(self) -> DestinationGuard:
        """Where webhooks may send: public addresses and the allow-list (tests replace it
        to resolve names their own way)."""
        return DestinationGuard(self.settings.webhooks.allow_list)

    @property
    def keeps_broker(self) -> bool:
        """Whether background work keeps the broker in step: Mosquitto's accounts, or the
        EMQX sessions of credentials no longer active (with EMQX's API configured)."""
        return any(i.enabled(self.settings) for i in BROKER_KEEPERS)

    @property
    def broker_sealer(self) -> Sealer | None:
        """The sealer for MQTT secrets when the broker must be given them (Mosquitto's
        accounts) or named by them (EMQX's sessions, with token_as_username), else None."""
        sealed = any(i.seals_secrets(self.settings) for i in INTEGRATIONS)
        return self.sealer if sealed else None

    @cached_property
    def broker_name_keeper(self) -> Callable[[str], str] | None:
        """How EMQX's authentication hook records a user name at a credential's first use
        (services/mqtt_auth.py), when provisiond ends EMQX sessions; else None."""
        b = self.settings.broker
        if not b.emqx_api:
            return None
        return self.sealer.seal if b.token_as_username else in_clear

    @asynccontextmanager
    async def broker_sync(self) -> AsyncIterator[AccountKeeper]:
        """The broker reconciler, connected (BrokerNotConfigured without a kept broker)."""
        for integration in BROKER_KEEPERS:
            if integration.enabled(self.settings):
                async with integration.open(self) as keeper:
                    yield keeper
                return
        raise BrokerNotConfigured(NO_BROKER_KEPT)

    def _crl_publisher(self) -> CrlPublisher | None:
        """This instance's CRL files, when crl_dir is set."""
        from provisiond.integrations.crl_files import CrlDirectory
        from provisiond.integrations.mosquitto_files.files import Reloader

        s = self.settings
        if s.crl_dir is None:
            return None
        b = s.broker
        reloader = Reloader(b.pid_file, b.reload_command, b.timeout_seconds)
        return CrlPublisher(self.uow, CrlDirectory(s.crl_dir, reloader), self.now)

    def tts_sync(self) -> AbstractAsyncContextManager[TtsSync]:
        """The Things Stack registrar, connected (TtsNotConfigured without tts__url)."""
        return TTS.open(self)

    async def _relay_claim_events(self, stack: AsyncExitStack) -> None:
        """Claim events reach the pages of every instance on this PostgreSQL."""
        from provisiond.integrations.pg_notify import PgClaimRelay
        from provisiond.services.background import holder_name
        from provisiond.store.database import sync_url

        dsn = (
            sync_url(self.settings.effective_database_url)
            .set(drivername="postgresql")
            .render_as_string(hide_password=False)
        )
        self.claim_relay = PgClaimRelay(dsn, self.hub, holder_name())
        await self.claim_relay.start()
        stack.push_async_callback(self.claim_relay.stop)

    async def _listen_for_device_events(self, stack: AsyncExitStack) -> None:
        """Hear claim buttons and claim windows from devices through the broker."""
        from provisiond.integrations.device_events import DeviceEventSubscriber
        from provisiond.integrations.mqtt import tls_context

        b = self.settings.broker
        url = b.password_url or ""

        async def button(device_id: uuid.UUID) -> object:
            return await press_button(self.uow(), self.hub, device_id=device_id, now=self.now())

        async def window(device_id: uuid.UUID, secret: object, duration: object) -> object:
            return await open_device_window(
                self.uow(),
                self.claim_policy,
                device_id=device_id,
                secret=secret,  # type: ignore[arg-type]
                duration_ms=duration,  # type: ignore[arg-type]
                now=self.now(),
            )

        self.device_events = DeviceEventSubscriber(
            url,
            b.topic_prefix,
            on_button=button,
            on_window=window,
            tls=tls_context(b.tls_ca_file, b.tls_cert_file, b.tls_key_file)
            if url.startswith("mqtts:")
            else None,
        )
        task = asyncio.create_task(self.device_events.run(), name="provisiond-device-events")

        async def stop() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        stack.push_async_callback(stop)

    def _core_loops(self, work: list[str]) -> list[Loop]:
        """The loops every `serve` runs: the outbox (queueing ``work`` for the integrations in
        use), CRLs, sign-in counts, the overview's summaries' compaction."""

        async def make_crls() -> int:
            await self.crl_maker.refresh()
            return 0  # at most one pass a second, however often revocations come

        return [
            Loop(
                "outbox",
                Dispatcher(self.uow, work=work, consumers=[fan_out, request_crls]).dispatch,
                idle=0.25,
            ),
            Loop("crl", make_crls, idle=1.0),
            Loop(
                "sign-in-counts",
                lambda: forget_sign_in_addresses(self.uow(), self.session_policy, now=self.now()),
                idle=60.0,
            ),
            Loop("summaries", lambda: compact_summaries_step(self.uow), idle=COMPACT_EVERY),
        ]

    @asynccontextmanager
    async def background(self) -> AsyncIterator[Background]:
        """The background loops of `serve`: the outbox, each integration in use (webhooks,
        The Things Stack, the broker's accounts and their reconciliation)."""
        async with AsyncExitStack() as stack:
            enabled = [i for i in INTEGRATIONS if i.enabled(self.settings)]
            loops = self._core_loops([i.work for i in enabled if i.work is not None])
            for integration in enabled:
                keeper = await stack.enter_async_context(integration.open(self))
                loops.extend(integration.loops(keeper, self.settings))
            if self.settings.broker.password_url is not None:
                await self._listen_for_device_events(stack)
            if self.database.dialect == "postgresql":
                await self._relay_claim_events(stack)
            background = Background(self.uow, self.now, loops)
            background.add(background.heartbeat(self.limiter.set_share))
            publisher = self._crl_publisher()
            if publisher is not None:  # every instance writes its own files
                background.add(
                    Loop(
                        "crl-files",
                        publisher.publish,
                        idle=1.0,
                        lease=INSTANCE_PREFIX + background.holder,
                    )
                )
            await background.start()
            try:
                yield background
            finally:
                await background.stop()


def build_database(settings: Settings) -> Database:
    options = DatabaseOptions(
        sqlite_synchronous=settings.sqlite_synchronous.value,
        sqlite_busy_timeout_ms=settings.sqlite_busy_timeout_ms,
        pool_size=settings.database_pool_size,
    )
    return Database(create_engine(settings.effective_database_url, options), options)


@asynccontextmanager
async def open_container(
    settings: Settings, *, check_schema: bool = True, counts: Counts = NO_COUNTS
) -> AsyncIterator[Container]:
    """A container for one CLI command or one server process; closes the engine after."""
    if check_schema:
        migrate.check_current(settings.effective_database_url)
    database = build_database(settings)
    try:
        yield Container(settings, database, counts=counts)
    finally:
        await database.dispose()


def make_sealer(settings: Settings) -> Sealer:
    """The sealer of the secrets provisiond must hand on later (ConfigurationError in
    production without device_key_passphrase)."""
    passphrase = settings.device_key_passphrase
    return Sealer(
        passphrase.get_secret_value() if passphrase else None, production=settings.production
    )


def check_serving(settings: Settings) -> None:
    """Refuse, before the server starts, the settings it could not start with: a
    ConfigurationError naming the setting (not a traceback from the server's startup).
    Serving seals webhook secrets and broker passwords: production needs the passphrase.
    The AWS listener speaks TLS only: it needs its certificate and key."""
    make_sealer(settings)
    _attesting(settings)
    d = settings.dps
    if (d.mqtt_port is not None or d.https_port is not None) and (
        d.id_scope is None or d.tls_cert is None or d.tls_key is None
    ):
        raise ConfigurationError("serving DPS needs dps__id_scope, dps__tls_cert and dps__tls_key")
    if settings.aws.port is not None and (
        settings.aws.tls_cert is None or settings.aws.tls_key is None
    ):
        raise ConfigurationError(
            "the AWS listener (aws__port, --aws-port) needs aws__tls_cert and aws__tls_key: "
            "AWS IoT devices speak MQTT over TLS only"
        )


def check_database(settings: Settings) -> None:
    """Raise SchemaOutdated unless the schema is at this version's head."""
    migrate.check_current(settings.effective_database_url)


def upgrade_database(settings: Settings, revision: str = "head") -> None:
    migrate.upgrade(
        settings.effective_database_url, revision, sqlite_page_size=settings.sqlite_page_size
    )


def downgrade_database(settings: Settings, revision: str) -> None:
    migrate.downgrade(settings.effective_database_url, revision)


def database_revision(settings: Settings) -> tuple[str | None, str]:
    return migrate.current_revision(settings.effective_database_url), migrate.head_revision()


def create_app(settings: Settings) -> FastAPI:
    """The server `serve` runs: the HTTP app, with its own container opened at startup and
    closed at shutdown, and the device transports the settings ask for (MQTT, CoAP) serving
    beside it on that container for as long (``app.state.mqtt_port``: the MQTT port bound)."""

    @asynccontextmanager
    async def serving() -> AsyncIterator[Container]:
        async with (
            open_container(settings, counts=app.state.metrics) as container,
            device_transports(container) as ports,
            dps_transports(container) as dps_ports,
            aws_transport(container) as aws_port,
        ):
            app.state.mqtt_port, app.state.device_tls_port = ports
            app.state.dps_port, app.state.dps_https_port = dps_ports
            app.state.aws_port = aws_port
            yield container

    app = compose_app(settings, serving)
    return app


def compose_app(
    settings: Settings, container_factory: Callable[[], AbstractAsyncContextManager[Any]]
) -> FastAPI:
    """The HTTP app (web/) with the device API's routes (transports/http) on it."""
    from provisiond.transports.http import routes as device_http
    from provisiond.web.app import FastRoute, build_app

    app: FastAPI = build_app(
        settings,
        container_factory,
        device_routers=[_device_router()],
        fast_route=FastRoute(device_http.PROVISION_PATH, device_http.provision_response),
    )
    return app


@cache
def _device_router() -> APIRouter:
    """The device API's router, built once per process: it holds no settings (its routes
    reach the container through the request), so every app shares it, as every app shares
    web/api's module routers. Building it (FastAPI analyses each route's signature and
    models) was 3 of create_app's 5 ms of CPU, paid by each test's server."""
    from provisiond.transports.http import routes as device_http
    from provisiond.web.problems import responses

    return device_http.build_router(responses)


@asynccontextmanager
async def device_transports(container: Container) -> AsyncIterator[tuple[int | None, int | None]]:
    """The device transports beside the HTTP server, as the settings ask: the CoAP device
    API (``coap_port``), the MQTT provisioning listener (``mqtt_enabled``, ``mqtt_port``;
    asking for client certificates with ``mqtt_client_certificates``) and the mutual-TLS
    device API (``device_tls_port``); yields the MQTT and mutual-TLS ports bound (None: not
    served). They stop when the block ends."""
    from provisiond.transports.coap import server as coap
    from provisiond.transports.http import mtls
    from provisiond.transports.mqtt import listener as mqtt

    s = container.settings
    p = s.provisioning
    async with AsyncExitStack() as stack:
        if p.coap_port is not None:
            context = await coap.start(container.provisioner, s.host, p.coap_port)
            stack.push_async_callback(context.shutdown)
        attesting = await _attesting_tls(container, stack)
        limits = mqtt.Limits.of(s)
        servers: list[asyncio.Server | None] = [None, None]
        if p.mqtt_enabled:
            tls = attesting if p.mqtt_client_certificates else mqtt.tls_context(s)
            servers[0] = await mqtt.start(container.provisioner, s.host, p.mqtt_port, tls, limits)
        if p.device_tls_port is not None and attesting is not None:
            servers[1] = await mtls.start(
                container.provisioner, s.host, p.device_tls_port, attesting, limits
            )
        ports: list[int | None] = []
        for server in servers:
            if server is not None:
                stack.push_async_callback(server.wait_closed)
                stack.callback(server.close)
            ports.append(None if server is None else server.sockets[0].getsockname()[1])
        yield ports[0], ports[1]


def _attesting(settings: Settings) -> tuple[Path, Path] | None:
    """The server certificate and key of the listeners that attest devices by their TLS
    client certificate (the MQTT listener asking for them, the mutual-TLS device API); None
    when none does; ConfigurationError when one does without them."""
    p = settings.provisioning
    if not (p.mqtt_enabled and p.mqtt_client_certificates) and p.device_tls_port is None:
        return None
    if p.mqtt_tls_cert is None or p.mqtt_tls_key is None:
        raise ConfigurationError(
            "attesting devices by their TLS client certificate (provisioning__"
            "mqtt_client_certificates, provisioning__device_tls_port, --device-tls-port) needs "
            "provisioning__mqtt_tls_cert and provisioning__mqtt_tls_key"
        )
    return p.mqtt_tls_cert, p.mqtt_tls_key


async def _attesting_tls(container: Container, stack: AsyncExitStack) -> ssl.SSLContext | None:
    """The TLS of the listeners that attest devices by their client certificate, its CAs
    (the profiles' device CAs) reloaded every ``device_ca_refresh_seconds`` until ``stack``
    closes; None when no listener attests."""
    from provisiond.services.attestation import device_cas
    from provisiond.transports.tls import ClientCertificateTls

    p = container.settings.provisioning
    files = _attesting(container.settings)
    if files is None:
        return None
    tls = ClientCertificateTls(
        *files,
        await device_cas(container.uow()),
        what="profiles' device CAs",
    )
    refresh = asyncio.create_task(
        tls.keep_fresh(lambda: device_cas(container.uow()), p.device_ca_refresh_seconds)
    )
    stack.callback(refresh.cancel)
    return tls.context


@asynccontextmanager
async def dps_transports(container: Container) -> AsyncIterator[tuple[int | None, int | None]]:
    """Azure DPS's device API, as the settings ask (``dps__mqtt_port``, ``dps__https_port``,
    with ``dps__id_scope`` and ``dps__tls_cert``); yields the ports bound (None: not served).
    Both stop when the block ends."""
    s = container.settings.dps
    if s.mqtt_port is None and s.https_port is None:
        yield None, None
        return
    from provisiond.services.dps import DpsPolicy, Operations, Registrar
    from provisiond.transports.azure import https as dps_https
    from provisiond.transports.azure import mqtt as dps_mqtt
    from provisiond.transports.mqtt.listener import Limits
    from provisiond.transports.tls import ClientCertificateTls

    if s.id_scope is None or s.tls_cert is None or s.tls_key is None:
        raise ConfigurationError("serving DPS needs dps__id_scope, dps__tls_cert and dps__tls_key")
    registrar = Registrar(
        container.provision_writer,
        container.uow,
        container.sealer,
        container.limiter,
        DpsPolicy(
            s.id_scope,
            container.settings.provisioning.unknown_source_rate_per_minute,
            s.operation_seconds,
            s.allocation_timeout_seconds,
            s.https_requests_per_connection,
        ),
        container.now,
        Operations(s.operation_seconds),
        container.webhook_guard,
    )
    tls = ClientCertificateTls(
        s.tls_cert, s.tls_key, await registrar.x509_cas(), what="DPS enrollment groups' CAs"
    )
    limits = Limits.of(container.settings)
    host = container.settings.host
    ports: list[int | None] = []
    async with AsyncExitStack() as stack:
        for port, module in ((s.mqtt_port, dps_mqtt), (s.https_port, dps_https)):
            if port is None:
                ports.append(None)
                continue
            server = await module.start(registrar, host, port, tls.context, limits)
            stack.push_async_callback(server.wait_closed)
            stack.callback(server.close)
            ports.append(server.sockets[0].getsockname()[1])
        refresh = asyncio.create_task(tls.keep_fresh(registrar.x509_cas, s.ca_refresh_seconds))
        stack.callback(refresh.cancel)
        yield ports[0], ports[1]


@asynccontextmanager
async def aws_transport(container: Container) -> AsyncIterator[int | None]:
    """The AWS IoT fleet-provisioning listener (``aws__port``), mutual TLS; yields the port
    bound (None: not served)."""
    from provisiond.services.aws_fleet import Fleet
    from provisiond.transports.aws import listener as aws
    from provisiond.transports.aws.hook import HookClient
    from provisiond.transports.mqtt.listener import Limits

    s = container.settings
    if s.aws.port is None:
        yield None
        return
    passphrase = s.ca_key_passphrase.get_secret_value() if s.ca_key_passphrase else None
    secret = s.aws.hook_secret.get_secret_value() if s.aws.hook_secret else None
    hook = HookClient(secret, s.aws.hook_timeout_seconds)
    fleet = Fleet(
        container.uow,
        container.provisioner.writer,
        s.aws,
        container.signers,
        passphrase,
        container.limiter,
        container.now,
        hook.ask,
        container.counts,
    )
    try:
        listener = await aws.start(fleet, s.host, s.aws.port, aws.tls_context(s), Limits.of(s))
        try:
            yield listener.port
        finally:
            await listener.close()
    finally:
        await hook.close()


def server_log_config(settings: Settings) -> dict[str, Any]:
    """The process's logging configuration (uvicorn's ``log_config``), in provisiond's log
    format: the root logger's one handler, every library's logger through it."""
    from provisiond.web.logs import process_log_config

    return process_log_config(settings)


def configure_process_logging(settings: Settings) -> None:
    """Every line the process logs, libraries' included, in the settings' log format."""
    from provisiond.web.logs import configure_process_logging as configure

    configure(settings)


def http_server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options for `serve`: its protocol with deadlines and a connection cap fitted
    to the descriptor limit (raised first if it can be; a warning when caps are lowered)."""
    from provisiond.web.http_server import server_options

    return server_options(settings)


def wifi_client(device: str, *, timeout: float, ble_name: str | None = None) -> ProvisioningClient:
    """The ESP provisioning client (provisiond wifi provision): soft AP, or BLE by name."""
    from provisiond.wifi.client import ProvisioningClient

    return ProvisioningClient(device, timeout=timeout, ble_name=ble_name)


def wifi_emulator_config(  # noqa: PLR0913 - one parameter per emulator option, passed through from the CLI
    *,
    security: int,
    pop: str | None,
    username: str,
    password: str,
    networks: Path | None,
    delay_scale: float,
    report_to: str | None = None,
    device_token: str | None = None,
    outcome: str = "auto",
) -> DeviceConfig:
    """The emulated device's settings (ValueError: a networks file that is not one)."""
    from provisiond.wifi.emulator import DEFAULT_NETWORKS, DeviceConfig, load_networks

    return DeviceConfig(
        security=security,
        pop=pop,
        username=username,
        password=password,
        networks=load_networks(networks) if networks else DEFAULT_NETWORKS,
        delay_scale=delay_scale,
        report_to=report_to,
        device_token=device_token,
        outcome=outcome,
    )


async def run_wifi_emulator(
    cfg: DeviceConfig, host: str, port: int, started: Callable[[int], None]
) -> None:
    """Serve the ESP device emulator until cancelled (provisiond wifi emulate)."""
    from provisiond.wifi.emulator import EmulatedDevice, bound_port, serve

    runner = await serve(EmulatedDevice(cfg), host, port)
    try:
        started(bound_port(runner))
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


async def wifi_browser_hand_over(
    client: ProvisioningClient, *, limit: float, opened: Callable[[str], None]
) -> dict[str, object]:
    """Serve the one-page network chooser until the device has joined (--browser)."""
    from provisiond.wifi.browser import hand_over

    return await hand_over(client, limit=limit, opened=opened)
