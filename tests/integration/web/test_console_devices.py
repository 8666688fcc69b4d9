"""The console's Devices pages (web/pages/devices.py for an admin): the list with its filters,
search, orders and pages; a device's actions; the bulk actions; who may do what; and one
customer's admin never reaching another's devices.

Behaviour over real HTTP on both backends (httpx); the pages in Chromium at a desktop's size,
once (the last test).
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from tests.integration.web import browsing
from tests.integration.web.browsing import PASSWORD, Audit, organisation, routes_of, screenshot
from tests.integration.web.conftest import Server
from tests.integration.web.test_pages import Browser, server_settings  # noqa: F401 (its limits)

ADMIN = "boss@kanarra.example"  # admin of Kanarra, a top-level group (a customer)
SUB_ADMIN = "sub@kanarra.example"  # admin of Kanarra/Sadler-Isberg: a customer below
RIVAL = "boss@tekton.example"  # admin of Tekton, another top-level customer


def setup(api: httpx.Client) -> dict[str, str]:
    """browsing.organisation, and: a customer's admin below it, another customer with its
    admin and device, claimed devices with tags at two sites; returns the access tokens."""
    tokens = organisation(api)
    assert api.post("/api/v1/groups", json={"path": "Tekton"}).status_code == 201
    for email, group in ((SUB_ADMIN, "Kanarra/Sadler-Isberg"), (RIVAL, "Tekton")):
        user = {"email": email, "password": PASSWORD, "role": "admin", "group": group}
        assert api.post("/api/v1/users", json=user).status_code == 201
    for serial, name, group, tags in (
        ("KAN-1", "Lobby meter", "Kanarra/Sadler-Isberg/West/Anaheim", {"floor": "1"}),
        ("KAN-2", "Boiler", "Kanarra/Sadler-Isberg/West/Irvine", {"floor": "2"}),
        ("KAN-3", "Attic fan", "Kanarra/Sadler-Isberg/East", {"floor": "1"}),
        ("TEK-1", "Rival meter", "Tekton", {}),
    ):
        body = {"serial": serial, "name": name, "group": group, "tags": tags, "model": "UNO-2483G"}
        r = api.post("/api/v1/devices", json=body)
        assert r.status_code == 201, r.text
        tokens[serial] = r.json()["credential"]["secret"]
    return tokens


def signed_in(server: Server, email: str) -> Browser:
    b = Browser(server)
    assert b.sign_in(email).status_code == 303
    return b


def listed(page: str) -> list[str]:
    """The serials of a console list page, in its order (the table's rows)."""
    return re.findall(r'name="serial" value="([^"]+)" form="bulk"', page)


def bulk(person: Browser, action: str, serials: list[str], **extra: str) -> httpx.Response:
    form: dict[str, Any] = {"csrf": person.csrf, "action": action, "serial": serials, **extra}
    return person.http.post("/devices/bulk", data=form)


def event_types(api: httpx.Client, serial: str) -> list[str]:
    return [e["type"] for e in api.get(f"/api/v1/devices/{serial}").json()["events"]]


def test_an_admin_lists_their_subtree_and_never_the_stock_of_no_customer(
    server: Server, api: httpx.Client
) -> None:
    """Devices of no group (stock registered without one, released devices) belong to no
    customer (docs/security.md): not even an admin of a top-level group sees them."""
    setup(api)
    boss = signed_in(server, ADMIN)
    page = boss.get("/devices")
    assert page.status_code == 200
    assert set(listed(page.text)) == {"KAN-1", "KAN-2", "KAN-3"}
    for serial in ("PLAIN-1", "BTN-1"):
        assert boss.get(f"/devices/{serial}").status_code == 404
    # a customer's admin below: their subtree only, no stock
    sub = signed_in(server, SUB_ADMIN).get("/devices").text
    assert set(listed(sub)) == {"KAN-1", "KAN-2", "KAN-3"}
    # installers and viewers keep their phone list, of their subtree (no table, no stock)
    for email in ("tech@kanarra.example", "viewer@kanarra.example"):
        mine = signed_in(server, email).get("/devices").text
        assert 'id="device-list"' in mine
        assert "device-table" not in mine
        assert "PLAIN-1" not in mine
        assert "KAN-1" in mine
    # a released device belongs to no customer again: gone from the admin's list
    assert api.post("/api/v1/devices", json={"serial": "REL-1", "group": "Kanarra"}).is_success
    assert "REL-1" in listed(boss.get("/devices").text)
    assert boss.post("/devices/REL-1/release", {"confirm": "yes"}).status_code == 303
    assert "REL-1" not in listed(boss.get("/devices?state=released").text)
    assert boss.get("/devices/REL-1").status_code == 404


def test_filters_search_and_orders(server: Server, api: httpx.Client) -> None:
    setup(api)
    boss = signed_in(server, ADMIN)

    def serials(query: str) -> list[str]:
        r = boss.get(f"/devices?{query}")
        assert r.status_code == 200, r.text
        return listed(r.text)

    profile = {"name": "kanarra-button", "claim_proof": "button", "group": "Kanarra"}
    assert api.post("/api/v1/profiles", json=profile).status_code == 201
    r = api.post(
        "/api/v1/devices/import",
        params={"profile": "kanarra-button"},
        content="serial,group\nKBT-1,Kanarra/Sadler-Isberg/East\n",
        headers={"Content-Type": "text/csv"},
    )
    assert r.status_code == 201, r.text
    assert serials("group=Kanarra/Sadler-Isberg/West") == ["KAN-1", "KAN-2"]
    # a customer's devices are all claimed: the stock of no customer is never listed
    assert serials("state=registered") == []
    assert serials("state=claimed&tag=floor%3D1") == ["KAN-1", "KAN-3"]
    assert serials("model=UNO-2483G") == ["KAN-1", "KAN-2", "KAN-3"]
    assert serials("profile=kanarra-button") == ["KBT-1"]
    assert serials("q=kan") == ["KAN-1", "KAN-2", "KAN-3"]
    assert serials("name=METER") == ["KAN-1"]  # any case; Tekton's meter is not Kanarra's
    assert serials("sort=name&q=KAN") == ["KAN-3", "KAN-2", "KAN-1"]
    assert serials("sort=name&order=desc&q=KAN") == ["KAN-1", "KAN-2", "KAN-3"]
    assert serials("sort=registered&order=desc")[:4] == ["KBT-1", "KAN-3", "KAN-2", "KAN-1"]
    # problems are said on their field; nothing is listed
    r = boss.get("/devices?state=lost&group=Tekton&tag=floor")
    assert r.status_code == 422
    for field in ("state", "group", "tag"):
        assert f'id="{field}-error"' in r.text
    assert listed(r.text) == []


@pytest.mark.parametrize("order", ["sort=serial", "sort=name", "sort=registered&order=desc"])
def test_pages_follow_the_order_and_cursors_are_checked(
    server: Server, api: httpx.Client, order: str
) -> None:
    setup(api)
    rows = "serial,name,group\n" + "".join(
        f"BULK-{i:03},Unit {i % 7},Kanarra\n" for i in range(120)
    )
    r = api.post("/api/v1/devices/import", content=rows, headers={"Content-Type": "text/csv"})
    assert r.status_code == 201, r.text
    boss = signed_in(server, ADMIN)
    seen: list[str] = []
    path: str | None = f"/devices?q=BULK&{order}"
    cursors = []
    while path:
        page = boss.get(path)
        assert page.status_code == 200
        seen += listed(page.text)
        found = re.search(r'id="next-page" href="([^"]+)"', page.text)
        path = found.group(1).replace("&amp;", "&") if found else None
        if path:
            cursors.append(dict(parse_qsl(urlsplit(path).query))["cursor"])
    assert sorted(seen) == [f"BULK-{i:03}" for i in range(120)]  # each once
    assert len(cursors) == 2
    devices = {d: api.get(f"/api/v1/devices/{d}").json() for d in seen}
    if "name" in order:
        keys = [(devices[s]["name"], s) for s in seen]
        assert keys == sorted(keys)
    elif "registered" in order:
        keys = [(devices[s]["created_at"], s) for s in seen]
        assert keys == sorted(keys, reverse=True)
    else:
        assert seen == sorted(seen)
    # a cursor is opaque and bound to its order: another order's, or a forged one, is refused
    other = "sort=state" if "name" in order else "sort=name"
    for query in (f"{other}&cursor={cursors[0]}", "cursor=bm90LWEtY3Vyc29y", "cursor=%25%25"):
        refused = boss.get(f"/devices?q=BULK&{query}")
        assert refused.status_code == 422
        assert 'id="cursor-error"' in refused.text


def test_device_actions(server: Server, api: httpx.Client) -> None:
    tokens = setup(api)
    boss = signed_in(server, ADMIN)
    page = boss.get("/devices/KAN-1").text
    assert "Claimed by" not in page  # registered with its group by a token
    assert "Registered by API token tests" in page
    assert 'id="device-actions"' in page
    # rename: checked on the server, the message on its field, nothing changed
    r = boss.post("/devices/KAN-1/rename", {"name": "   "})
    assert r.status_code == 422
    assert 'id="name-error"' in r.text
    assert "device.renamed" not in event_types(api, "KAN-1")
    r = boss.post("/devices/KAN-1/rename", {"name": "Lobby meter 2"})
    assert (r.status_code, r.headers["location"]) == (303, "/devices/KAN-1?done=renamed")
    assert api.get("/api/v1/devices/KAN-1").json()["name"] == "Lobby meter 2"
    page = boss.get("/devices/KAN-1?done=renamed").text
    assert "Renamed “Lobby meter 2” by boss@kanarra.example" in page
    # move: to a group of the subtree; another customer's group is one that does not exist
    r = boss.post("/devices/KAN-1/move", {"group": "Tekton"})
    assert r.status_code == 422
    assert 'id="group-error"' in r.text or "no group" in r.text
    r = boss.post("/devices/KAN-1/move", {"group": "Kanarra/Sadler-Isberg/East"})
    assert r.status_code == 303
    assert api.get("/api/v1/devices/KAN-1").json()["group"] == "Kanarra/Sadler-Isberg/East"
    assert "Moved by boss@kanarra.example to East" in boss.get("/devices/KAN-1").text
    # stock of no customer cannot be moved into one (that would claim it without a proof)
    r = boss.post("/devices/PLAIN-1/move", {"group": "Kanarra/Sadler-Isberg"})
    assert r.status_code == 404
    assert api.get("/api/v1/devices/PLAIN-1").json()["state"] == "registered"
    # rotate: the new secret once, on the answer to the POST; the old one stops working
    r = boss.post("/devices/KAN-2/rotate")
    assert r.status_code == 200
    secret = re.search(r'<output class="secret-once[^"]*" id="secret">([^<]+)<', r.text)
    assert secret is not None
    assert secret.group(1) not in boss.get("/devices/KAN-2").text
    with httpx.Client(base_url=server.url) as device:
        old = device.post(f"/api/v1/{tokens['KAN-2']}/claim/button")
        new = device.post(f"/api/v1/{secret.group(1)}/claim/button")
    assert old.status_code == 401
    assert new.status_code != 401
    assert "Credentials rotated by boss@kanarra.example" in boss.get("/devices/KAN-2").text
    # revoke
    r = boss.post("/devices/KAN-2/revoke")
    assert (r.status_code, r.headers["location"]) == (303, "/devices/KAN-2?done=revoked")
    assert "credentials.revoked" in event_types(api, "KAN-2")
    # delete: asked first (a stray POST changes nothing), then done, with a message
    assert 'id="delete-confirm"' in boss.get("/devices/KAN-3/delete").text
    assert boss.post("/devices/KAN-3/delete").status_code == 200
    assert api.get("/api/v1/devices/KAN-3").status_code == 200
    r = boss.post("/devices/KAN-3/delete", {"confirm": "yes"})
    assert (r.status_code, r.headers["location"]) == (303, "/devices?deleted=KAN-3")
    assert api.get("/api/v1/devices/KAN-3").status_code == 404
    assert "KAN-3 was deleted" in boss.get("/devices?deleted=KAN-3").text


def test_bulk_actions_say_what_happened_to_each(server: Server, api: httpx.Client) -> None:
    setup(api)
    boss = signed_in(server, ADMIN)
    boss.get("/devices")
    # labels: the labels page, the serials pre-selected
    r = bulk(boss, "labels", ["KAN-1", "KAN-2"])
    assert (r.status_code, r.headers["location"]) == (303, "/labels?serial=KAN-1&serial=KAN-2")
    # export: a CSV of the chosen devices of the scope, no secrets, another's left out
    r = bulk(boss, "export", ["KAN-1", "TEK-1", "PLAIN-1"])
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["serial"] for row in rows] == ["KAN-1"]  # no customer's PLAIN-1 neither
    assert "secret" not in r.text.lower()
    assert rows[0]["tags"] == "floor=1"
    # the list as filtered, every page of it, as CSV (a GET: it changes nothing)
    r = boss.get("/devices/export.csv?state=claimed&sort=name&order=desc")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert [row["serial"] for row in csv.DictReader(io.StringIO(r.text))] == [
        "KAN-1", "KAN-2", "KAN-3",
    ]  # fmt: skip
    assert signed_in(server, "tech@kanarra.example").get("/devices/export.csv").status_code == 403
    assert signed_in(server, RIVAL).get("/devices/export.csv?q=KAN").text.count("\n") == 1
    # a destructive action asks first, and a stray POST changes nothing
    r = bulk(boss, "revoke", ["KAN-1", "KAN-2"])
    assert r.status_code == 200
    assert 'id="bulk-confirm"' in r.text
    assert "credentials.revoked" not in event_types(api, "KAN-1")
    # moved, each on its own: another customer's serial refused as a missing one is
    r = bulk(boss, "move", ["KAN-1", "TEK-1", "NO-SUCH-1", "BTN-1"], confirm="yes", group="Kanarra")
    assert r.status_code == 200
    outcome = dict(re.findall(r'data-serial="([^"]+)">.*?badge[^>]*>(done|refused)<', r.text, re.S))
    assert outcome == {
        "KAN-1": "done", "TEK-1": "refused", "NO-SUCH-1": "refused", "BTN-1": "refused",
    }  # fmt: skip
    messages = re.findall(
        r'data-serial="(TEK-1|NO-SUCH-1|BTN-1)">.*?</span></td>\s*<td>([^<]*)<', r.text, re.S
    )
    assert len({m[1] for m in messages}) == 1  # another customer's, missing, no customer's
    assert api.get("/api/v1/devices/TEK-1").json()["group"] == "Tekton"
    assert "device.moved" in event_types(api, "KAN-1")
    assert api.get("/api/v1/devices/BTN-1").json()["state"] == "registered"
    # a move needs a group of the subtree: said on the field, nothing changed
    r = bulk(boss, "move", ["KAN-2"], confirm="yes", group="Tekton")
    assert r.status_code == 422
    assert 'id="group-error"' in r.text
    # rotate: the new secrets listed once on the answer; refused devices say why
    r = bulk(boss, "rotate", ["KAN-1", "KAN-2", "TEK-1"], confirm="yes")
    secrets = re.findall(r'<output class="secret-once">([^<]+)</output>', r.text)
    assert len(secrets) == 2
    assert "2 done, 1 refused" in r.text
    assert all(s not in boss.get("/devices/KAN-1").text for s in secrets)
    # release: claimed devices released, stock of no customer refused as not theirs
    r = bulk(boss, "release", ["KAN-1", "PLAIN-1"], confirm="yes")
    assert "1 done, 1 refused" in r.text
    assert api.get("/api/v1/devices/KAN-1").json()["state"] == "released"
    # revoke
    r = bulk(boss, "revoke", ["KAN-2"], confirm="yes")
    assert "1 done, 0 refused" in r.text
    # "select all on this page" takes the page's serials
    form = {"csrf": boss.csrf, "action": "labels", "all": "page", "page": ["BTN-1", "BTN-2"]}
    r = boss.http.post("/devices/bulk", data=form)
    assert r.headers["location"] == "/labels?serial=BTN-1&serial=BTN-2"
    # nothing selected: said, nothing done
    r = bulk(boss, "revoke", [])
    assert r.status_code == 422
    assert "select at least one device" in r.text


