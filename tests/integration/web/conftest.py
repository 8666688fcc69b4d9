"""A real provisiond HTTP server on a loopback port, per test, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from provisiond.bootstrap import create_app, open_container
from provisiond.domain.scope import Scope
from provisiond.domain.tokens import TokenSpec
from provisiond.services import directory
from provisiond.settings import Settings, load_settings
from tests.conftest import IN_CI

OPERATOR = Scope.operator()
# One TLS context for the tests' HTTP clients: httpx loads certifi's whole bundle into a new
# one for every client (~20 ms of CPU), though the servers here speak plain HTTP.
CLIENT_TLS = ssl.create_default_context()
# The pages' browser tests drive Debian's Chromium, headless, with Playwright.
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    token: str
    settings: Settings
    app: Any = None

    @property
    def mqtt_port(self) -> int:
        return int(self.app.state.mqtt_port)

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, verify=CLIENT_TLS)


def make_token(settings: Settings, name: str = "tests") -> str:
    async def create() -> str:
        async with open_container(settings) as c:
            _, secret = await directory.create_token(
                c.uow(), scope=OPERATOR, spec=TokenSpec(name), actor="tests", now=c.now()
            )
            return secret

    return asyncio.run(create())


class PromptServer(uvicorn.Server):
    """uvicorn, woken at once when asked to stop: its own loop looks every 0.1 s, and the
    suite starts and stops some six hundred servers (a minute of waiting)."""

    wake: asyncio.Event | None = None
    loop: asyncio.AbstractEventLoop | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().startup(sockets)

    async def main_loop(self) -> None:
        self.wake = asyncio.Event()
        counter = 0
        while not await self.on_tick(counter):  # uvicorn's own: the Date header, the limits
            counter = (counter + 1) % 864_000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), 0.1)

    def token(self, app: Any, name: str = "tests") -> str:
        """An operator token made by the started server's own container, on its loop (no
        second engine, schema check and event loop of the test's own: ~20 ms of CPU a
        server)."""
        container = app.state.container
        assert self.loop is not None

        async def create() -> str:
            _, secret = await directory.create_token(
                container.uow(),
                scope=OPERATOR,
                spec=TokenSpec(name),
                actor="tests",
                now=container.now(),
            )
            return secret

        return asyncio.run_coroutine_threadsafe(create(), self.loop).result(timeout=60)

    def stop(self) -> None:
        self.should_exit = True
        if self.loop is not None and self.wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop has ended already
                self.loop.call_soon_threadsafe(self.wake.set)


@pytest.fixture
def server_settings(database_url: str) -> Settings:
    return load_settings(database_url=database_url, log_level="warning")


@pytest.fixture
def server(server_settings: Settings) -> Iterator[Server]:
    # The listening socket is bound here and handed to uvicorn: a port picked free and bound
    # later can be taken in between (by another test's connection, as its source port).
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    port = int(listening.getsockname()[1])
    app = create_app(server_settings)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        proxy_headers=False,
    )  # as `serve`: the app finds the client
    uv = PromptServer(config)
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    started = threading.Event()

    def wait() -> None:
        while not uv.started and thread.is_alive():
            started.wait(0.01)

    wait()
    if not uv.started:
        pytest.fail("the server did not start")
    try:
        yield Server(f"http://127.0.0.1:{port}", uv.token(app), server_settings, app)
    finally:
        uv.stop()
        thread.join(timeout=30)
        listening.close()


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture
def chromium() -> str:
    if not Path(CHROMIUM).exists():
        if IN_CI:
            pytest.fail("Chromium is missing: apt-get install chromium (scripts/test does)")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    return CHROMIUM


AXE = Path(__file__).resolve().parents[3] / "node_modules" / "axe-core" / "axe.min.js"


@pytest.fixture
def axe_source() -> str:
    if not AXE.exists():
        if IN_CI:
            pytest.fail(f"{AXE} is missing: scripts/setup installs it (npm ci)")
        pytest.skip("axe-core is not installed (scripts/setup runs npm ci)")
    return AXE.read_text()


@pytest.fixture
def browser_page(chromium: str, axe_source: str) -> Iterator[Any]:
    """A page of a headless Chromium at a phone's size, axe-core loaded in every document."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        # Reduced motion: Bootstrap's transitions off, so axe never sees a colour half-way
        # (a button still fading into its focus colour failed contrast on a loaded machine).
        context = browser.new_context(
            viewport={"width": 390, "height": 844}, reduced_motion="reduce"
        )
        context.add_init_script(script=axe_source)  # in every page, before the page's own
        yield context.new_page()
        browser.close()
