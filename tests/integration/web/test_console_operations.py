"""The console's operations pages (web/pages/operations.py): the model catalogue, operator
tokens, webhooks and their delivery logs, the integrations' status and the audit log.

The httpx tests run against a real server on both backends: the role gate on every route,
CSRF, messages on their fields with nothing changed, secrets shown once, and one customer's
admin kept from another's tokens, webhooks, deliveries and events. The browser test walks
every page in Chromium at a desktop's size, with a webhook receiver on loopback that fails,
then answers."""

from __future__ import annotations

import html
import re
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from provisiond.settings import Settings, load_settings
from provisiond.web.pages import operations
from tests.integration.web import browsing
from tests.integration.web.browsing import PASSWORD, Audit, organisation, routes_of, screenshot
from tests.integration.web.conftest import CLIENT_TLS, Server
from tests.support.receiver import Receiver, receiver

RIVAL = "rival@tekton.example"


@pytest.fixture
def server_settings(database_url: str) -> Settings:
    """Receivers on loopback are allowed; a delivery gives up after its first attempt."""
    return load_settings(
        database_url=database_url,
        log_level="warning",
        sessions__login_rate_per_minute=1000,
        webhooks__allow_networks=["127.0.0.0/8"],
        webhooks__max_attempts=1,
    )


@pytest.fixture
def flaky() -> Iterator[Receiver]:
    with receiver() as r:
        r.answer = lambda _n: 500
        yield r


class Browser:
    """A person's browser over httpx: cookies, and the CSRF token of the last page."""

    def __init__(self, server: Server) -> None:
        self.http = httpx.Client(
            base_url=server.url, follow_redirects=False, timeout=30, verify=CLIENT_TLS
        )
        self.csrf = ""

    def get(self, path: str, **params: str) -> httpx.Response:
        r = self.http.get(path, params=params or None)
        found = re.search(r'name="csrf" value="([^"]+)"', r.text)
        if found:
            self.csrf = found.group(1)
        return r

    def post(
        self,
        path: str,
        data: dict[str, str] | list[tuple[str, str]] | None = None,
        *,
        csrf: bool = True,
    ) -> httpx.Response:
        """A form (a list of pairs for a field given more than once)."""
        form = list(data.items()) if isinstance(data, dict) else list(data or [])
        if csrf:
            form.append(("csrf", self.csrf))
        body = str(httpx.QueryParams(form)).encode()
        return self.http.post(
            path, content=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
        )


def signed_in(server: Server, email: str) -> Browser:
    b = Browser(server)
    login = b.http.get("/login")
    token = re.search(r'name="login_csrf" value="([^"]+)"', login.text)
    assert token is not None
    r = b.http.post(
        "/login",
        data={"email": email, "password": PASSWORD, "login_csrf": token.group(1), "next": "/"},
    )
    assert r.status_code == 303, r.text
    b.get("/admin")
    return b


def rival_customer(api: httpx.Client, flaky: Receiver) -> dict[str, str]:
    """Tekton, another customer: its admin, a token, a webhook with a delivery, a device."""
    assert api.post("/api/v1/groups", json={"path": "Tekton/Plant"}).status_code == 201
    user = {"email": RIVAL, "password": PASSWORD, "role": "admin", "group": "Tekton"}
    assert api.post("/api/v1/users", json=user).status_code == 201
    r = api.post("/api/v1/tokens", json={"name": "tekton-ci", "group": "Tekton"})
    assert r.status_code == 201, r.text
    r = api.post("/api/v1/webhooks", json={"group": "Tekton", "url": flaky.url})
    assert r.status_code == 201, r.text
    hook = r.json()["id"]
    r = api.post("/api/v1/devices", json={"serial": "TEK-1", "group": "Tekton/Plant"})
    assert r.status_code == 201, r.text
    flaky.wait_for(1)
    delivery = wait_for_delivery(api, hook, "failed")
    return {"token": "tekton-ci", "webhook": hook, "delivery": str(delivery["id"])}


def wait_for_delivery(api: httpx.Client, hook: str, status: str) -> dict[str, Any]:
    """The webhook's newest delivery, once the server's deliverer has given it ``status``."""
    deadline = time.monotonic() + 30
    while True:
        log = api.get(f"/api/v1/webhooks/{hook}/deliveries").json()
        if log and log[0]["status"] == status:
            return dict(log[0])
        assert time.monotonic() < deadline, log
        time.sleep(0.05)