CONSOLE_POSTS = (
    "/devices/bulk",
    "/devices/KAN-1/rename",
    "/devices/KAN-1/move",
    "/devices/KAN-1/rotate",
    "/devices/KAN-1/revoke",
    "/devices/KAN-1/delete",
)


def test_installers_and_viewers_are_refused_and_csrf_is_checked(
    server: Server, api: httpx.Client
) -> None:
    setup(api)
    for email in ("tech@kanarra.example", "viewer@kanarra.example"):
        person = signed_in(server, email)
        page = person.get("/devices/KAN-1").text
        for action in ("device-actions", "/rename", "/rotate", "/revoke", "/delete"):
            assert action not in page
        assert person.get("/devices/KAN-1/delete").status_code == 403
        for path in CONSOLE_POSTS:
            data = {"confirm": "yes", "name": "x", "group": "Kanarra", "action": "revoke"}
            assert person.post(path, {**data, "serial": "KAN-1"}).status_code == 403, path
    assert event_types(api, "KAN-1") == ["device.registered"]
    assert api.get("/api/v1/devices/KAN-1").json()["name"] == "Lobby meter"
    boss = signed_in(server, ADMIN)
    for path in CONSOLE_POSTS:
        assert boss.post(path, {"serial": "KAN-1", "confirm": "yes"}, csrf=False).status_code == 403
    assert event_types(api, "KAN-1") == ["device.registered"]


