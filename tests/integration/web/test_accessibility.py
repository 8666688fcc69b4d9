"""Every page the app serves, checked by axe-core in Debian's Chromium (headless), at a phone's
size and a desktop's: no accessibility violation of impact serious or critical.

axe-core comes from the npm registry, pinned in package.json (a development dependency:
scripts/setup installs it into node_modules; it is not copied into the static files the app
serves). The test walks the pages as people do — sign in, claim devices with each proof,
browse, the error pages — and checks each state it reaches at both sizes. Every GET route of
web/pages/ walked here must be reached (or be listed in NOT_PAGES with why); a module of
web/pages/ not walked here is audited by its own test (browsing.Audit): a new page is not
forgotten.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.web import browsing
from tests.integration.web.browsing import (
    PASSWORD,
    Audit,
    organisation,
    page_modules,
    routes_of,
)
from tests.integration.web.conftest import Server
from tests.integration.web.test_pages import server_settings  # noqa: F401 (the pages' limits)

HERE = Path(__file__).parent
# The modules of web/pages/ whose pages this test walks; every other one has a test of its
# own that audits its routes (`routes_of("<module>")` in tests/integration/web/).
WALKED = ("sign_in", "claim", "devices", "overview", "console")
# GET routes walked here that render no page: what they answer instead.
NOT_PAGES = {
    "/": "a redirect to /devices or /login",
    "/manifest.webmanifest": "the web app manifest (JSON)",
    "/claims/{claim_id}/events": "the claim page's event stream",
    "/devices/export.csv": "an admin's device list as CSV (a download)",
}


def assert_within_thumb_reach(page: Any, selector: str) -> None:
    """On a phone, the page's primary action is on screen without scrolling, in the lower
    half (where a thumb reaches), above the tab bar."""
    page.evaluate("window.scrollTo(0, 0)")
    box = page.locator(selector).bounding_box()
    tabbar = page.locator(".tabbar").bounding_box()
    height = page.viewport_size["height"]
    assert box is not None
    assert tabbar is not None
    assert height / 2 <= box["y"], (box, height)
    assert box["y"] + box["height"] <= tabbar["y"], (box, tabbar)


def page_routes() -> list[Any]:
    return [r for r in routes_of(*WALKED) if r.path not in NOT_PAGES]


@pytest.mark.slow  # a real browser
def test_every_page_has_no_serious_accessibility_violation(
    server: Server, api: httpx.Client, browser_page: Any
) -> None:
    from playwright.sync_api import expect

    tokens = organisation(api)
    page, url = browser_page, server.url
    check = Audit(page, page_routes())

    def sign_in(email: str, password: str = PASSWORD) -> None:
        browsing.sign_in(page, url, email, password)

    def post_without_csrf(path: str) -> None:
        """A form of an old page: its CSRF token no longer matches."""
        with page.expect_navigation():
            page.evaluate(
                """(path) => { const f = document.createElement("form");
                f.method = "post"; f.action = path; document.body.append(f); f.submit(); }""",
                path,
            )

    def start_claim(serial: str) -> str:
        page.goto(f"{url}/provision")
        page.fill("#serial", serial)
        page.click("text=Continue")
        page.wait_for_url(re.compile(r".*/claims/[0-9a-f-]+$"))
        return str(page.url)

    # signing in: the form, a wrong password, a form that expired
    page.goto(f"{url}/")
    check("sign-in")
    sign_in("tech@kanarra.example", "not the password")
    expect(page.locator(".alert-danger")).to_be_visible()
    check("sign-in, wrong password")
    page.goto(f"{url}/login")
    page.context.clear_cookies()  # the form's token is gone (an hour passed)
    page.fill("#email", "tech@kanarra.example")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Form expired")
    check("error: form expired, signed out")

    # an installer: the empty list, the claim form, a code that is not a label
    sign_in("tech@kanarra.example")
    page.wait_for_url("**/devices")
    check("devices, none yet")
    page.goto(f"{url}/provision")
    check("claim: start")
    assert_within_thumb_reach(page, "#provision-form button[type=submit]")
    page.fill("#serial", "MT:Y.K90GSY00KA0648G00")
    page.click("text=Continue")
    expect(page.locator("#serial")).to_have_class(re.compile("is-invalid"))
    check("claim: start, wrong code scanned")

    # a label's URL, a device that needs no proof (named and placed), its page, its release
    page.goto(f"{url}/d/PLAIN-1")
    check("label: claim form")
    page.click("text=Continue")
    expect(page.locator("#finish-button")).to_be_enabled(timeout=10_000)
    check("claim: finish, no proof needed")
    page.fill("#name", "KP001 meter")
    page.select_option("#group", label="Anaheim")
    page.click("#finish-button")
    page.wait_for_url("**/devices/PLAIN-1")
    check("device, claimed (may release)")
    page.click("#release")
    page.wait_for_url("**/devices/PLAIN-1/release")
    expect(page.locator("#release-confirm")).to_be_visible()
    check("device: release, asking to confirm")

    # claim code proof: the form, a wrong code
    start_claim("CODE-1")
    check("claim: proof by code")
    page.fill("#code", "7KQ4-MZ2X-9HRA")
    page.click("text=Check")
    expect(page.locator("#code")).to_have_class(re.compile("is-invalid"))
    check("claim: proof by code, wrong code")

    # button proof: waiting, proven, finish refused, done
    claim = start_claim("BTN-1")
    expect(page.locator("#proof-instructions")).to_be_visible()
    check("claim: proof by button")
    with httpx.Client(base_url=url) as device:
        assert device.post(f"/api/v1/{tokens['BTN-1']}/claim/button").json()["proven"]
    expect(page.locator("#finish-button")).to_be_enabled(timeout=10_000)
    check("claim: finish")
    page.fill("#name", "")
    page.click("#finish-button")
    expect(page.locator("#name")).to_have_class(re.compile("is-invalid"))
    check("claim: finish, problems")
    assert_within_thumb_reach(page, "#finish-button")
    page.fill("#name", "KP002 generator")
    page.select_option("#group", label="Anaheim")
    page.select_option("#model", label="UNO-2483G — Advantech gateway")
    page.click("#finish-button")
    page.wait_for_url("**/devices/BTN-1")
    page.goto(claim)
    expect(page.locator("[data-show-when=completed]")).to_be_visible()
    check("claim: done")

    # a cancelled claim
    claim = start_claim("BTN-2")
    page.click("text=Cancel this claim")
    page.wait_for_url("**/provision")
    page.goto(claim)
    expect(page.locator("[data-show-when=cancelled]")).to_be_visible()
    check("claim: cancelled")

    # the list, a bad page cursor, a missing device, a form that expired
    page.goto(f"{url}/devices")
    expect(page.locator("#device-list")).to_contain_text("KP002 generator")
    check("devices")
    page.goto(f"{url}/devices?q=zz&cursor=not-a-cursor")
    check("devices, bad cursor")
    page.goto(f"{url}/devices/NO-SUCH-1")
    expect(page.locator("h1")).to_have_text("Not found")
    check("error: not found")
    post_without_csrf("/logout")
    expect(page.locator("h1")).to_have_text("Form expired")
    check("error: form expired, signed in")
    page.click("text=Sign out")
    page.wait_for_url("**/login")

    # a viewer: may look, may not claim
    sign_in("viewer@kanarra.example")
    page.wait_for_url("**/devices")
    page.goto(f"{url}/devices/PLAIN-1")
    check("device, as a viewer")
    page.goto(f"{url}/provision")
    expect(page.locator("h1")).to_have_text("Not allowed")
    check("error: not allowed")
    page.click("text=Sign out")

    # an admin: the console's device list, a device's delete question, the overview
    sign_in("boss@kanarra.example")
    page.wait_for_url("**/devices")
    expect(page.locator("#device-filters")).to_be_visible()
    check("devices, an admin's console list")
    page.goto(f"{url}/devices/PLAIN-1/delete")
    expect(page.locator("#delete-confirm")).to_be_visible()
    check("device: delete, asking to confirm")
    page.goto(f"{url}/overview")
    expect(page.locator("#funnel")).to_contain_text("Claimed")
    check("overview")
    page.goto(f"{url}/admin")
    expect(page.locator("#console-sections")).to_contain_text("Profiles")
    check("console")

    check.assert_clean()


def test_the_routes_left_out_are_routes() -> None:
    """NOT_PAGES names only routes that exist (a renamed route is then checked again)."""
    paths = {r.path for r in routes_of(*WALKED)}
    assert set(NOT_PAGES) <= paths
    assert {"/login", "/devices", "/claims/{claim_id}"} <= {r.path for r in page_routes()}


def test_every_page_module_is_audited() -> None:
    """A module of web/pages/ not walked here has a test that audits its routes."""
    own = Path(__file__).name
    tests = "\n".join(p.read_text() for p in HERE.glob("test_*.py") if p.name != own)
    unaudited = [m for m in page_modules() if m not in WALKED and f'routes_of("{m}")' not in tests]
    assert not unaudited, f"modules of web/pages/ no browser test audits: {unaudited}"