def same_page(a: httpx.Response, b: httpx.Response, a_names: str, b_names: str) -> bool:
    """Two answers alike but for what each request named (and the session's CSRF token)."""
    either = re.compile(rf"(?<![\w-])({re.escape(a_names)}|{re.escape(b_names)})(?![\w-])")

    def norm(r: httpx.Response) -> str:
        return either.sub("NAME", re.sub(r'name="csrf" value="[^"]+"', "", r.text))

    return a.status_code == b.status_code and norm(a) == norm(b)


def table(r: httpx.Response, table_id: str) -> str:
    """The HTML of one table of a page."""
    found = re.search(rf'<table[^>]* id="{table_id}">.*?</table>', r.text, re.S)
    assert found is not None, table_id
    return found.group(0)


def route_paths(webhook: str) -> tuple[list[str], list[str]]:
    """Every GET and POST path of the module, with a real webhook id in it."""
    gets, posts = [], []
    for route in operations.router.routes:
        path = route.path.replace("{webhook_id}", webhook)  # type: ignore[attr-defined]
        methods = route.methods  # type: ignore[attr-defined]
        (gets if "GET" in methods else posts).append(path)
    return gets, posts


# --------------------------------------------------------------------------- roles, CSRF


def test_installers_and_viewers_get_403_on_every_route(server: Server, api: httpx.Client) -> None:
    organisation(api)
    hook = api.post("/api/v1/webhooks", json={"group": "Kanarra", "url": "https://example.com/h"})
    assert hook.status_code == 201, hook.text
    gets, posts = route_paths(hook.json()["id"])
    assert {"/models", "/tokens", "/webhooks", "/integrations", "/audit"} <= set(gets)
    for email in ("tech@kanarra.example", "viewer@kanarra.example"):
        b = signed_in(server, email)
        b.get("/devices")
        for path in gets:
            r = b.get(path)
            assert r.status_code == 403, (email, path)
            assert "The console is for admins" in r.text
        for path in posts:
            r = b.post(path, {"name": "x", "confirm": "yes", "url": "https://example.com/x"})
            assert r.status_code == 403, (email, path)
    boss = signed_in(server, "boss@kanarra.example")
    for path in gets:
        assert boss.get(path).status_code == 200, path
    assert api.get("/api/v1/webhooks").json()["items"][0]["enabled"]  # nothing changed


def test_forms_need_csrf_show_messages_on_fields_and_change_nothing(
    server: Server, api: httpx.Client
) -> None:
    organisation(api)
    tokens_before = api.get("/api/v1/tokens").json()["items"]
    boss = signed_in(server, "boss@kanarra.example")
    boss.get("/tokens")

    r = boss.post("/tokens", {"name": "erp", "group": "Kanarra", "role": "admin"}, csrf=False)
    assert r.status_code == 403
    assert "Form expired" in r.text
    r = boss.post("/tokens", {"name": "no spaces", "group": "Kanarra", "role": "admin"})
    assert r.status_code == 422
    assert 'id="name-error"' in r.text
    assert "may hold only letters" in r.text
    assert 'value="no spaces"' in r.text  # the form comes back as it was posted
    r = boss.post("/tokens", {"name": "erp", "group": "Tekton", "role": "admin"})
    assert r.status_code == 404
    assert 'id="group-error"' in r.text
    assert "no group &#39;Tekton&#39;" in r.text
    r = boss.post("/tokens", {"name": "erp", "group": "", "role": "admin"})
    assert r.status_code == 403
    assert 'id="group-error"' in r.text
    r = boss.post("/tokens", {"name": "erp", "group": "Kanarra", "role": "root"})
    assert (r.status_code, 'id="role-error"' in r.text) == (422, True)
    r = boss.post(
        "/tokens", {"name": "erp", "group": "Kanarra", "role": "admin", "expires": "last week"}
    )
    assert (r.status_code, 'id="expires-error"' in r.text) == (422, True)
    assert api.get("/api/v1/tokens").json()["items"] == tokens_before

    boss.get("/webhooks")
    for url, message in (
        ("ftp://example.com/h", "must be an http:// or https:// URL"),
        ("http://10.1.2.3/h", "must be a public destination"),
    ):
        r = boss.post("/webhooks", {"url": url, "group": "Kanarra"})
        assert r.status_code == 422, url
        assert 'id="url-error"' in r.text
        assert message in r.text
    r = boss.post(
        "/webhooks",
        [("url", "https://example.com/h"), ("group", "Kanarra"), ("events", "device.exploded")],
    )
    assert (r.status_code, 'id="events-error"' in r.text) == (422, True)
    assert api.get("/api/v1/webhooks").json()["items"] == []

    r = boss.get("/audit", since="yesterday", kind="device.claimed")
    assert r.status_code == 422
    assert 'id="since-error"' in r.text
    assert 'value="yesterday"' in r.text
    assert boss.get("/audit", cursor="not-a-cursor").status_code == 422

    # the catalogue is global: a customer's admin reads it, only an operator changes it
    r = boss.get("/models")
    assert "UNO-2483G" in r.text
    assert 'id="catalogue-read-only"' in r.text
    assert 'action="/models"' not in r.text
    r = boss.post("/models", {"name": "RAK7268", "description": "LoRaWAN gateway"})
    assert r.status_code == 403
    assert "operator-wide admins" in r.text
    r = boss.post("/models", {"name": " ", "description": ""})
    assert r.status_code == 422  # checked before the scope: said where the form would be
    assert 'id="form-error">is empty<' in r.text
    r = boss.post("/models/delete", {"name": "UNO-2483G", "confirm": "yes"})
    assert r.status_code == 403
    assert [m["name"] for m in api.get("/api/v1/models").json()] == ["UNO-2483G"]


