"""The claim flow in a real browser: Debian's Chromium, headless, driven by Playwright, with a
fake camera that films a generated QR label.

Sign in -> scan the label -> a device emulator presses the claim button -> finish the form ->
the device is listed as the user's. Each step is screenshotted (into the test's directory, or
into PROVISIOND_SCREENSHOT_DIR: `PROVISIOND_SCREENSHOT_DIR=docs/screenshots scripts/test -k
browser` refreshes the pictures in docs/).
"""

from __future__ import annotations

import csv
import io
import os
import time
from pathlib import Path

import httpx
import pytest
import segno

from tests.integration.web.conftest import Server

pytestmark = pytest.mark.slow  # a real browser

PASSWORD = "correct horse battery"
PHONE = {"width": 390, "height": 844}


def write_y4m(path: Path, text: str, width: int = 640, height: int = 480) -> None:
    """A one-frame YUV4MPEG2 video (Chromium loops it) of a QR label on a grey table."""
    qr = segno.make(text, error="m")
    modules = qr.symbol_size(scale=1, border=4)[0]
    scale = min(width, height) * 3 // 4 // modules
    luma = bytearray([96]) * (width * height)
    left, top = (width - modules * scale) // 2, (height - modules * scale) // 2
    for y, row in enumerate(qr.matrix_iter(scale=scale, border=4)):
        start = (top + y) * width + left
        luma[start : start + len(row)] = bytes(16 if dark else 235 for dark in row)
    chroma = bytes([128]) * (width // 2 * height // 2)
    with path.open("wb") as f:
        f.write(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode())
        f.write(b"FRAME\n" + bytes(luma) + chroma + chroma)


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    target = os.environ.get("PROVISIOND_SCREENSHOT_DIR")
    out = Path(target) if target else tmp_path / "shots"
    out.mkdir(parents=True, exist_ok=True)
    return out


def test_claim_a_device_with_the_phone_camera(
    server: Server, api: httpx.Client, chromium: str, shots: Path, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    for path in ("Kanarra/Sadler-Isberg/West/Anaheim", "Kanarra/Sadler-Isberg/West/Irvine"):
        assert api.post("/api/v1/groups", json={"path": path}).status_code == 201
    assert (
        api.post(
            "/api/v1/models", json={"name": "UNO-2483G", "description": "Advantech gateway"}
        ).status_code
        == 201
    )
    assert (
        api.post(
            "/api/v1/users",
            json={
                "email": "tech@kanarra.example",
                "password": PASSWORD,
                "role": "installer",
                "group": "Kanarra/Sadler-Isberg",
            },
        ).status_code
        == 201
    )
    assert (
        api.post(
            "/api/v1/profiles", json={"name": "generators", "claim_proof": "button"}
        ).status_code
        == 201
    )
    r = api.post(
        "/api/v1/devices/import",
        params={"profile": "generators"},
        content="serial,firmware\nGEN-7QX2-4K,1.4\n",
        headers={"Content-Type": "text/csv"},
    )
    assert r.status_code == 201, r.text
    token = next(csv.DictReader(io.StringIO(r.text)))["secret"]
    video = tmp_path / "label.y4m"
    write_y4m(video, f"{server.url}/d/GEN-7QX2-4K")

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium,
            args=[
                "--no-sandbox",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-video-capture={video}",
            ],
        )
        context = browser.new_context(
            viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True
        )
        context.grant_permissions(["camera"], origin=server.url)
        page = context.new_page()
        refused: list[str] = []  # what the Content-Security-Policy blocked (nothing, we hope)
        page.on(
            "console",
            lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None,
        )

        page.goto(f"{server.url}/provision")  # not signed in: sign in first, then back here
        page.fill("#email", "tech@kanarra.example")
        page.fill("#password", PASSWORD)
        page.screenshot(path=shots / "1-sign-in.png")
        page.click("button[type=submit]")
        page.wait_for_url("**/provision")

        page.click("#scan-start")  # the camera films the label; the page posts what it reads
        expect(page.locator("#scan-status")).to_contain_text("Scanned", timeout=20_000)
        page.screenshot(path=shots / "2-scan.png")
        page.wait_for_url("**/claims/*", timeout=20_000)
        expect(page.locator("#proof-instructions")).to_be_visible()
        expect(page.locator("#finish-button")).to_be_disabled()
        page.screenshot(path=shots / "3-press-the-button.png")

        # the device emulator: the technician presses the button on the gateway
        pressed_at = time.perf_counter()
        with httpx.Client(base_url=server.url) as device:
            assert device.post(f"/api/v1/{token}/claim/button").json()["proven"] is True
        expect(page.locator("#proven")).to_be_visible(timeout=5_000)
        seen_after = time.perf_counter() - pressed_at
        expect(page.locator("#finish-button")).to_be_enabled()

        page.fill("#name", "KP002 generator")
        page.select_option("#group", label="Anaheim")
        page.select_option("#model", label="UNO-2483G — Advantech gateway")
        page.screenshot(path=shots / "4-finish.png")
        page.click("#finish-button")
        page.wait_for_url("**/devices/GEN-7QX2-4K")
        expect(page.locator("#device-owner")).to_have_text("tech@kanarra.example")
        page.screenshot(path=shots / "5-claimed.png")

        page.goto(f"{server.url}/devices")
        expect(page.locator("#device-list")).to_contain_text("KP002 generator")
        expect(page.locator("#device-list")).to_contain_text("tech@kanarra.example")
        page.screenshot(path=shots / "6-my-devices.png")
        browser.close()
    assert refused == []

    device = api.get("/api/v1/devices/GEN-7QX2-4K").json()
    assert (device["state"], device["owner"], device["group"], device["model"]) == (
        "claimed",
        "tech@kanarra.example",
        "Kanarra/Sadler-Isberg/West/Anaheim",
        "UNO-2483G",
    )
    assert seen_after < 5  # measured for the record; the bound is in benchmarks/


def test_the_typed_serial_path_works_without_javascript(
    server: Server, api: httpx.Client, chromium: str, shots: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    assert api.post("/api/v1/groups", json={"path": "Kanarra"}).status_code == 201
    assert (
        api.post(
            "/api/v1/users",
            json={
                "email": "tech@kanarra.example",
                "password": PASSWORD,
                "role": "admin",
                "group": "Kanarra",
            },
        ).status_code
        == 201
    )
    assert (
        api.post(
            "/api/v1/devices/import",
            content="serial\nPLAIN-0001\n",
            headers={"Content-Type": "text/csv"},
        ).status_code
        == 201
    )
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        context = browser.new_context(viewport=PHONE, java_script_enabled=False)
        page = context.new_page()
        page.goto(f"{server.url}/login")
        page.fill("#email", "tech@kanarra.example")
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.click(".tabbar >> text=Register device")  # the phone's tab
        expect(page.locator("#scanner")).to_be_hidden()  # no camera without JavaScript
        page.fill("#serial", " plain-0001 ")
        page.click("text=Continue")
        # no proof needed: the device is still named and placed at a site
        page.wait_for_url("**/claims/*")
        expect(page.locator("#finish-button")).to_be_enabled()
        page.fill("#name", "Pump 1")
        page.select_option("#group", label="Kanarra")
        page.click("#finish-button")
        page.wait_for_url("**/devices/PLAIN-0001")
        expect(page.locator("#device-state")).to_have_text("claimed")
        page.goto(f"{server.url}/overview")
        expect(page.locator("#funnel")).to_contain_text("Claimed")
        page.screenshot(path=shots / "7-overview.png")
        # release asks first, and says it happened
        page.goto(f"{server.url}/devices/PLAIN-0001")
        page.click("#release")
        expect(page.locator("h1")).to_have_text("Release PLAIN-0001?")
        page.click("#release-confirm")
        page.wait_for_url("**/devices?released=PLAIN-0001")
        expect(page.locator("#released")).to_contain_text("PLAIN-0001 was released")
        browser.close()