def test_an_admin_reaches_no_other_customers_devices(server: Server, api: httpx.Client) -> None:
    setup(api)
    rival = signed_in(server, RIVAL)
    assert "KAN-1" not in listed(rival.get("/devices").text)
    assert listed(rival.get("/devices?q=KAN").text) == []
    missing, hidden = rival.get("/devices/NO-SUCH-1"), rival.get("/devices/KAN-1")
    assert missing.status_code == hidden.status_code == 404
    assert missing.content == hidden.content
    assert rival.get("/devices/KAN-1/delete").status_code == 404
    for path in CONSOLE_POSTS[1:]:
        data = {"confirm": "yes", "name": "Mine", "group": "Tekton"}
        assert rival.post(path, data).status_code == 404, path
    for action in ("move", "release", "rotate", "revoke"):
        r = bulk(rival, action, ["KAN-1", "KAN-2"], confirm="yes", group="Tekton")
        assert r.status_code == 200
        assert "0 done, 2 refused" in r.text
        assert "Kanarra" not in r.text
    assert list(csv.DictReader(io.StringIO(bulk(rival, "export", ["KAN-1"]).text))) == []
    assert event_types(api, "KAN-1") == ["device.registered"]
    assert api.get("/api/v1/devices/KAN-1").json()["name"] == "Lobby meter"
    # the customer's admin below the top group sees no stock, and cannot act on it
    sub = signed_in(server, SUB_ADMIN)
    assert sub.get("/devices/PLAIN-1").status_code == 404
    r = bulk(sub, "move", ["PLAIN-1"], confirm="yes", group="Kanarra/Sadler-Isberg")
    assert "0 done, 1 refused" in r.text
    assert api.get("/api/v1/devices/PLAIN-1").json()["state"] == "registered"