def test_what_a_page_cannot_read_gets_a_page_not_a_problem_document(
    server: Server, api: httpx.Client
) -> None:
    organisation(api)
    hook = api.post("/api/v1/webhooks", json={"group": "Kanarra", "url": "https://example.com/h"})
    boss = signed_in(server, "boss@kanarra.example")
    for path, params in (
        ("/tokens", {"cursor": "not-a-cursor"}),
        ("/webhooks", {"cursor": "not-a-cursor"}),
        (f"/webhooks/{hook.json()['id']}", {"before": "yesterday"}),
        (f"/webhooks/{hook.json()['id']}", {"before": "9" * 40}),
        (f"/webhooks/{hook.json()['id']}", {"status": "lost"}),
        ("/audit", {"cursor": "not-a-cursor"}),
    ):
        r = boss.get(path, **params)
        assert r.status_code == 422, (path, params)
        assert r.headers["content-type"].startswith("text/html"), (path, params)
        assert 'role="alert"' in r.text, (path, params)
    huge = boss.post(f"/webhooks/{hook.json()['id']}/redeliver", {"delivery": "9" * 40})
    assert huge.status_code == 404
    assert huge.headers["content-type"].startswith("text/html")
    boss.get("/tokens")
    odd = boss.post("/tokens/revoke", {"name": "no such/token", "confirm": "yes"})
    absent = boss.post("/tokens/revoke", {"name": "nobody-ci", "confirm": "yes"})
    assert odd.headers["content-type"].startswith("text/html")
    assert same_page(odd, absent, "no such/token", "nobody-ci")


# --------------------------------------------------------------------------- tokens


def test_a_token_is_shown_once_works_and_is_revoked_after_confirming(
    server: Server, api: httpx.Client
) -> None:
    organisation(api)
    boss = signed_in(server, "boss@kanarra.example")
    boss.get("/tokens")
    r = boss.post(
        "/tokens", {"name": "erp-sync", "group": "Kanarra/Sadler-Isberg", "role": "viewer"}
    )
    assert r.status_code == 201, r.text
    found = re.search(r'id="token-secret">(pvd_[^<]+)<', r.text)
    assert found is not None
    secret = found.group(1)
    with server.client(secret) as erp:
        assert erp.get("/api/v1/devices").status_code == 200
        assert erp.post("/api/v1/groups", json={"path": "Kanarra/X"}).status_code == 403
    listed = boss.get("/tokens")
    assert "erp-sync" in listed.text
    assert "viewer of Kanarra/Sadler-Isberg" in listed.text
    assert secret not in listed.text
    events = api.get("/api/v1/events", params={"kind": "token.created"}).json()["items"]
    assert events[0]["actor"] == "user:boss@kanarra.example"

    asked = boss.post("/tokens/revoke", {"name": "erp-sync"})
    assert asked.status_code == 200
    assert "Revoke the token erp-sync?" in asked.text
    with server.client(secret) as erp:
        assert erp.get("/api/v1/devices").status_code == 200  # asking changed nothing
    done = boss.post("/tokens/revoke", {"name": "erp-sync", "confirm": "yes"})
    assert (done.status_code, done.headers["location"]) == (303, "/tokens?revoked=erp-sync")
    assert "The token erp-sync was revoked" in boss.get("/tokens", revoked="erp-sync").text
    with server.client(secret) as erp:
        assert erp.get("/api/v1/devices").status_code == 401


