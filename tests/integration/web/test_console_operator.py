"""Operator-wide console accounts: an admin of no group (`users create --operator-wide`, or
`operator_wide` in the API, by an operator-wide caller only) signs in to the console and sees
what the command line sees — every customer, and the stock of none — and changes the model
catalogue. Customers' admins never see, change or make such an account, and the operator's
account claims no device (it has no group to claim for).

Behaviour over real HTTP on both backends; the operator's walk in Chromium once (last test).
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.integration.web import browsing
from tests.integration.web.browsing import PASSWORD, Audit, screenshot
from tests.integration.web.conftest import Server
from tests.integration.web.test_console_devices import ADMIN, RIVAL, bulk, listed, setup, signed_in
from tests.integration.web.test_pages import server_settings  # noqa: F401 (its limits)

OPERATOR = "ops@provision.example"
STOCK = {"PLAIN-1", "BTN-1", "BTN-2", "CODE-1"}  # browsing.organisation's, of no group
CUSTOMERS = {"KAN-1", "KAN-2", "KAN-3", "TEK-1"}


def operator(api: httpx.Client, email: str = OPERATOR) -> None:
    body = {"email": email, "password": PASSWORD, "role": "admin", "operator_wide": True}
    r = api.post("/api/v1/users", json=body)
    assert r.status_code == 201, r.text
    assert r.json()["group"] is None


def test_an_operator_wide_admin_sees_every_customer_and_the_stock(
    server: Server, api: httpx.Client
) -> None:
    setup(api)
    operator(api)
    ops = signed_in(server, OPERATOR)
    assert set(listed(ops.get("/devices").text)) == STOCK | CUSTOMERS
    assert ops.get("/devices/PLAIN-1").status_code == 200
    assert "every group (operator-wide)" in ops.get("/admin").text
    # the customers' admins still see no stock, and only their own customer
    boss = signed_in(server, ADMIN)
    assert set(listed(boss.get("/devices").text)) == {"KAN-1", "KAN-2", "KAN-3"}
    assert set(listed(signed_in(server, RIVAL).get("/devices").text)) == {"TEK-1"}
    # the operator places stock with a customer, who then sees it
    r = bulk(ops, "move", ["PLAIN-1", "TEK-1"], confirm="yes", group="Kanarra/Sadler-Isberg/East")
    assert r.status_code == 200
    assert "2 done, 0 refused" in r.text
    assert {"PLAIN-1", "TEK-1"} <= set(listed(boss.get("/devices").text))
    # every group and every user
    groups = ops.get("/groups").text
    assert "Kanarra/Sadler-Isberg/West/Anaheim" in groups
    assert "Tekton" in groups
    people = ops.get("/users").text
    assert ADMIN in people
    assert RIVAL in people
    assert OPERATOR in people


def test_the_overview_counts_the_stock_for_the_operator_only(
    server: Server, api: httpx.Client
) -> None:
    """The overview's "Unclaimed stock" row: the devices of no group, which belong to no
    customer, are counted for an operator-wide admin — not for a top-level customer's."""
    setup(api)
    operator(api)

    def registered(page: str) -> int:
        found = re.search(r'id="count-registered">([\d,]+)<', page)
        assert found is not None, page[:2000]
        return int(found.group(1).replace(",", ""))

    everything = signed_in(server, OPERATOR).get("/overview").text
    kanarra = signed_in(server, ADMIN).get("/overview").text
    assert "Unclaimed stock" in everything
    assert "Unclaimed stock" not in kanarra
    assert registered(everything) == len(STOCK | CUSTOMERS)
    assert registered(kanarra) == 3  # KAN-1..3


def test_the_operator_changes_the_catalogue_and_a_customers_admin_cannot(
    server: Server, api: httpx.Client
) -> None:
    setup(api)
    operator(api)
    ops = signed_in(server, OPERATOR)
    page = ops.get("/models")
    assert 'action="/models"' in page.text
    assert 'id="catalogue-read-only"' not in page.text
    r = ops.post("/models", {"name": " ", "description": ""})
    assert r.status_code == 422
    assert 'id="name-error"' in r.text
    r = ops.post("/models", {"name": "RAK7268", "description": "LoRaWAN gateway"})
    assert r.status_code == 200
    assert "RAK7268 was added to the catalogue" in r.text
    r = ops.post("/models/delete", {"name": "UNO-2483G", "confirm": "yes"})
    assert "of model" in r.text  # KAN-1..3 are UNO-2483G: refused, and said why
    boss = signed_in(server, ADMIN)
    assert 'id="catalogue-read-only"' in boss.get("/models").text
    boss.post("/models", {"name": "ESP32-C3", "description": ""})
    boss.post("/models/delete", {"name": "RAK7268", "confirm": "yes"})
    assert sorted(m["name"] for m in api.get("/api/v1/models").json()) == ["RAK7268", "UNO-2483G"]


def test_the_instances_backlog_is_the_operators_and_each_admin_gets_their_webhooks(
    server: Server, api: httpx.Client
) -> None:
    """The outbox, broker, The Things Stack and instance figures count every customer's
    activity: an operator-wide admin's. A customer's admin reads their own webhooks' only."""
    setup(api)
    operator(api)
    r = api.post("/api/v1/webhooks", json={"group": "Kanarra", "url": "https://kanarra.example/h"})
    assert r.status_code == 201, r.text
    r = api.post("/api/v1/webhooks", json={"group": "Tekton", "url": "https://tekton.example/h"})
    assert r.status_code == 201, r.text
    everything = signed_in(server, OPERATOR).get("/integrations").text
    kanarra = signed_in(server, ADMIN).get("/integrations").text
    for figure in ('id="outbox-depth"', 'id="broker"', 'id="tts"', 'id="instances"'):
        assert figure in everything
        assert figure not in kanarra
    assert 'id="instance-figures-note"' in kanarra
    assert "https://kanarra.example/h" in kanarra
    assert "https://tekton.example/h" not in kanarra
    assert "https://tekton.example/h" in everything


