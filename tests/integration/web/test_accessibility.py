"""Every page the app serves, checked by axe-core in Debian's Chromium (headless), at a phone's
size and a desktop's: no accessibility violation of impact serious or critical.

axe-core comes from the npm registry, pinned in package.json (a development dependency:
scripts/setup installs it into node_modules; it is not copied into the static files the app
serves). The test walks the pages as people do — sign in, claim devices with each proof,
browse, the error pages — and checks each state it reaches at both sizes. Every GET route of
web/pages/ must be reached (or be listed in NOT_PAGES with why): a new page is not forgotten.
"""

from __future__ import annotations

import csv
import importlib
import io
import pkgutil
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.routing import APIRoute

from provisiond.web import pages
from tests.conftest import IN_CI
from tests.integration.web.conftest import Server
from tests.integration.web.test_pages import server_settings  # noqa: F401 (the pages' limits)

AXE = Path(__file__).resolve().parents[3] / "node_modules" / "axe-core" / "axe.min.js"
PASSWORD = "correct horse battery"
SIZES = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1366, "height": 900}}
FAILING_IMPACTS = ("serious", "critical")
# GET routes of web/pages/ that render no page: what they answer instead.
NOT_PAGES = {
    "/": "a redirect to /devices or /login",
    "/manifest.webmanifest": "the web app manifest (JSON)",
    "/claims/{claim_id}/events": "the claim page's event stream",
}

# The violations of one page, as plain data (axe's results are large: keep what says what
# and where).
RUN_AXE = """async (impacts) => {
  const results = await axe.run(document, {resultTypes: ["violations"]});
  return results.violations
    .filter((v) => impacts.includes(v.impact))
    .map((v) => ({
      id: v.id, impact: v.impact, help: v.help, url: v.helpUrl,
      nodes: v.nodes.map((n) => ({
        target: n.target.join(" "), html: n.html, summary: n.failureSummary,
      })),
    }));
}"""


def get_routes() -> list[APIRoute]:
    """The GET routes of every module of web/pages/ (each flow's ``router``)."""
    routes = []
    for module in pkgutil.iter_modules(pages.__path__):
        router = getattr(importlib.import_module(f"{pages.__name__}.{module.name}"), "router", None)
        if router is not None:
            routes += [r for r in router.routes if isinstance(r, APIRoute) and "GET" in r.methods]
    return routes


def page_routes() -> list[APIRoute]:
    return [r for r in get_routes() if r.path not in NOT_PAGES]


def describe(violations: dict[str, list[dict[str, Any]]]) -> str:
    """The violations, page by page, readable in a test report."""
    lines = []
    for where, found in violations.items():
        lines.append(f"{where}:")
        for v in found:
            lines.append(f"  [{v['impact']}] {v['id']}: {v['help']} ({v['url']})")
            for node in v["nodes"][:5]:
                lines.append(f"    at {node['target']}: {node['html'][:160]}")
                summary = " ".join(node["summary"].split())
                lines.append(f"      {summary[:300]}")
            if len(v["nodes"]) > 5:
                lines.append(f"    … and {len(v['nodes']) - 5} more elements")
    return "\n".join(lines)


@dataclass
class Audit:
    """Runs axe on the page's current state at every size; remembers what it saw."""

    page: Any
    routes: list[APIRoute]
    violations: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    visited: set[str] = field(default_factory=set)
    checked: list[str] = field(default_factory=list)

    def __call__(self, what: str) -> None:
        path = urlsplit(self.page.url).path
        self.visited |= {r.path for r in self.routes if r.path_regex.match(path)}
        for size, viewport in SIZES.items():
            self.page.set_viewport_size(viewport)
            found = self.page.evaluate(RUN_AXE, list(FAILING_IMPACTS))
            if found:
                self.violations[f"{what} ({path}, {size})"] = found
        self.page.set_viewport_size(SIZES["phone"])  # people walk the flow on a phone
        self.checked.append(what)