# --------------------------------------------------------------------------- scope


def test_an_admin_cannot_reach_another_customers_tokens_webhooks_deliveries_or_events(
    server: Server, api: httpx.Client, flaky: Receiver
) -> None:
    organisation(api)
    rival = rival_customer(api, flaky)
    boss = signed_in(server, "boss@kanarra.example")
    hook, delivery = rival["webhook"], rival["delivery"]

    assert "tekton-ci" not in boss.get("/tokens").text
    stolen = boss.post("/tokens/revoke", {"name": "tekton-ci", "confirm": "yes"})
    absent = boss.post("/tokens/revoke", {"name": "nobody-ci", "confirm": "yes"})
    assert stolen.status_code == 404
    assert same_page(stolen, absent, "tekton-ci", "nobody-ci")

    assert hook not in boss.get("/webhooks").text
    missing = str(uuid.uuid4())
    assert same_page(boss.get(f"/webhooks/{hook}"), boss.get(f"/webhooks/{missing}"), hook, missing)
    assert boss.get(f"/webhooks/{hook}").status_code == 404
    assert boss.get("/webhooks/not-an-id").status_code == 404
    for action, form in (
        ("redeliver", {}),
        ("enabled", {"enabled": "no"}),
        ("delete", {"confirm": "yes"}),
    ):
        theirs = boss.post(f"/webhooks/{hook}/{action}", form)
        nobody = boss.post(f"/webhooks/{missing}/{action}", form)
        assert theirs.status_code == 404, action
        assert same_page(theirs, nobody, hook, missing), action
    # their delivery, through a webhook of boss's own
    own = boss.post("/webhooks", {"url": "https://example.com/kanarra", "group": "Kanarra"})
    assert own.status_code == 201, own.text
    own_id = re.search(r'href="/webhooks/([0-9a-f-]{36})" id="created-link"', own.text)
    assert own_id is not None
    path = f"/webhooks/{own_id.group(1)}/redeliver"
    theirs = boss.post(path, {"delivery": delivery})
    nobody = boss.post(path, {"delivery": "999999"})
    assert theirs.status_code == 404
    assert same_page(theirs, nobody, delivery, "999999")
    assert wait_for_delivery(api, hook, "failed")["attempts"] == 1
    assert api.get(f"/api/v1/webhooks/{hook}").json()["enabled"]

    assert flaky.url not in boss.get("/integrations").text
    for query in ({}, {"serial": "TEK-1"}, {"kind": "webhook.created"}):
        audit = boss.get("/audit", **query)
        assert audit.status_code == 200
        rows = table(audit, "events")
        assert "TEK-1" not in rows, query
        assert "Tekton" not in rows, query
    rival_admin = signed_in(server, RIVAL)
    tek = table(rival_admin.get("/audit", serial="TEK-1"), "events")
    assert "TEK-1" in tek
    assert "Registered by API token tests" in tek  # the device's events in words
    assert flaky.url in rival_admin.get("/integrations").text


