"""The overview page: its period form (presets, ranges, messages on their fields), its
scope (another customer's devices and claims never count), admins only — over HTTP on both
backends — and one walk in Chromium with its accessibility audit and screenshot.

The figures themselves are compared with a naive count in tests/integration/
test_overview_figures.py.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.integration.web.browsing import Audit, routes_of, screenshot, sign_in
from tests.integration.web.conftest import Server
from tests.integration.web.test_pages import (  # noqa: F401 (fixtures: the pages' limits, a fleet)
    PASSWORD,
    Browser,
    fleet,
    server_settings,
    signed_in,
)


def figure(page: str, name: str) -> int:
    found = re.search(rf'id="count-{name}">([\d,]+)<', page)
    assert found is not None, name
    return int(found.group(1).replace(",", ""))


def fail_a_claim(server: Server, email: str, codes: dict[str, str]) -> None:
    """Five wrong claim codes for CODE-1: the claim fails."""
    person = signed_in(server, email)
    claim_path = person.post("/provision", {"serial": "CODE-1", "target": "group"}).headers[
        "location"
    ]
    right = codes["CODE:CODE-1"].replace("-", "")
    alphabet = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
    statuses = []
    for n in range(5):  # wrong codes with a valid check character
        body = list(right[:-1])
        body[n] = alphabet[(alphabet.index(body[n]) + 1) % 31]
        body[n + 1] = alphabet[(alphabet.index(body[n + 1]) - 2) % 31]
        total = sum((i + 1) * alphabet.index(c) for i, c in enumerate(body))
        wrong = "".join(body) + alphabet[total % 31]
        statuses.append(person.post(f"{claim_path}/proof", {"code": wrong}).status_code)
    assert statuses[-1] == 409


def test_the_overview_counts_the_admins_subtree_only(
    server: Server, request: pytest.FixtureRequest, api: httpx.Client
) -> None:
    codes = request.getfixturevalue("fleet")
    for email, group in (
        ("boss@tekton.example", "Tekton"),
        ("sub@kanarra.example", "Kanarra/Sadler-Isberg"),
    ):
        user = {"email": email, "password": PASSWORD, "role": "admin", "group": group}
        assert api.post("/api/v1/users", json=user).status_code == 201
    rows = "serial,group\n" + "".join(f"TEK-{i},Tekton\n" for i in range(2, 7))
    rows += "".join(f"EAST-{i},Kanarra/Sadler-Isberg/East\n" for i in range(3))
    r = api.post("/api/v1/devices/import", content=rows, headers={"Content-Type": "text/csv"})
    assert r.status_code == 201, r.text
    fail_a_claim(server, "tech@kanarra.example", codes)  # a Kanarra installer's claim fails

    stock = 7  # PLAIN-1..3, BTN-1..2, CODE-1, SEC-1: nobody's, an operator-wide admin's only
    ops = {"email": "ops@provision.example", "password": PASSWORD, "role": "admin"}
    assert api.post("/api/v1/users", json={**ops, "operator_wide": True}).status_code == 201
    boss = signed_in(server, "boss@kanarra.example").get("/overview").text
    tekton = signed_in(server, "boss@tekton.example").get("/overview").text
    sub = signed_in(server, "sub@kanarra.example").get("/overview").text
    everyone = signed_in(server, "ops@provision.example").get("/overview").text
    assert figure(boss, "registered") == 3  # no stock, even at the top of a customer
    assert figure(boss, "claimed") == 3
    assert figure(tekton, "registered") == 6  # TEK-1..6
    assert figure(tekton, "claimed") == 6
    assert figure(sub, "registered") == 3
    assert figure(everyone, "registered") == 3 + 6 + stock
    assert figure(everyone, "claimed") == 3 + 6
    assert figure(everyone, "failed") == 1
    # the failed claim is Kanarra's (its claimer's), not Tekton's
    assert figure(boss, "failed") == 1
    assert figure(sub, "failed") == 1
    assert "too many wrong claim codes" in boss
    assert figure(tekton, "failed") == 0
    assert "TEK-" not in boss
    assert "EAST-" not in tekton
    # by group: the admin's child groups; the operator's top-level groups, stock apart
    assert re.search(r'<th scope="row">Sadler-Isberg</th><td class="text-end">3<', boss)
    assert "Unclaimed stock" not in boss
    assert re.search(r'<th scope="row">Kanarra</th><td class="text-end">3<', everyone)
    assert re.search(r'<th scope="row">Tekton</th><td class="text-end">6<', everyone)
    assert re.search(r'<th scope="row">Unclaimed stock</th><td class="text-end">7<', everyone)
    assert re.search(r'<th scope="row">East</th><td class="text-end">3<', sub)


@pytest.mark.usefixtures("fleet")
def test_the_period_form_checks_its_fields(server: Server, api: httpx.Client) -> None:
    # an operator-wide admin, who counts all the fleet's eight devices (seven are stock)
    ops = {"email": "ops@provision.example", "password": PASSWORD, "role": "admin"}
    assert api.post("/api/v1/users", json={**ops, "operator_wide": True}).status_code == 201
    boss = signed_in(server, "ops@provision.example")
    page = boss.get("/overview?days=7")
    assert page.status_code == 200
    assert '<option value="7" selected>' in page.text
    assert figure(page.text, "registered") == 8
    r = boss.get("/overview?from=2026-01-01&to=2026-01-31")
    assert r.status_code == 200
    assert "<strong>2026-01-01</strong> to <strong>2026-01-31</strong>" in r.text
    assert figure(r.text, "registered") == 0  # nothing was registered then
    for query, field, message in (
        ("days=5", "days", "choose 7, 30, 90 days, or a custom range"),
        ("days=custom&from=2026-13-01&to=2026-01-31", "from", "is not a date"),
        ("from=2026-02-01&to=2026-01-01", "to", "is before the first day of the range"),
        ("from=2024-01-01&to=2025-06-01", "to", "at most 366 days"),
        ("from=2026-01-01", "to", "give both days of the range"),
        ("from=2999-01-01&to=2999-01-02", "from", "is after today"),
    ):
        r = boss.get(f"/overview?{query}")
        assert r.status_code == 400, query
        error = re.search(rf'<div class="invalid-feedback" id="{field}-error">([^<]+)<', r.text)
        assert error is not None, (query, r.text[:2000])
        assert message in error.group(1), (query, error.group(1))
        assert f'aria-describedby="{field}-error' in r.text
        assert 'id="count-registered"' not in r.text  # no figures for no period


@pytest.mark.usefixtures("fleet")
def test_only_admins_see_the_overview(server: Server) -> None:
    for email in ("tech@kanarra.example", "viewer@kanarra.example", "rival@tekton.example"):
        person = signed_in(server, email)
        for query in ("", "?days=7", "?days=5"):
            r = person.get(f"/overview{query}")
            assert r.status_code == 403, (email, query)
            assert "count-registered" not in r.text
    anonymous = Browser(server)
    r = anonymous.get("/overview?days=7")
    assert r.status_code == 303
    assert r.headers["location"] == "/login?next=/overview%3Fdays%3D7"


@pytest.mark.slow  # a real browser
@pytest.mark.sqlite_only  # the page is backend-agnostic; its figures are tested on both
def test_console_overview_in_a_browser(
    server: Server, request: pytest.FixtureRequest, api: httpx.Client, browser_page: Any
) -> None:
    from playwright.sync_api import expect

    codes = request.getfixturevalue("fleet")

    page, url = browser_page, server.url
    check = Audit(page, routes_of("overview"), size="desktop")
    page.set_viewport_size({"width": 1366, "height": 900})
    rows = "serial,model,group\n" + "".join(
        f"WEST-{i},UNO-2483G,Kanarra/Sadler-Isberg/West/{'Anaheim' if i % 2 else 'Irvine'}\n"
        for i in range(12)
    )
    r = api.post("/api/v1/devices/import", content=rows, headers={"Content-Type": "text/csv"})
    assert r.status_code == 201, r.text
    fail_a_claim(server, "tech@kanarra.example", codes)

    sign_in(page, url, "boss@kanarra.example")
    page.goto(f"{url}/overview")
    expect(page.locator("#count-registered")).to_have_text("12")
    expect(page.locator("#count-failed")).to_have_text("1")
    expect(page.locator("#funnel-chart")).to_have_attribute("role", "img")
    expect(page.locator("#by-group")).not_to_contain_text("Unclaimed stock")
    expect(page.locator("#endings-by-reason")).to_contain_text("too many wrong claim codes")
    check("overview: the last 30 days")
    screenshot(page, "console-overview")

    # another period: a preset
    page.select_option("#days", "7")
    page.click("#period-show")
    page.wait_for_url("**/overview?days=7*")
    expect(page.locator("#period-said")).to_contain_text("(7 days)")
    expect(page.locator("#count-registered")).to_have_text("12")
    check("overview: the last 7 days")

    # a range typed in: the preset switches to it (overview.js); an empty range has no figures
    page.fill("#from", "2026-01-01")
    page.dispatch_event("#from", "change")
    expect(page.locator("#days")).to_have_value("custom")
    page.fill("#to", "2026-01-31")
    page.click("#period-show")
    expect(page.locator("#period-said")).to_contain_text("2026-01-01")
    expect(page.locator("#count-registered")).to_have_text("0")
    expect(page.locator("#no-endings")).to_be_visible()
    check("overview: a range with nothing in it")

    # an invalid range: the message on its field, no figures
    page.fill("#from", "2026-02-01")
    page.fill("#to", "2026-01-01")
    page.click("#period-show")
    expect(page.locator("#to-error")).to_contain_text("is before the first day of the range")
    expect(page.locator("#to")).to_have_class(re.compile("is-invalid"))
    expect(page.locator("#count-registered")).to_have_count(0)
    check("overview: an invalid period")
    screenshot(page, "console-overview-invalid-period")
    check.assert_clean()
