"""The admin API's invitations, password resets and group renames and moves over real HTTP,
on SQLite and PostgreSQL: what each answers, the bad input it refuses (naming the field,
changing nothing), a token of another customer answered as for nothing, and the links that
work (mailed through a real SMTP server, or answered to pass on)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from provisiond.settings import Settings, SmtpSettings, load_settings
from tests.integration.web.conftest import Server
from tests.support.smtp import Inbox, smtp_server

PASSWORD = "correct horse battery"


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    with smtp_server() as box:
        yield box


@pytest.fixture
def server_settings(database_url: str, request: pytest.FixtureRequest) -> Settings:
    """A test that asks for the ``inbox`` gets a server that mails through it."""
    settings = load_settings(database_url=database_url, log_level="warning")
    if "inbox" not in request.fixturenames:
        return settings
    inbox: Inbox = request.getfixturevalue("inbox")
    smtp = SmtpSettings(
        host=inbox.host, port=inbox.port, security="none", from_address="p@kanarra.example"
    )
    return settings.model_copy(update={"smtp": smtp})


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    doc: dict[str, Any] = response.json()
    assert doc["code"] == code, doc
    return doc


def fields(doc: dict[str, Any]) -> set[str]:
    return {p.get("field") for p in doc.get("errors", [])}


@pytest.fixture
def org(server: Server, api: httpx.Client) -> dict[str, httpx.Client]:
    """Kanarra (two sites) and Tekton, a user in each, and tokens: an admin of Kanarra, an
    admin of Tekton (another customer), an installer of Kanarra."""
    for path in ("Kanarra/West", "Kanarra/East", "Tekton/Plant"):
        ok(api.post("/api/v1/groups", json={"path": path}), 201)
    for email, group in (("ann@kanarra.example", "Kanarra/West"), ("tom@tekton.example", "Tekton")):
        user = {"email": email, "password": PASSWORD, "role": "installer", "group": group}
        ok(api.post("/api/v1/users", json=user), 201)
    ok(api.post("/api/v1/devices", json={"serial": "KAN-1", "group": "Kanarra/West"}), 201)
    clients = {}
    for name, role, group in (
        ("kanarra", "admin", "Kanarra"),
        ("tekton", "admin", "Tekton"),
        ("installer", "installer", "Kanarra"),
    ):
        token = ok(
            api.post("/api/v1/tokens", json={"name": name, "role": role, "group": group}), 201
        )
        clients[name] = server.client(token["secret"])
    return clients


def link_page(server: Server, url: str) -> int:
    path = url.split("://", 1)[1].split("/", 1)[1]
    with httpx.Client(base_url=server.url) as browser:
        return browser.get(f"/{path}").status_code


def test_invite_list_resend_and_revoke(server: Server, api: httpx.Client, org: Any) -> None:
    kanarra = org["kanarra"]
    invite = {"email": "new@kanarra.example", "role": "installer", "group": "Kanarra/East"}
    issued = ok(kanarra.post("/api/v1/invitations", json=invite), 201)
    assert issued["mailed"] is False  # no mail server: the link is answered, to pass on
    assert issued["role"] == "installer"
    assert issued["group"] == "Kanarra/East"
    assert issued["url"].startswith(f"{server.url}/invitations/")
    assert link_page(server, issued["url"]) == 200

    listed = ok(kanarra.get("/api/v1/invitations"))
    assert [(i["id"], i["email"], i["created_by"]) for i in listed] == [
        (issued["id"], "new@kanarra.example", "token:kanarra")
    ]
    assert ok(org["tekton"].get("/api/v1/invitations")) == []  # another customer's: none

    again = ok(kanarra.post(f"/api/v1/invitations/{issued['id']}/resend"), 201)
    assert again["id"] != issued["id"]
    assert (again["email"], again["role"], again["group"]) == (
        "new@kanarra.example",
        "installer",
        "Kanarra/East",
    )
    assert link_page(server, issued["url"]) == 404  # the first link stopped working
    assert link_page(server, again["url"]) == 200
    problem(kanarra.post(f"/api/v1/invitations/{issued['id']}/resend"), 404, "link-not-valid")

    # another customer's token: as for an invitation that does not exist, nothing changed
    tekton = org["tekton"]
    theirs = tekton.post(f"/api/v1/invitations/{again['id']}/resend")
    missing = tekton.post(f"/api/v1/invitations/{issued['id']}/resend")
    assert (theirs.status_code, theirs.json()["detail"]) == (
        missing.status_code,
        missing.json()["detail"],
    )
    problem(tekton.delete(f"/api/v1/invitations/{again['id']}"), 404, "link-not-valid")
    assert link_page(server, again["url"]) == 200

    assert kanarra.delete(f"/api/v1/invitations/{again['id']}").status_code == 204
    assert link_page(server, again["url"]) == 404
    assert ok(kanarra.get("/api/v1/invitations")) == []
    problem(kanarra.delete(f"/api/v1/invitations/{again['id']}"), 404, "link-not-valid")
    problem(kanarra.delete("/api/v1/invitations/not-an-id"), 404, "link-not-valid")

    kinds = [e["type"] for e in ok(api.get("/api/v1/events", params={"group": "Kanarra"}))["items"]]
    assert kinds[:3] == ["user.invitation-revoked", "user.invited", "user.invited"]


def test_an_invitation_refused_names_its_field_and_changes_nothing(
    api: httpx.Client, org: Any
) -> None:
    kanarra = org["kanarra"]
    good = {"email": "new@kanarra.example", "role": "installer", "group": "Kanarra/East"}
    for change, status, code, field in (
        ({"email": "not an address"}, 422, "invalid-input", "email"),
        ({"role": "root"}, 422, "invalid-input", "role"),
        ({"group": "Kanarra/Nowhere"}, 404, "group-not-found", None),
        ({"group": "Tekton/Plant"}, 404, "group-not-found", None),  # another customer's
        ({"email": "ann@kanarra.example"}, 409, "user-exists", "email"),
    ):
        doc = problem(kanarra.post("/api/v1/invitations", json={**good, **change}), status, code)
        if field:
            assert field in fields(doc), doc
    doc = problem(
        kanarra.post("/api/v1/invitations", json={**good, "extra": 1}), 422, "invalid-input"
    )
    problem(org["installer"].post("/api/v1/invitations", json=good), 403, "forbidden")
    assert ok(api.get("/api/v1/invitations")) == []


def test_a_password_reset_link(server: Server, org: Any) -> None:
    kanarra = org["kanarra"]
    issued = ok(kanarra.post("/api/v1/users/ann@kanarra.example/password-reset"), 201)
    assert issued["email"] == "ann@kanarra.example"
    assert issued["url"].startswith(f"{server.url}/password-reset/")
    assert link_page(server, issued["url"]) == 200
    problem(kanarra.post("/api/v1/users/tom@tekton.example/password-reset"), 404, "user-not-found")
    problem(
        kanarra.post("/api/v1/users/nobody@kanarra.example/password-reset"), 404, "user-not-found"
    )
    problem(
        org["installer"].post("/api/v1/users/ann@kanarra.example/password-reset"), 403, "forbidden"
    )
    ok(kanarra.post("/api/v1/users/ann@kanarra.example/disable"))
    problem(kanarra.post("/api/v1/users/ann@kanarra.example/password-reset"), 422, "invalid-input")
    assert link_page(server, issued["url"]) == 404  # a disabled user's link works no more


def test_links_are_mailed_when_a_mail_server_is_set(server: Server, org: Any, inbox: Inbox) -> None:
    kanarra = org["kanarra"]
    invite = {"email": "mailed@kanarra.example", "role": "viewer", "group": "Kanarra/West"}
    issued = ok(kanarra.post("/api/v1/invitations", json=invite), 201)
    assert issued["mailed"] is True
    (mail,) = inbox.wait_for(1)
    assert mail["To"] == "mailed@kanarra.example"
    assert inbox.link(mail) == issued["url"]
    reset = ok(kanarra.post("/api/v1/users/ann@kanarra.example/password-reset"), 201)
    assert reset["mailed"] is True
    mails = inbox.wait_for(2)
    assert inbox.link(mails[1]) == reset["url"]


def paths(api: httpx.Client) -> dict[str, int | None]:
    return {g["path"]: g["devices"] for g in ok(api.get("/api/v1/groups"))["items"]}


def test_rename_and_move_a_group(api: httpx.Client, org: Any) -> None:
    kanarra = org["kanarra"]
    renamed = ok(kanarra.post("/api/v1/groups/Kanarra/West/rename", json={"name": "Pacific"}))
    assert (renamed["path"], renamed["name"], renamed["parent"]) == (
        "Kanarra/Pacific",
        "Pacific",
        "Kanarra",
    )
    assert paths(api)["Kanarra/Pacific"] == 1  # its device went with it
    assert "Kanarra/West" not in paths(api)
    user = next(
        u for u in ok(api.get("/api/v1/users"))["items"] if u["email"] == "ann@kanarra.example"
    )
    assert user["group"] == "Kanarra/Pacific"

    moved = ok(kanarra.post("/api/v1/groups/Kanarra/Pacific/move", json={"parent": "Kanarra/East"}))
    assert moved["path"] == "Kanarra/East/Pacific"
    assert paths(api)["Kanarra/East/Pacific"] == 1

    top = ok(api.post("/api/v1/groups/Kanarra/East/Pacific/move", json={"parent": None}))
    assert top["path"] == "Pacific"  # an operator-wide token may move a group to the top
    kinds = [e["type"] for e in ok(api.get("/api/v1/events", params={"limit": 3}))["items"]]
    assert kinds == ["group.moved", "group.moved", "group.renamed"]


def test_a_rename_or_move_refused_changes_nothing(api: httpx.Client, org: Any) -> None:
    kanarra, tekton = org["kanarra"], org["tekton"]
    ok(api.post("/api/v1/groups", json={"path": "Kanarra/East/Depot"}), 201)
    before = paths(api)
    doc = problem(
        kanarra.post("/api/v1/groups/Kanarra/West/rename", json={"name": "East"}),
        409,
        "group-exists",
    )
    assert "name" in fields(doc)
    doc = problem(
        kanarra.post("/api/v1/groups/Kanarra/West/rename", json={"name": "a/b"}),
        422,
        "invalid-input",
    )
    assert "name" in fields(doc)
    problem(kanarra.post("/api/v1/groups/Kanarra/West/rename", json={}), 422, "invalid-input")
    doc = problem(
        kanarra.post("/api/v1/groups/Kanarra/East/move", json={"parent": "Kanarra/East/Depot"}),
        422,
        "invalid-input",
    )
    assert "parent" in fields(doc)
    problem(kanarra.post("/api/v1/groups/Kanarra/rename", json={"name": "K"}), 403, "forbidden")
    problem(
        kanarra.post("/api/v1/groups/Kanarra/West/move", json={"parent": None}), 403, "forbidden"
    )
    problem(
        org["installer"].post("/api/v1/groups/Kanarra/West/rename", json={"name": "X"}),
        403,
        "forbidden",
    )
    # another customer's group, or a group of Kanarra moved under another customer's: as
    # for a group that does not exist
    for url, body, missing_url, missing_body in (
        (
            "/api/v1/groups/Tekton/Plant/rename",
            {"name": "X"},
            "/api/v1/groups/Tekton/Nope/rename",
            {"name": "X"},
        ),
        (
            "/api/v1/groups/Kanarra/West/move",
            {"parent": "Tekton/Plant"},
            "/api/v1/groups/Kanarra/West/move",
            {"parent": "Tekton/Nope"},
        ),
    ):
        theirs = problem(kanarra.post(url, json=body), 404, "group-not-found")
        nothing = problem(kanarra.post(missing_url, json=missing_body), 404, "group-not-found")
        assert theirs["detail"].replace("Plant", "Nope") == nothing["detail"]
    problem(
        tekton.post("/api/v1/groups/Kanarra/West/rename", json={"name": "X"}),
        404,
        "group-not-found",
    )
    assert paths(api) == before