def test_an_admin_redelivers_disables_and_deletes_a_webhook(
    server: Server, api: httpx.Client, flaky: Receiver
) -> None:
    organisation(api)
    boss = signed_in(server, "boss@kanarra.example")
    boss.get("/webhooks")
    made = boss.post(
        "/webhooks",
        [("url", flaky.url), ("group", "Kanarra"), ("events", "device.registered")],
    )
    assert made.status_code == 201, made.text
    assert re.search(r'id="webhook-secret">whsec_', made.text)
    hook = api.get("/api/v1/webhooks").json()["items"][0]
    assert hook["events"] == ["device.registered"]
    assert "whsec_" not in boss.get(f"/webhooks/{hook['id']}").text
    r = api.post("/api/v1/devices", json={"serial": "OPS-1", "group": "Kanarra"})
    assert r.status_code == 201
    failed = wait_for_delivery(api, hook["id"], "failed")
    page = boss.get(f"/webhooks/{hook['id']}")
    assert f'id="delivery-{failed["id"]}" data-status="failed"' in page.text
    assert "the receiver answered 500" in page.text

    flaky.answer = lambda _n: 200
    r = boss.post(f"/webhooks/{hook['id']}/redeliver")
    assert (r.status_code, r.headers["location"]) == (303, f"/webhooks/{hook['id']}?queued=1")
    assert wait_for_delivery(api, hook["id"], "delivered")["id"] == failed["id"]
    r = boss.post(f"/webhooks/{hook['id']}/redeliver", {"delivery": str(failed["id"])})
    assert r.status_code == 409
    assert "only failed deliveries are sent again" in r.text

    assert boss.post(f"/webhooks/{hook['id']}/enabled", {"enabled": "no"}).status_code == 303
    assert "disabled by user:boss@kanarra.example" in boss.get(f"/webhooks/{hook['id']}").text
    asked = boss.post(f"/webhooks/{hook['id']}/delete")
    assert asked.status_code == 200
    assert "Delete this webhook?" in asked.text
    assert api.get(f"/api/v1/webhooks/{hook['id']}").status_code == 200
    r = boss.post(f"/webhooks/{hook['id']}/delete", {"confirm": "yes"})
    assert (r.status_code, r.headers["location"]) == (303, "/webhooks?deleted=1")
    assert api.get(f"/api/v1/webhooks/{hook['id']}").status_code == 404
    kinds = [e["type"] for e in api.get("/api/v1/events").json()["items"][:4]]
    assert kinds[:3] == ["webhook.deleted", "webhook.disabled", "webhook.redelivered"]


def test_the_audit_log_and_the_delivery_log_are_paged(server: Server, api: httpx.Client) -> None:
    organisation(api)
    with receiver() as ok:
        made = api.post("/api/v1/webhooks", json={"group": "Kanarra", "url": ok.url})
        hook = made.json()["id"]
        rows = "serial\n" + "".join(f"PG-{n:03}\n" for n in range(operations.AUDIT_PAGE + 1))
        r = api.post(
            "/api/v1/devices/import",
            params={"group": "Kanarra/Sadler-Isberg"},
            content=rows,
            headers={"Content-Type": "text/csv"},
        )
        assert r.status_code == 201, r.text
        ok.wait_for(operations.DELIVERIES_PAGE + 1)
    for n in range(operations.AUDIT_PAGE):  # events enough for two pages of the log
        assert api.post("/api/v1/groups", json={"path": f"Kanarra/Site-{n}"}).status_code == 201
    boss = signed_in(server, "boss@kanarra.example")

    first = boss.get(f"/webhooks/{hook}")
    shown = re.findall(r'<tr id="delivery-(\d+)"', first.text)
    assert len(shown) == operations.DELIVERIES_PAGE
    older = re.search(r'href="(/webhooks/[^"]+before=\d+)">Older deliveries', first.text)
    assert older is not None
    rest = re.findall(r'<tr id="delivery-(\d+)"', boss.get(html.unescape(older.group(1))).text)
    assert len(rest) == 1
    assert int(rest[0]) < min(map(int, shown))

    log = boss.get("/audit", kind="webhook.created")
    assert len(re.findall(r'<tr data-type="webhook.created"', log.text)) == 1
    page, seen = boss.get("/audit"), []
    while True:
        seen += re.findall(r"<td class=\"text-nowrap\">(\d{4}-[^<]+)</td>", page.text)
        link = re.search(r'id="older" href="([^"]+)"', page.text)
        if link is None:
            break
        page = boss.get(html.unescape(link.group(1)))
        assert page.status_code == 200
    listed = api.get("/api/v1/events", params={"group": "Kanarra", "limit": 500}).json()
    assert len(seen) == len(listed["items"]) > operations.AUDIT_PAGE


# --------------------------------------------------------------------------- the browser


def poll(page: Any, until: Callable[[], bool], timeout: float = 30) -> None:
    """Reload the page until ``until()`` holds (the server's deliverer works on its own)."""
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, f"{page.url} never showed what was waited for"
        page.wait_for_timeout(200)  # a poll interval, not a synchronisation
        page.reload()


