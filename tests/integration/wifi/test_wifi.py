"""ESP Wi-Fi provisioning over real HTTP on loopback: provisiond's client against its device
emulator for every security level and outcome, and Espressif's own client (esp-rainmaker-cli's
esp_prov code) against the emulator."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from rmaker_tools.rmaker_prov.prov import prov_util

from provisiond.protocols.espprov import wifi
from provisiond.wifi.client import ProvisioningClient, WifiError
from provisiond.wifi.emulator import DeviceConfig, EmulatedDevice, bound_port, serve

FAST = 0.02  # scale the emulator's realistic delays down


@contextlib.contextmanager
def running(cfg: DeviceConfig) -> Iterator[tuple[EmulatedDevice, int]]:
    """The emulator on a free loopback port, in its own thread and event loop."""
    device = EmulatedDevice(cfg)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    state: dict[str, Any] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        state["runner"] = loop.run_until_complete(serve(device, "127.0.0.1", 0))
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield device, bound_port(state["runner"])
    finally:
        asyncio.run_coroutine_threadsafe(state["runner"].cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


async def provision(
    port: int,
    *,
    pop: str | None = "abcd1234",
    username: str | None = None,
    password: str | None = None,
    ssid: str = "Kanarra Ops",
    passphrase: str = "correct horse battery",  # noqa: S107 (the emulator's)
    level: int | None = None,
) -> tuple[list[wifi.Network], wifi.StationStatus]:
    async with ProvisioningClient(f"127.0.0.1:{port}", timeout=5) as client:
        await client.read_version()
        await client.open_session(client.choose_security(level, pop, username, password))
        found = await client.scan(poll=0.01)
        await client.configure(ssid, passphrase)
        outcome = await client.wait_connected(poll=0.01, limit=5)
        return found, outcome.status


@pytest.mark.parametrize(
    "cfg",
    [
        DeviceConfig(security=0, delay_scale=FAST),
        DeviceConfig(security=1, delay_scale=FAST),
        DeviceConfig(security=1, pop=None, delay_scale=FAST),
        DeviceConfig(security=2, patch_level=0, delay_scale=FAST),
        DeviceConfig(security=2, delay_scale=FAST),
    ],
    ids=["sec0", "sec1", "sec1-no-pop", "sec2-patch0", "sec2-patch1"],
)
def test_provisioning_connects_at_every_security_level(cfg: DeviceConfig) -> None:
    with running(cfg) as (device, port):
        found, status = asyncio.run(provision(port, username="wifiprov", password="abcd1234"))
    assert [n.ssid for n in found][:2] == ["Kanarra Ops", "Kanarra Guest"]  # by signal
    assert status.state is wifi.StationState.CONNECTED
    assert status.ip4 == "192.168.1.42"
    assert device.ssid == "Kanarra Ops"
    assert device.log[-2:] == ["config Kanarra Ops", "apply"]


@pytest.mark.parametrize(
    ("ssid", "passphrase", "wrong", "hint"),
    [
        ("Kanarra Ops", "wrong", "passphrase was refused", "check the passphrase"),
        ("Nowhere", "x", "network was not found", "2.4 GHz"),
        ("Warehouse 5GHz-only", "staple", "network was not found", "in range"),
    ],
)
def test_failures_say_what_failed_and_what_to_try(
    ssid: str, passphrase: str, wrong: str, hint: str
) -> None:
    with running(DeviceConfig(delay_scale=FAST)) as (_, port), pytest.raises(WifiError) as err:
        asyncio.run(provision(port, ssid=ssid, passphrase=passphrase))
    assert wrong in str(err.value)
    assert hint in err.value.hint


def test_wrong_secrets_are_refused_and_no_credentials_leave() -> None:
    for cfg, kwargs in (
        (DeviceConfig(delay_scale=FAST), {"pop": "wrong-pop"}),
        (DeviceConfig(security=2, delay_scale=FAST), {"username": "wifiprov", "password": "wrong"}),
    ):
        with running(cfg) as (device, port):
            with pytest.raises(WifiError, match=r"refused the session|no secure session"):
                asyncio.run(provision(port, **kwargs))
            assert device.ssid is None  # the network settings never reached it
            assert any(line.startswith("session refused") for line in device.log)


def test_a_missing_pop_and_an_absent_device_are_explained() -> None:
    with (
        running(DeviceConfig(delay_scale=FAST)) as (_, port),
        pytest.raises(WifiError, match="needs its proof of possession"),
    ):
        asyncio.run(provision(port, pop=None))
    with running(DeviceConfig(delay_scale=FAST)) as (_, port):
        pass  # stopped: nothing listens on that port any more
    with pytest.raises(WifiError) as err:
        asyncio.run(provision(port))
    assert "provisioning mode" in err.value.hint


def test_user_association_and_reset() -> None:
    async def run(port: int) -> str:
        async with ProvisioningClient(f"127.0.0.1:{port}", timeout=5) as client:
            await client.read_version()
            await client.open_session(client.choose_security(None, "abcd1234", None, None))
            node = await client.associate_user("user-1", "secret-1")
            await client.configure("Kanarra Ops", "correct horse battery")
            await client.reset()
            return node

    cfg = DeviceConfig(delay_scale=FAST, node_id="NODE42")
    with running(cfg) as (device, port):
        assert asyncio.run(run(port)) == "NODE42"
    assert device.user_mapping == ("user-1", "secret-1")
    assert device.ssid is None
    assert device.log[-1] == "reset"


@pytest.mark.parametrize(
    "cfg",
    [
        DeviceConfig(security=0, delay_scale=FAST),
        DeviceConfig(security=1, delay_scale=FAST),
        DeviceConfig(security=2, delay_scale=FAST),
        DeviceConfig(security=2, patch_level=0, delay_scale=FAST),
    ],
    ids=["sec0", "sec1", "sec2", "sec2-patch0"],
)
def test_espressifs_client_provisions_the_emulator(cfg: DeviceConfig) -> None:
    with running(cfg) as (device, port):
        transport = prov_util.get_transport("softap", f"127.0.0.1:{port}")
        version = wifi.parse_version(prov_util.get_version(transport).encode("latin-1"))
        assert version.security == cfg.security
        sec = prov_util.get_security(
            cfg.security, cfg.patch_level, "wifiprov", "abcd1234", "abcd1234"
        )
        assert prov_util.establish_session(transport, sec)
        aps = prov_util.scan_wifi_APs("softap", transport, sec)
        assert "Kanarra Ops" in [ap["ssid"] for ap in aps]
        assert prov_util.send_wifi_config(transport, sec, "Kanarra Ops", "correct horse battery")
        assert prov_util.apply_wifi_config(transport, sec)
        state = "connecting"
        while state == "connecting":  # the emulator connects after its (scaled) delay
            state = prov_util.get_wifi_config(transport, sec)
        assert state == "connected"
    assert device.ssid == "Kanarra Ops"


def test_espressifs_client_with_a_wrong_pop_gets_nothing_through() -> None:
    with running(replace(DeviceConfig(), delay_scale=FAST)) as (device, port):
        transport = prov_util.get_transport("softap", f"127.0.0.1:{port}")
        sec = prov_util.get_security(1, 0, "", "", "not-the-pop")
        with pytest.raises(RuntimeError, match="error code 500"):  # the session is closed
            prov_util.establish_session(transport, sec)
    assert device.ssid is None


@pytest.mark.slow
def test_the_browser_page_lists_networks_and_follows_the_device(tmp_path: Any) -> None:
    """--browser: the page in headless Chromium, against the emulator."""
    import shutil
    from pathlib import Path

    from playwright.sync_api import expect, sync_playwright

    from provisiond.wifi.browser import hand_over
    from tests.conftest import IN_CI

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        if IN_CI:
            pytest.fail("Chromium is missing: apt-get install chromium (scripts/test does)")
        pytest.skip("Chromium is not installed")
    urls: list[str] = []
    got_url = threading.Event()
    outcome: dict[str, Any] = {}

    async def host(port: int) -> None:
        async with ProvisioningClient(f"127.0.0.1:{port}", timeout=5) as client:
            await client.read_version()
            await client.open_session(client.choose_security(None, "abcd1234", None, None))

            def opened(url: str) -> None:
                urls.append(url)
                got_url.set()

            outcome.update(await hand_over(client, limit=10, opened=opened))

    with running(DeviceConfig(delay_scale=0.3)) as (device, port):
        worker = threading.Thread(target=lambda: asyncio.run(host(port)), daemon=True)
        worker.start()
        assert got_url.wait(10)
        url = urls[0]
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page()
            forbidden = page.goto(url.split("?")[0])
            assert forbidden is not None
            assert forbidden.status == 403  # without the printed secret
            page.goto(url)
            expect(page.get_by_text("Kanarra Ops")).to_be_visible()
            expect(page.get_by_text("-48 dBm · WPA2 · ch 6")).to_be_visible()
            page.get_by_label("Passphrase").fill("wrong")
            page.get_by_role("button", name="Connect the device").click()
            expect(page.get_by_text("check the passphrase")).to_be_visible(timeout=15_000)
            page.get_by_label("Passphrase").fill("correct horse battery")
            page.get_by_role("button", name="Connect the device").click()
            expect(
                page.get_by_text("Connected to Kanarra Ops, address 192.168.1.42")
            ).to_be_visible(timeout=15_000)
            browser.close()
        worker.join(15)
    assert outcome["state"] == "connected"
    assert device.ssid == "Kanarra Ops"


@pytest.mark.parametrize("reply", [b"\xff\xfe garbage", b"", bytes(range(256)) * 40])
def test_malformed_or_hostile_device_replies_are_refused(reply: bytes) -> None:
    """A device that answers the settings with junk: a clear refusal, never a crash."""

    class Hostile(EmulatedDevice):
        async def config(self, request: bytes) -> bytes:
            return reply

    device = Hostile(DeviceConfig(delay_scale=FAST))
    loop = asyncio.new_event_loop()

    async def run() -> None:
        runner = await serve(device, "127.0.0.1", 0)
        try:
            async with ProvisioningClient(f"127.0.0.1:{bound_port(runner)}", timeout=5) as client:
                await client.read_version()
                await client.open_session(client.choose_security(None, "abcd1234", None, None))
                with pytest.raises(WifiError, match="did not take the settings"):
                    await client.configure("Kanarra Ops", "correct horse battery")
        finally:
            await runner.cleanup()

    loop.run_until_complete(run())
    loop.close()


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [("auth-error", "passphrase was refused"), ("network-not-found", "network was not found")],
)
def test_a_forced_outcome_is_what_the_client_reports(outcome: str, expected: str) -> None:
    with (
        running(DeviceConfig(delay_scale=FAST, outcome=outcome)) as (_, port),
        pytest.raises(WifiError, match=expected),
    ):
        asyncio.run(provision(port))  # the right passphrase, yet it fails as told