@pytest.mark.slow  # a real browser
@pytest.mark.sqlite_only
def test_console_devices_pages(server: Server, api: httpx.Client, browser_page: Any) -> None:
    from playwright.sync_api import expect

    setup(api)
    page, url = browser_page, server.url
    page.set_viewport_size(browsing.SIZES["desktop"])
    check = Audit(page, routes_of("devices"), size="desktop")
    browsing.sign_in(page, url, ADMIN)
    page.wait_for_url("**/devices")
    expect(page.locator("#device-table")).to_contain_text("Lobby meter")
    check("console devices: list")
    screenshot(page, "console-devices-list")
    page.select_option("#state", "claimed")
    page.click("#apply-filters")
    page.wait_for_url("**/devices?*state=claimed*")
    expect(page.locator("#device-table tbody tr")).to_have_count(3)
    page.click("#device-table thead >> text=Name")
    page.wait_for_url("**sort=name*")
    check("console devices: filtered, sorted by name")
    page.goto(f"{url}/devices?state=lost")
    expect(page.locator("#state-error")).to_be_visible()
    check("console devices: a filter refused")
    # select, then a bulk action asks first, then says what happened to each
    page.goto(f"{url}/devices?state=claimed")
    page.check("#select-page")
    expect(page.locator('input[name=serial][value="KAN-2"]')).to_be_checked()
    page.click("#bulk >> text=Revoke credentials…")
    expect(page.locator("#bulk-confirm")).to_be_visible()
    check("console devices: bulk, asking to confirm")
    page.click("#bulk-confirm")
    expect(page.locator("#bulk-summary")).to_have_text("3 done, 0 refused.")
    check("console devices: bulk, done")
    # a device: its timeline in words, its actions
    page.goto(f"{url}/devices/KAN-1")
    expect(page.locator("#timeline")).to_contain_text("Credentials revoked by boss@kanarra.example")
    page.fill("#name", "   ")
    page.click("#rename")
    expect(page.locator("#name")).to_have_class(re.compile("is-invalid"))
    check("console devices: device, rename refused")
    page.fill("#name", "Front lobby meter")
    page.click("#rename")
    expect(page.locator("#device-message")).to_have_text("Renamed.")
    check("console devices: device")
    screenshot(page, "console-devices-device")
    page.click("#rotate")
    expect(page.locator("#secret")).to_be_visible()
    check("console devices: device, new secret shown once")
    page.goto(f"{url}/devices/KAN-1/release")
    check("console devices: release, asking to confirm")
    page.goto(f"{url}/devices/KAN-3")
    page.click("#delete")
    page.wait_for_url("**/devices/KAN-3/delete")
    check("console devices: delete, asking to confirm")
    page.click("#delete-confirm")
    expect(page.locator("#deleted")).to_be_visible()
    check("console devices: deleted")
    page.goto(f"{url}/devices/NO-SUCH-1")
    expect(page.locator("h1")).to_have_text("Not found")
    check("console devices: not found")
    # the installer's phone list and a label's URL are walked by test_accessibility.py
    check.assert_clean(
        excused={
            "/d/{serial}": "a label's URL: walked by test_accessibility.py (installer)",
            "/devices/export.csv": "the list as CSV, a download (test_bulk_actions_…)",
        }
    )
