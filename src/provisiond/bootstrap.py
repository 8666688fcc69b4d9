"""The composition root: settings -> engine -> services -> HTTP app / CLI.

Nothing else builds engines or reads settings; adapters receive what they need from here.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provisiond.errors import BrokerNotConfigured, TtsNotConfigured
from provisiond.services.accounts import SessionPolicy, forget_sign_in_addresses
from provisiond.services.background import INSTANCE_PREFIX, Background, Loop
from provisiond.services.broker import BrokerSync
from provisiond.services.broker_files import FileBrokerSync
from provisiond.services.broker_keeper import AccountKeeper
from provisiond.services.certificates import PkiUrls, SignerCache
from provisiond.services.claim_hub import ClaimHub
from provisiond.services.claims.policy import ClaimPolicy
from provisiond.services.claims.windows import open_device_window, press_button
from provisiond.services.crl_files import CrlPublisher
from provisiond.services.destinations import DestinationGuard
from provisiond.services.emqx_sessions import EmqxSessions
from provisiond.services.ocsp import OcspResponder
from provisiond.services.outbox import Dispatcher
from provisiond.services.provisioning import ProvisionPolicy, policy_from
from provisiond.services.ratelimit import RateLimiter
from provisiond.services.revocation import CrlMaker, CrlPolicy, request_crls
from provisiond.services.sealing import Sealer, in_clear
from provisiond.services.tts import Addresses, TtsSync
from provisiond.services.webhooks import WebhookDeliverer, WebhookPolicy, fan_out
from provisiond.settings import BrokerKind, Settings
from provisiond.store import migrate
from provisiond.store.database import DatabaseOptions, create_engine
from provisiond.store.provision_writer import ProvisionWriter
from provisiond.store.uow import Database, UnitOfWork

if TYPE_CHECKING:
    from fastapi import FastAPI

    from provisiond.integrations.device_events import DeviceEventSubscriber
    from provisiond.integrations.pg_notify import PgClaimRelay
    from provisiond.wifi.client import ProvisioningClient
    from provisiond.wifi.emulator import DeviceConfig


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Container:
    settings: Settings
    database: Database
    clock: Callable[[], datetime] = field(default=utc_now)
    limiter: RateLimiter = field(default_factory=RateLimiter)
    signers: SignerCache = field(init=False)  # its certificates name this service's URLs
    hub: ClaimHub = field(default_factory=ClaimHub)
    device_events: DeviceEventSubscriber | None = None  # set by background() with a broker
    claim_relay: PgClaimRelay | None = None  # set by background() on PostgreSQL

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
            s.provision_unknown_source_rate_per_minute,
            s.ca_passphrase,
            self.signers,
            self.broker_sealer,
        )

    @cached_property
    def claim_policy(self) -> ClaimPolicy:
        s = self.settings
        return ClaimPolicy(
            s.claim_proof,
            s.claim_window_seconds,
            s.claim_rate_per_minute,
            s.claim_code_attempts_per_minute,
            s.device_lookup_rate_per_minute,
        )

    @cached_property
    def session_policy(self) -> SessionPolicy:
        s = self.settings
        return SessionPolicy(
            timedelta(hours=s.session_hours),
            timedelta(minutes=s.session_idle_minutes),
            s.login_failures_before_lockout,
            timedelta(minutes=s.login_lockout_minutes),
            s.login_rate_per_minute,
            s.login_account_failures_before_slowdown,
            timedelta(seconds=s.login_account_slowdown_seconds),
        )

    def now(self) -> datetime:
        return self.clock()

    @cached_property
    def sealer(self) -> Sealer:
        """Seals the device secrets provisiond must hand on later (device_key_passphrase)."""
        s = self.settings
        return Sealer(
            s.device_key_passphrase.get_secret_value() if s.device_key_passphrase else None,
            production=s.production,
        )

    @cached_property
    def webhook_guard(self) -> DestinationGuard:
        """Where webhooks may send: public addresses and the allow-list (tests replace it
        to resolve names their own way)."""
        return DestinationGuard(self.settings.webhook_allow_list)

    @property
    def manages_broker(self) -> bool:
        return self.settings.broker.kind in (
            BrokerKind.MOSQUITTO_DYNSEC,
            BrokerKind.MOSQUITTO_FILES,
        )

    @property
    def keeps_broker(self) -> bool:
        """Whether background work keeps the broker in step: Mosquitto's accounts, or the
        EMQX sessions of credentials no longer active (with EMQX's API configured)."""
        return self.manages_broker or self.settings.broker.emqx_api

    @property
    def broker_sealer(self) -> Sealer | None:
        """The sealer for MQTT secrets when the broker must be given them (Mosquitto's
        accounts) or named by them (EMQX's sessions, with token_as_username), else None."""
        b = self.settings.broker
        return self.sealer if self.manages_broker or (b.emqx_api and b.token_as_username) else None

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
        from provisiond.integrations.mosquitto import DynsecAdmin, tls_context

        b = self.settings.broker
        if b.kind is BrokerKind.MOSQUITTO_FILES:
            yield self._file_broker_sync()
            return
        if b.emqx_api:
            async with self._emqx_sessions() as sessions:
                yield sessions
            return
        if not self.manages_broker or b.password_url is None:
            raise BrokerNotConfigured(
                "no broker is kept in step: set broker__kind=mosquitto-dynsec and "
                "broker__url (PROVISIOND_BROKER__KIND, PROVISIOND_BROKER__URL), "
                "broker__kind=mosquitto-files and its files, or broker__kind=emqx and "
                "broker__emqx_api_url with its key"
            )
        tls = (
            tls_context(b.tls_ca_file, b.tls_cert_file, b.tls_key_file)
            if b.password_url.startswith("mqtts:")
            else None
        )
        admin = DynsecAdmin(b.password_url, timeout=b.timeout_seconds, tls=tls)
        try:
            yield BrokerSync(
                self.uow,
                admin,
                self.sealer,
                b.topic_prefix,
                self.now,
                token_as_username=b.token_as_username,
            )
        finally:
            await admin.close()

    def _crl_publisher(self) -> CrlPublisher | None:
        """This instance's CRL files, when crl_dir is set."""
        from provisiond.integrations.crl_files import CrlDirectory
        from provisiond.integrations.mosquitto_files import Reloader

        s = self.settings
        if s.crl_dir is None:
            return None
        b = s.broker
        reloader = Reloader(b.pid_file, b.reload_command, b.timeout_seconds)
        return CrlPublisher(self.uow, CrlDirectory(s.crl_dir, reloader), self.now)

    @asynccontextmanager
    async def _emqx_sessions(self) -> AsyncIterator[EmqxSessions]:
        from provisiond.integrations.emqx import EmqxApi
        from provisiond.integrations.mosquitto import tls_context

        b = self.settings.broker
        if b.emqx_api_url is None or b.emqx_api_key is None or b.emqx_api_secret is None:
            raise BrokerNotConfigured(
                "broker__emqx_api_url needs broker__emqx_api_key and broker__emqx_api_secret"
            )  # the settings refuse it too
        tls = (
            tls_context(b.tls_ca_file, b.tls_cert_file, b.tls_key_file)
            if b.emqx_api_url.startswith("https:")
            else None
        )
        api = EmqxApi(
            b.emqx_api_url,
            b.emqx_api_key,
            b.emqx_api_secret.get_secret_value(),
            timeout=b.timeout_seconds,
            tls=tls,
        )
        # names that are no token are recorded in clear: no passphrase is needed for them
        sealer = self.sealer if b.token_as_username or self.settings.device_key_passphrase else None
        try:
            yield EmqxSessions(
                self.uow,
                api,
                sealer,
                b.topic_prefix,
                self.now,
                token_as_username=b.token_as_username,
            )
        finally:
            await api.close()

    def _file_broker_sync(self) -> FileBrokerSync:
        from provisiond.integrations.mosquitto_files import MosquittoFiles

        b = self.settings.broker
        if b.password_file is None or b.acl_file is None:  # the settings refuse it too
            raise BrokerNotConfigured(
                "broker__kind=mosquitto-files needs broker__password_file and broker__acl_file"
            )
        files = MosquittoFiles(
            b.password_file,
            b.acl_file,
            pid_file=b.pid_file,
            reload_command=b.reload_command,
            timeout=b.timeout_seconds,
        )
        return FileBrokerSync(
            self.uow,
            files,
            self.sealer,
            b.topic_prefix,
            self.now,
            reload_interval=b.reload_interval_seconds,
            token_as_username=b.token_as_username,
        )

    @asynccontextmanager
    async def tts_sync(self) -> AsyncIterator[TtsSync]:
        """The Things Stack registrar (TtsNotConfigured without tts__url)."""
        from provisiond.integrations.tts import HttpTtsClient

        t = self.settings.tts
        if t.url is None or t.api_key is None:
            raise TtsNotConfigured(
                "The Things Stack is not configured: set tts__url and "
                "tts__api_key (PROVISIOND_TTS__URL, PROVISIOND_TTS__API_KEY)"
            )
        client = HttpTtsClient(t.url, t.api_key.get_secret_value(), timeout=t.timeout_seconds)
        try:
            yield TtsSync(
                self.uow,
                client,
                self.sealer,
                t.network,
                Addresses(
                    t.address(t.network_server_address),
                    t.address(t.application_server_address),
                    t.address(t.join_server_address),
                ),
                self.now,
            )
        finally:
            await client.close()

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
        from provisiond.integrations.mosquitto import tls_context

        b = self.settings.broker
        url = b.password_url or ""

        async def button(device_id: uuid.UUID) -> object:
            return await press_button(self.uow(), self.hub, device_id=device_id, now=self.now())

        async def window(device_id: uuid.UUID, secret: object, duration: object) -> object:
            return await open_device_window(
                self.uow(),
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

    @asynccontextmanager
    async def background(self) -> AsyncIterator[Background]:
        """The background loops of `serve`: the outbox, broker accounts, reconciliation."""
        async with AsyncExitStack() as stack:
            from provisiond.integrations.webhooks import HttpSender

            s = self.settings
            sender = HttpSender(s.webhook_timeout_seconds, guard=self.webhook_guard)
            stack.push_async_callback(sender.close)
            deliverer = WebhookDeliverer(
                self.uow,
                sender,
                self.sealer,
                WebhookPolicy(s.webhook_max_attempts, s.webhook_disable_after, s.webhook_log_days),
                self.now,
            )
            work = [
                kind
                for kind, used in (("broker", self.keeps_broker), ("tts", s.tts.enabled))
                if used
            ]

            async def make_crls() -> int:
                await self.crl_maker.refresh()
                return 0  # at most one pass a second, however often revocations come

            loops = [
                Loop(
                    "outbox",
                    Dispatcher(self.uow, work=work, consumers=[fan_out, request_crls]).dispatch,
                    idle=0.25,
                ),
                Loop("webhooks", deliverer.deliver, idle=0.25),
                Loop("crl", make_crls, idle=1.0),
                Loop(
                    "sign-in-counts",
                    lambda: forget_sign_in_addresses(
                        self.uow(), self.session_policy, now=self.now()
                    ),
                    idle=60.0,
                ),
            ]
            if s.tts.enabled:
                tts = await stack.enter_async_context(self.tts_sync())
                loops.append(Loop("tts", tts.apply_pending, idle=0.5))
            if self.keeps_broker:
                sync = await stack.enter_async_context(self.broker_sync())
                loops.append(Loop("broker", sync.apply_pending, idle=0.25))
                interval = self.settings.broker.sync_interval_seconds
                if interval > 0:

                    async def reconcile() -> int:
                        await sync.reconcile()
                        return 0

                    loops.append(Loop("broker-reconcile", reconcile, idle=interval, lease="broker"))
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
    settings: Settings, *, check_schema: bool = True
) -> AsyncIterator[Container]:
    """A container for one CLI command or one server process; closes the engine after."""
    if check_schema:
        migrate.check_current(settings.effective_database_url)
    database = build_database(settings)
    try:
        yield Container(settings, database)
    finally:
        await database.dispose()


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
    """The ASGI app, with its own container opened at startup and closed at shutdown."""
    from provisiond.web.app import build_app

    app: FastAPI = build_app(settings, lambda: open_container(settings))
    return app


def server_log_config(settings: Settings) -> dict[str, Any]:
    """The HTTP server's (uvicorn's) logging configuration, in provisiond's log format."""
    from provisiond.web.observability import server_log_config as config

    return config(settings)


def http_server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options for `serve`: its protocol with deadlines and a connection cap fitted
    to the descriptor limit (raised first if it can be; a warning when caps are lowered)."""
    from provisiond.web.http_server import server_options

    return server_options(settings)


def wifi_client(device: str, *, timeout: float, ble_name: str | None = None) -> ProvisioningClient:
    """The ESP provisioning client (provisiond wifi provision): soft AP, or BLE by name."""
    from provisiond.wifi.client import ProvisioningClient

    return ProvisioningClient(device, timeout=timeout, ble_name=ble_name)


def wifi_emulator_config(
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