@pytest.fixture
def axe_source() -> str:
    if not AXE.exists():
        if IN_CI:
            pytest.fail(f"{AXE} is missing: scripts/setup installs it (npm ci)")
        pytest.skip("axe-core is not installed (scripts/setup runs npm ci)")
    return AXE.read_text()


def organisation(api: httpx.Client) -> dict[str, str]:
    """Sites, users of each role, a model, profiles for the proofs, unclaimed devices;
    returns the button devices' access tokens."""
    for path in (
        "Kanarra/Sadler-Isberg/West/Anaheim",
        "Kanarra/Sadler-Isberg/West/Irvine",
        "Kanarra/Sadler-Isberg/East",
    ):
        assert api.post("/api/v1/groups", json={"path": path}).status_code == 201
    model = {"name": "UNO-2483G", "description": "Advantech gateway"}
    assert api.post("/api/v1/models", json=model).status_code == 201
    for email, role, group in (
        ("tech@kanarra.example", "installer", "Kanarra/Sadler-Isberg"),
        ("viewer@kanarra.example", "viewer", "Kanarra/Sadler-Isberg"),
        ("boss@kanarra.example", "admin", "Kanarra"),
    ):
        user = {"email": email, "password": PASSWORD, "role": role, "group": group}
        assert api.post("/api/v1/users", json=user).status_code == 201
    for proof in ("button", "code"):
        profile = {"name": proof, "claim_proof": proof, "claim_window": 600}
        assert api.post("/api/v1/profiles", json=profile).status_code == 201
    tokens = {}
    for profile, rows in (
        (None, "serial,model\nPLAIN-1,UNO-2483G\n"),
        ("button", "serial\nBTN-1\nBTN-2\n"),
        ("code", "serial\nCODE-1\n"),
    ):
        r = api.post(
            "/api/v1/devices/import",
            params={"profile": profile} if profile else {},
            content=rows,
            headers={"Content-Type": "text/csv"},
        )
        assert r.status_code == 201, r.text
        for row in csv.DictReader(io.StringIO(r.text)):
            if row["credential_type"] == "access-token":
                tokens[row["serial"]] = row["secret"]
    return tokens


@pytest.fixture
def browser_page(chromium: str, axe_source: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        context = browser.new_context(viewport=SIZES["phone"])
        context.add_init_script(script=axe_source)  # in every page, before the page's own
        yield context.new_page()
        browser.close()


@pytest.mark.slow  # a real browser
def test_every_page_has_no_serious_accessibility_violation(
    server: Server, api: httpx.Client, browser_page: Any
) -> None:
    from playwright.sync_api import expect

    tokens = organisation(api)
    page, url = browser_page, server.url
    check = Audit(page, page_routes())

    def sign_in(email: str, password: str = PASSWORD) -> None:
        page.goto(f"{url}/login")
        page.fill("#email", email)
        page.fill("#password", password)
        page.click("button[type=submit]")

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

    # an admin: the overview
    sign_in("boss@kanarra.example")
    page.wait_for_url("**/devices")
    page.goto(f"{url}/overview")
    expect(page.locator("#funnel")).to_contain_text("Claimed")
    check("overview")

    missed = {r.path for r in check.routes} - check.visited
    assert not missed, f"pages not checked (visit them here, or list them in NOT_PAGES): {missed}"
    assert not check.violations, (
        f"{len(check.violations)} of {len(check.checked) * len(SIZES)} page checks found "
        f"serious or critical accessibility violations:\n{describe(check.violations)}"
    )


def test_the_routes_left_out_are_routes() -> None:
    """NOT_PAGES names only routes that exist (a renamed route is then checked again)."""
    paths = {r.path for r in get_routes()}
    assert set(NOT_PAGES) <= paths
    assert {"/login", "/devices", "/claims/{claim_id}"} <= {r.path for r in page_routes()}