def test_a_customers_admin_can_neither_reach_nor_make_an_operator_account(
    server: Server, api: httpx.Client
) -> None:
    """An admin of a top-level group covers every group below it, but not an account of no
    group: resetting its password would hand them the whole instance."""
    setup(api)
    operator(api)
    boss = signed_in(server, ADMIN)
    assert OPERATOR not in boss.get("/users").text
    assert boss.get(f"/users/{OPERATOR}").status_code == 404
    for action in ("reset-password", "disable", "role", "group"):
        boss.get("/users")
        r = boss.post(f"/users/{OPERATOR}/{action}", {"role": "viewer", "group": "Kanarra"})
        assert r.status_code == 404, (action, r.status_code)
    assert signed_in(server, OPERATOR).get("/admin").status_code == 200  # still able
    # nor through the API with a token of the customer's admin
    r = api.post("/api/v1/tokens", json={"name": "kanarra-ci", "group": "Kanarra"})
    assert r.status_code == 201, r.text
    with server.client(r.json()["secret"]) as kanarra:
        body = {"email": "mine@kanarra.example", "password": PASSWORD, "role": "admin"}
        r = kanarra.post("/api/v1/users", json={**body, "operator_wide": True})
        assert r.status_code == 403, r.text
        assert "operator-wide" in r.json()["detail"]
        listed_users = [u["email"] for u in kanarra.get("/api/v1/users").json()["items"]]
        assert OPERATOR not in listed_users
    assert "mine@kanarra.example" not in api.get("/api/v1/users").text


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({}, "give group"),
        ({"group": "Kanarra", "operator_wide": True}, "not both"),
        ({"operator_wide": True, "role": "installer"}, "an operator-wide user is an admin"),
    ],
)
def test_an_operator_account_is_asked_for_plainly(
    server: Server, api: httpx.Client, extra: dict[str, Any], message: str
) -> None:
    body = {"email": "new@provision.example", "password": PASSWORD, "role": "admin", **extra}
    r = api.post("/api/v1/users", json=body)
    assert r.status_code == 422, r.text
    assert message in r.json()["detail"]
    assert [p["field"] for p in r.json()["errors"]] == ["group"]
    assert api.get("/api/v1/users").json()["items"] == []


def test_the_operator_claims_nothing_and_stays_an_admin(server: Server, api: httpx.Client) -> None:
    setup(api)
    operator(api)
    operator(api, "ops2@provision.example")
    ops = signed_in(server, OPERATOR)
    assert 'href="/provision"' not in ops.get("/admin").text
    r = ops.get("/provision")
    assert r.status_code == 403
    assert "operator-wide account belongs to no group" in r.text
    assert api.get("/api/v1/devices/PLAIN-1").json()["state"] == "registered"
    # another operator cannot make it an installer: it would be an installer of no group
    other = signed_in(server, "ops2@provision.example")
    other.get(f"/users/{OPERATOR}")
    r = other.post(f"/users/{OPERATOR}/role", {"role": "installer"})
    assert r.status_code == 422
    assert 'id="role-error"' in r.text
    roles = {u["email"]: u["role"] for u in api.get("/api/v1/users").json()["items"]}
    assert roles[OPERATOR] == "admin"


@pytest.mark.slow  # a real browser
@pytest.mark.sqlite_only  # the pages are backend-agnostic; the services run on both above
def test_the_operators_console_in_a_browser(
    server: Server, api: httpx.Client, browser_page: Any
) -> None:
    from playwright.sync_api import expect

    setup(api)
    operator(api)
    page, url = browser_page, server.url
    page.set_viewport_size(browsing.SIZES["desktop"])
    check = Audit(page, [], size="desktop")
    browsing.sign_in(page, url, OPERATOR)
    page.wait_for_url("**/devices")
    for serial in sorted(STOCK):
        expect(page.locator("#device-table")).to_contain_text(serial)
    check("operator: every device, the stock too")
    screenshot(page, "console-operator-devices")
    # the stock of no group, placed with a customer in one bulk move
    page.goto(f"{url}/devices?q=BTN")
    page.check("#select-page")
    page.click("#bulk >> text=Move…")
    page.select_option("#group", "Kanarra/Sadler-Isberg/West/Irvine")
    check("operator: moving stock, choosing the group")
    page.click("#bulk-confirm")
    expect(page.locator("#bulk-summary")).to_have_text("2 done, 0 refused.")
    check("operator: stock moved to a customer")
    page.goto(f"{url}/models")
    page.fill("#name", "RAK7268")
    page.fill("#description", "LoRaWAN gateway")
    page.click("#add-model >> button[type=submit]")
    expect(page.locator("#notice")).to_have_text("RAK7268 was added to the catalogue.")
    expect(page.locator("#models")).to_contain_text("LoRaWAN gateway")
    check("operator: the catalogue, a model added")
    page.goto(f"{url}/overview")
    expect(page.locator("#by-group")).to_contain_text("Unclaimed stock")
    check("operator: the overview, with the stock")
    page.goto(f"{url}/integrations")
    expect(page.locator("#outbox-depth")).to_be_visible()
    check("operator: the instance's backlog")
    check.assert_clean()
    for serial in ("BTN-1", "BTN-2"):
        assert api.get(f"/api/v1/devices/{serial}").json()["group"] == (
            "Kanarra/Sadler-Isberg/West/Irvine"
        )
