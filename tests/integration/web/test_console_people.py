"""The console's groups and users (web/pages/people.py) over real HTTP on loopback, on SQLite
and PostgreSQL — admin-only, CSRF, messages on their fields, another customer's users and
groups out of reach, invitation and reset links end to end — and once in Chromium: the whole
walk, with an SMTP server (aiosmtpd) receiving the invitation."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import text

from provisiond.bootstrap import create_app, open_container
from provisiond.settings import Settings, SmtpSettings, load_settings
from provisiond.web.pages.rendering import SESSION_COOKIE
from tests.integration.web.browsing import (
    PASSWORD,
    Audit,
    organisation,
    routes_of,
    screenshot,
    sign_in,
)
from tests.integration.web.conftest import PromptServer, Server, free_port
from tests.integration.web.test_pages import Browser
from tests.integration.web.test_provisioning import sql
from tests.support.smtp import Inbox, smtp_server

BOSS = "boss@kanarra.example"


@pytest.fixture
def server_settings(database_url: str) -> Settings:
    return load_settings(
        database_url=database_url, log_level="warning", sessions__login_rate_per_minute=1000
    )


@pytest.fixture
def org(api: httpx.Client) -> dict[str, str]:
    tokens = organisation(api)
    assert api.post("/api/v1/groups", json={"path": "Tekton/Site"}).status_code == 201
    rival = {"email": "rival@tekton.example", "password": PASSWORD, "role": "admin"}
    assert api.post("/api/v1/users", json={**rival, "group": "Tekton"}).status_code == 201
    return tokens


def execute(server: Server, statement: str) -> None:
    async def main() -> None:
        async with open_container(server.settings) as c, c.database.engine.begin() as conn:
            await conn.execute(text(statement))

    asyncio.run(main())


def signed_in(server: Server, email: str = BOSS) -> Browser:
    b = Browser(server)
    assert b.sign_in(email).status_code == 303
    return b


def example_path(path: str) -> str:
    return path.replace("{email}", "tech@kanarra.example").replace("{token}", "x" * 43)


CONSOLE_POSTS = [
    "/groups",
    "/groups/rename",
    "/groups/move",
    "/users/invite",
    "/users/tech@kanarra.example/role",
    "/users/tech@kanarra.example/group",
    "/users/tech@kanarra.example/disable",
    "/users/tech@kanarra.example/enable",
    "/users/tech@kanarra.example/reset-password",
    "/users/invitations/00000000-0000-0000-0000-000000000000/revoke",
]
PUBLIC = ("/invitations/{token}", "/password-reset/{token}")


def test_installers_and_viewers_get_403_on_every_console_route(
    server: Server, org: dict[str, str]
) -> None:
    gets = [example_path(r.path) for r in routes_of("people") if r.path not in PUBLIC]
    assert "/groups" in gets
    assert "/users/tech@kanarra.example" in gets
    for email in ("tech@kanarra.example", "viewer@kanarra.example"):
        b = signed_in(server, email)
        for path in gets:
            assert b.get(path).status_code == 403, (email, path)
        for path in CONSOLE_POSTS:
            r = b.post(path, {"name": "X", "path": "Kanarra/Sadler-Isberg", "role": "admin"})
            assert r.status_code == 403, (email, path)
    assert sql(server, "SELECT count(*) FROM groups WHERE name = 'X'") == [(0,)]
    assert sql(server, "SELECT count(*) FROM invitations") == [(0,)]
    # signed out: every console page asks to sign in
    for path in gets:
        r = Browser(server).get(path)
        assert (r.status_code, r.headers["location"].split("?")[0]) == (303, "/login"), path


def test_a_form_without_its_csrf_token_changes_nothing(server: Server, org: dict[str, str]) -> None:
    b = signed_in(server)
    b.get("/groups")
    r = b.post("/groups", {"parent": "Kanarra", "name": "Forged"}, csrf=False)
    assert r.status_code == 403
    assert "Form expired" in r.text
    r = b.post(
        "/users/invite",
        {"email": "x@kanarra.example", "role": "admin", "group": "Kanarra"},
        csrf=False,
    )
    assert r.status_code == 403
    r = b.post("/users/tech@kanarra.example/disable", csrf=False)
    assert r.status_code == 403
    assert sql(server, "SELECT count(*) FROM groups WHERE name = 'Forged'") == [(0,)]
    assert sql(server, "SELECT count(*) FROM invitations") == [(0,)]
    assert sql(server, "SELECT disabled_at FROM users WHERE email = 'tech@kanarra.example'") == [
        (None,)
    ]


def invalid_field(html: str, name: str) -> str:
    """The message shown on a field the server refused."""
    assert re.search(rf'id="{name}"[^>]*', html), f"no field {name}"
    assert re.search(rf'class="[^"]*is-invalid[^"]*" [^>]*id="{name}"', html) or re.search(
        rf'class="form-(?:control|select) is-invalid"[^>]*id="{name}"', html
    ), f"{name} is not marked invalid"
    found = re.search(rf'<div class="invalid-feedback" id="{name}-error">([^<]*)</div>', html)
    assert found, f"no message on {name}"
    return found.group(1)


def test_bad_input_is_refused_on_its_field_and_changes_nothing(
    server: Server, org: dict[str, str]
) -> None:
    b = signed_in(server)
    b.get("/groups")
    r = b.post("/groups", {"parent": "Kanarra", "name": ""})
    assert r.status_code == 422
    assert "is empty" in invalid_field(r.text, "name")
    r = b.post("/groups", {"parent": "Kanarra", "name": "a/b"})
    assert "may not contain" in invalid_field(r.text, "name")
    r = b.post("/groups", {"parent": "Kanarra", "name": "Sadler-Isberg"})
    assert r.status_code == 409
    assert "exists" in invalid_field(r.text, "name")
    r = b.post("/groups", {"parent": "Tekton", "name": "Mine"})  # another customer's
    assert r.status_code == 403
    r = b.post(
        "/groups/move", {"path": "Kanarra/Sadler-Isberg", "parent": "Kanarra/Sadler-Isberg/East"}
    )
    assert r.status_code == 422
    assert "inside it" in invalid_field(r.text, "parent")
    r = b.post("/groups/rename", {"path": "Kanarra/Sadler-Isberg/East", "name": "West"})
    assert r.status_code == 409
    assert "already exists" in invalid_field(r.text, "name")
    r = b.post("/users/invite", {"email": "not an address", "role": "viewer", "group": "Kanarra"})
    assert r.status_code == 422
    assert "not an e-mail address" in invalid_field(r.text, "email")
    r = b.post(
        "/users/invite", {"email": "tech@kanarra.example", "role": "viewer", "group": "Kanarra"}
    )
    assert r.status_code == 409
    assert "already has an account" in invalid_field(r.text, "email")
    r = b.post("/users/invite", {"email": "n@kanarra.example", "role": "owner", "group": "Kanarra"})
    assert "not a role" in invalid_field(r.text, "role")
    r = b.post("/users/invite", {"email": "n@kanarra.example", "role": "viewer", "group": "Tekton"})
    assert r.status_code == 404
    r = b.post(f"/users/{BOSS}/disable")
    assert r.status_code == 403
    assert "cannot disable yourself" in r.text
    assert sql(server, "SELECT count(*) FROM invitations") == [(0,)]
    assert sql(server, "SELECT count(*) FROM groups WHERE path LIKE 'Kanarra/%'") == [(5,)]
    assert sql(server, "SELECT disabled_at FROM users WHERE email = 'boss@kanarra.example'") == [
        (None,)
    ]


def test_another_customers_users_and_groups_are_out_of_reach(
    server: Server, org: dict[str, str]
) -> None:
    b = signed_in(server)
    mine, theirs = b.get("/users"), b.get("/groups")
    assert "rival@tekton.example" not in mine.text
    assert "Tekton" not in theirs.text
    missing = b.get("/users/nobody@tekton.example")
    other = b.get("/users/rival@tekton.example")
    assert missing.status_code == other.status_code == 404
    assert missing.text.replace("nobody", "rival") == other.text
    assert b.get("/groups/edit?path=Tekton").status_code == 404
    assert b.get("/groups/edit?path=Nowhere").status_code == 404
    for path, data in (
        ("/users/rival@tekton.example/role", {"role": "viewer"}),
        ("/users/rival@tekton.example/disable", {}),
        ("/users/rival@tekton.example/reset-password", {}),
        ("/groups/rename", {"path": "Tekton/Site", "name": "Mine"}),
    ):
        assert b.post(path, data).status_code == 404, path
    assert (
        b.post("/groups/move", {"path": "Kanarra/Sadler-Isberg", "parent": "Tekton"}).status_code
        == 404
    )
    assert sql(
        server, "SELECT role, disabled_at FROM users WHERE email = 'rival@tekton.example'"
    ) == [("admin", None)]
    assert sql(server, "SELECT count(*) FROM groups WHERE path LIKE 'Tekton%'") == [(2,)]


def test_a_crafted_link_puts_no_words_of_its_own_on_the_console(
    server: Server, org: dict[str, str]
) -> None:
    b = signed_in(server)
    for path in (
        "/groups?done=Your+session+expired:+sign+in+at+evil.example",
        "/groups?done=created&path=Tekton",  # not in the admin's tree
        "/users?revoked=call+us+now",
        "/users/tech@kanarra.example?done=Call+us",
    ):
        r = b.get(path)
        assert r.status_code == 200, path
        assert 'id="done"' not in r.text, path
    r = b.get("/groups?done=created&path=Kanarra/Sadler-Isberg")
    assert "Created Kanarra/Sadler-Isberg." in r.text


def link_in(html: str) -> str:
    found = re.search(r'id="link" type="text" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def test_an_invitation_without_a_mail_server_is_shown_then_used_once(
    server: Server, org: dict[str, str]
) -> None:
    b = signed_in(server)
    b.get("/users/invite")
    r = b.post(
        "/users/invite",
        {"email": "New@Kanarra.example", "role": "installer", "group": "Kanarra/Sadler-Isberg"},
    )
    assert r.status_code == 200
    assert "No e-mail server is configured: copy this link and send it" in r.text
    url = link_in(r.text)
    assert url.startswith(f"{server.url}/invitations/")
    assert "new@kanarra.example" in b.get("/users").text  # pending

    person = Browser(server)
    form = person.http.get(url.removeprefix(server.url))
    assert form.status_code == 200
    assert "installer" in form.text
    csrf = re.search(r'name="link_csrf" value="([^"]+)"', form.text)
    assert csrf
    path = url.removeprefix(server.url)
    r = person.http.post(
        path, data={"password": PASSWORD, "repeat": "other", "link_csrf": csrf.group(1)}
    )
    assert r.status_code == 422
    assert "does not match" in invalid_field(r.text, "repeat")
    r = person.http.post(path, data={"password": PASSWORD, "repeat": PASSWORD})  # no token
    assert r.status_code == 403
    r = person.http.post(
        path, data={"password": PASSWORD, "repeat": PASSWORD, "link_csrf": csrf.group(1)}
    )
    assert (r.status_code, r.headers["location"]) == (303, "/devices")
    devices = person.http.get("/devices")
    assert devices.status_code == 200
    assert "new@kanarra.example" in devices.text
    again = Browser(server).http.get(path)
    assert again.status_code == 404
    assert "This link no longer works" in again.text
    assert sql(server, "SELECT role FROM users WHERE email = 'new@kanarra.example'") == [
        ("installer",)
    ]


def test_an_invitation_is_revoked_by_an_admin_of_its_subtree_only(
    server: Server, org: dict[str, str]
) -> None:
    b = signed_in(server)
    b.get("/users/invite")
    r = b.post(
        "/users/invite", {"email": "gone@kanarra.example", "role": "viewer", "group": "Kanarra"}
    )
    path = link_in(r.text).removeprefix(server.url)
    ((link_id,),) = sql(server, "SELECT id FROM invitations")
    revoke = f"/users/invitations/{link_id}/revoke"
    rival = signed_in(server, "rival@tekton.example")
    rival.get("/users")
    assert rival.post(revoke).status_code == 404
    assert Browser(server).http.get(path).status_code == 200  # still works
    r = b.post(revoke)
    assert r.status_code == 303
    assert "gone@kanarra.example" not in b.get("/users").text
    assert Browser(server).http.get(path).status_code == 404
    assert b.post(revoke).status_code == 404  # once
    assert sql(server, "SELECT count(*) FROM events WHERE type = 'user.invitation-revoked'") == [
        (1,)
    ]


def test_an_expired_invitation_shows_a_clear_page_and_makes_no_account(
    server: Server, org: dict[str, str]
) -> None:
    b = signed_in(server)
    b.get("/users/invite")
    r = b.post(
        "/users/invite", {"email": "late@kanarra.example", "role": "viewer", "group": "Kanarra"}
    )
    path = link_in(r.text).removeprefix(server.url)
    person = Browser(server)
    csrf = re.search(r'name="link_csrf" value="([^"]+)"', person.http.get(path).text)
    assert csrf
    execute(server, "UPDATE invitations SET expires_at = created_at")  # 72 hours later
    expired = person.http.get(path)
    assert expired.status_code == 404
    assert "This link no longer works" in expired.text
    assert "it expired" in expired.text
    r = person.http.post(
        path, data={"password": PASSWORD, "repeat": PASSWORD, "link_csrf": csrf.group(1)}
    )
    assert r.status_code == 404
    assert SESSION_COOKIE not in r.cookies
    assert sql(server, "SELECT count(*) FROM users WHERE email = 'late@kanarra.example'") == [(0,)]


def test_a_password_reset_link_ends_the_users_sessions(server: Server, org: dict[str, str]) -> None:
    tech = signed_in(server, "tech@kanarra.example")
    b = signed_in(server)
    b.get("/users/tech@kanarra.example")
    r = b.post("/users/tech@kanarra.example/reset-password")
    assert r.status_code == 200
    path = link_in(r.text).removeprefix(server.url)
    assert path.startswith("/password-reset/")
    assert tech.get("/devices").status_code == 200  # not yet: the old password still works
    person = Browser(server)
    csrf = re.search(r'name="link_csrf" value="([^"]+)"', person.http.get(path).text)
    assert csrf
    r = person.http.post(
        path,
        data={"password": "a new password", "repeat": "a new password", "link_csrf": csrf.group(1)},
    )
    assert r.status_code == 303
    assert tech.get("/devices").status_code == 303  # signed out
    assert Browser(server).sign_in("tech@kanarra.example").status_code == 401
    assert Browser(server).sign_in("tech@kanarra.example", "a new password").status_code == 303
    assert person.http.get(path).status_code == 404


def test_role_group_and_access_change_from_the_users_page(
    server: Server, org: dict[str, str]
) -> None:
    b = signed_in(server)
    b.get("/users/tech@kanarra.example")
    r = b.post("/users/tech@kanarra.example/role", {"role": "viewer"})
    assert r.status_code == 303
    r = b.post("/users/tech@kanarra.example/group", {"group": "Kanarra/Sadler-Isberg/East"})
    assert r.status_code == 303
    r = b.post("/users/tech@kanarra.example/group", {"group": "Tekton"})
    assert r.status_code == 404
    assert "no such group" in invalid_field(r.text, "group")
    r = b.post("/users/tech@kanarra.example/disable")
    assert r.status_code == 303
    page = b.get("/users/tech@kanarra.example")
    assert "viewer of Kanarra/Sadler-Isberg/East · disabled" in page.text
    assert sql(
        server,
        "SELECT type FROM events WHERE type IN ('user.role-changed', 'user.moved', 'user.disabled')"
        " ORDER BY id",
    ) == [("user.role-changed",), ("user.moved",), ("user.disabled",)]


# ----------------------------------------------------------------------------- the browser


@contextmanager
def serving(settings: Settings) -> Iterator[str]:
    """Another provisiond on loopback (the same database, other settings)."""
    port = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    uv = PromptServer(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    ready = threading.Event()
    while not uv.started and thread.is_alive():
        ready.wait(0.01)
    assert uv.started, "the second server did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        uv.stop()
        thread.join(timeout=30)


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    with smtp_server() as box:
        yield box


@pytest.mark.slow  # a real browser
@pytest.mark.sqlite_only  # the pages are backend-agnostic; the services run on both
def test_console_people_walk(
    server: Server, api: httpx.Client, browser_page: Any, inbox: Inbox
) -> None:
    from playwright.sync_api import expect

    organisation(api)
    page, url = browser_page, server.url
    check = Audit(page, routes_of("people"), size="desktop")
    page.set_viewport_size({"width": 1366, "height": 900})
    sign_in(page, url, BOSS)
    page.wait_for_url("**/devices")

    # the tree: create a group, a refused name, rename, move
    page.goto(f"{url}/groups")
    expect(page.locator("#group-tree")).to_contain_text("Anaheim")
    check("groups")
    page.select_option("#parent", "Kanarra/Sadler-Isberg")
    page.fill("#name", "North")
    page.click("#create-group button[type=submit]")
    expect(page.locator("#done")).to_contain_text("Created Kanarra/Sadler-Isberg/North")
    page.fill("#name", "")
    page.click("#create-group button[type=submit]")
    expect(page.locator("#name")).to_have_class(re.compile("is-invalid"))
    check("groups: a refused name")
    page.goto(f"{url}/groups")
    page.click("#group-tree >> text=North")
    page.wait_for_url(re.compile(r".*/groups/edit\?path="))
    check("group")
    page.fill("#rename-group #name", "West")
    page.click("#rename-group button[type=submit]")
    expect(page.locator("#name")).to_have_class(re.compile("is-invalid"))
    check("group: a name taken")
    page.fill("#rename-group #name", "Nord")
    page.click("#rename-group button[type=submit]")
    expect(page.locator("#done")).to_contain_text("Renamed: now Kanarra/Sadler-Isberg/Nord")
    page.goto(f"{url}/groups/edit?path=Kanarra/Sadler-Isberg/East")
    page.select_option("#move-group #parent", "Kanarra/Sadler-Isberg/Nord")
    page.click("#move-group button[type=submit]")
    expect(page.locator("#done")).to_contain_text("Moved: now Kanarra/Sadler-Isberg/Nord/East")
    check("groups: moved")
    screenshot(page, "console-people-groups")

    # users: the list, an invitation without a mail server (the link shown), a user's page
    page.goto(f"{url}/users")
    expect(page.locator("#user-list")).to_contain_text("tech@kanarra.example")
    check("users")
    page.click("#invite")
    page.wait_for_url("**/users/invite")
    check("invite")
    page.fill("#email", "shown@kanarra.example")
    page.select_option("#role", "viewer")
    page.select_option("#group", "Kanarra/Sadler-Isberg/Nord")
    page.click("#invite-form button[type=submit]")
    expect(page.locator("#link-shown")).to_contain_text("No e-mail server is configured")
    check("invitation: the link shown")
    page.goto(f"{url}/users/tech@kanarra.example")
    check("user")
    page.select_option("#role", "viewer")
    page.click("#role-form button[type=submit]")
    expect(page.locator("#done")).to_contain_text("is now viewer")
    page.click("#reset-button")
    expect(page.locator("#link-shown")).to_be_visible()
    reset = page.locator("#link").input_value()
    page.goto(f"{url}/users")
    expect(page.locator("#pending-invitations")).to_contain_text("shown@kanarra.example")
    screenshot(page, "console-people-users")
    page.click("#pending-invitations button[type=submit]")
    expect(page.locator("#done")).to_contain_text("The invitation of shown@kanarra.example")
    check("users: an invitation revoked")

    # with a mail server: the invitation is mailed; the invited person sets a password
    smtp = SmtpSettings(
        host=inbox.host, port=inbox.port, security="none", from_address="p@kanarra.example"
    )
    mailing = server.settings.model_copy(update={"smtp": smtp})
    with serving(mailing) as mail_url:
        page.goto(f"{mail_url}/users/invite")  # the session is the database's: still signed in
        page.fill("#email", "mailed@kanarra.example")
        page.select_option("#role", "installer")
        page.select_option("#group", "Kanarra/Sadler-Isberg/West")
        page.click("#invite-form button[type=submit]")
        expect(page.locator("#link-mailed")).to_contain_text("e-mailed to mailed@kanarra.example")
        check("invitation: mailed")
        (mail,) = inbox.wait_for(1)
        link = inbox.link(mail)
        page.click("text=Sign out")
        page.wait_for_url("**/login")
        page.goto(link)
        expect(page.locator("#link-purpose")).to_contain_text("installer")
        check("invitation: set a password")
        page.fill("#password", PASSWORD)
        page.fill("#repeat", "something else")
        page.click("button[type=submit]")
        expect(page.locator("#repeat")).to_have_class(re.compile("is-invalid"))
        check("invitation: passwords differ")
        page.fill("#password", PASSWORD)
        page.fill("#repeat", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url("**/devices")
        expect(page.locator("header")).to_contain_text("mailed@kanarra.example")
        page.goto(link)
        expect(page.locator("h1")).to_have_text("This link no longer works")
        check("invitation: used")
        page.click("text=Sign out")
        page.wait_for_url("**/login")

    # a reset link: the user sets a new password and is signed in
    page.goto(reset)
    expect(page.locator("h1")).to_have_text("Set a new password")
    check("password reset")
    page.fill("#password", "a new password")
    page.fill("#repeat", "a new password")
    page.click("button[type=submit]")
    page.wait_for_url("**/devices")
    expect(page.locator("header")).to_contain_text("tech@kanarra.example")

    check.assert_clean()