@pytest.mark.slow  # a real browser
@pytest.mark.sqlite_only  # the pages are backend-agnostic; the tests above run on both
def test_the_operations_pages_in_a_browser(
    server: Server, api: httpx.Client, browser_page: Any, flaky: Receiver
) -> None:
    from playwright.sync_api import expect

    organisation(api)
    page, url = browser_page, server.url
    page.set_viewport_size(browsing.SIZES["desktop"])
    check = Audit(page, routes_of("operations"), size="desktop")
    browsing.sign_in(page, url, "boss@kanarra.example")
    page.wait_for_url("**/devices")

    # the catalogue: read here, changed by an operator
    page.goto(f"{url}/models")
    expect(page.locator("#models")).to_contain_text("UNO-2483G")
    expect(page.locator("#catalogue-read-only")).to_be_visible()
    check("models")

    # a token: a message on its field, then its secret once, then revoked
    page.goto(f"{url}/tokens")
    check("tokens")
    page.fill("#name", "erp sync")
    page.click("text=Create the token")
    expect(page.locator("#name")).to_have_class(re.compile("is-invalid"))
    check("tokens: a name refused")
    page.fill("#name", "erp-sync")
    page.select_option("#role", "viewer")
    page.fill("#group", "Kanarra/Sadler-Isberg")
    page.click("text=Create the token")
    expect(page.locator("#token-secret")).to_contain_text("pvd_")
    check("tokens: the secret, once")
    screenshot(page, "console-ops-token")
    page.goto(f"{url}/tokens")
    expect(page.locator("#token-secret")).to_have_count(0)
    page.click("[aria-label='Revoke erp-sync…']")
    expect(page.locator("#confirm")).to_be_visible()
    check("tokens: revoke, asking to confirm")
    page.click("#confirm")
    expect(page.locator("#notice")).to_contain_text("erp-sync was revoked")

    # a webhook to a receiver that fails, then answers
    page.goto(f"{url}/webhooks")
    check("webhooks, none yet")
    page.fill("#url", flaky.url)
    page.fill("#group", "Kanarra")
    page.check("text=device.registered")
    page.click("text=Create the webhook")
    expect(page.locator("#webhook-secret")).to_contain_text("whsec_")
    check("webhooks: the signing secret, once")
    screenshot(page, "console-ops-webhooks")
    page.click("#created-link")
    check("webhook, no deliveries")
    r = api.post("/api/v1/devices", json={"serial": "OPS-1", "group": "Kanarra/Sadler-Isberg"})
    assert r.status_code == 201, r.text
    flaky.wait_for(1)
    failed = page.locator("#deliveries tr[data-status=failed]")
    poll(page, lambda: failed.count() == 1)
    expect(failed).to_contain_text("the receiver answered 500")
    check("webhook: a failed delivery")
    flaky.answer = lambda _n: 200
    failed.locator("button").click()
    expect(page.locator("#notice")).to_contain_text("1 delivery was queued")
    delivered = page.locator("#deliveries tr[data-status=delivered]")
    poll(page, lambda: delivered.count() == 1)
    check("webhook: delivered")
    screenshot(page, "console-ops-webhook")
    page.click("#delete")
    expect(page.locator("#confirm-text")).to_contain_text(flaky.url)
    check("webhook: delete, asking to confirm")
    page.click("text=Cancel")

    page.goto(f"{url}/integrations")
    expect(page.locator("#webhook-backlog")).to_contain_text(flaky.url)
    check("integrations")
    screenshot(page, "console-ops-integrations")

    # the audit log, filtered by type; a time it cannot read
    page.goto(f"{url}/audit")
    check("audit log")
    page.select_option("#kind", "webhook.redelivered")
    page.click("text=Filter")
    rows = page.locator("#events tbody tr")
    expect(rows).to_have_count(1)
    expect(rows).to_have_attribute("data-type", "webhook.redelivered")
    expect(rows).to_contain_text("user:boss@kanarra.example")
    check("audit log, by type")
    screenshot(page, "console-ops-audit")
    page.fill("#since", "last tuesday")
    page.click("text=Filter")
    expect(page.locator("#since")).to_have_class(re.compile("is-invalid"))
    check("audit log, a time refused")

    check.assert_clean()
