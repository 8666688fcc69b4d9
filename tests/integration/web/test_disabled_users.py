"""An operator disables a user (a person who left, a rogue installer): their sessions end at
once, sign-in is refused with the usual answer, the audit log and the security log say so;
enabled again, they sign in."""

from __future__ import annotations

import httpx

from tests.integration.web.conftest import Server
from tests.integration.web.test_pages import PASSWORD, Browser
from tests.integration.web.test_provisioning import sql as sql_rows


def test_a_disabled_user_is_signed_out_and_cannot_sign_in(
    server: Server, api: httpx.Client
) -> None:
    assert api.post("/api/v1/groups", json={"path": "Org"}).status_code == 201
    assert (
        api.post(
            "/api/v1/users",
            json={
                "email": "rogue@org.example",
                "password": PASSWORD,
                "role": "installer",
                "group": "Org",
            },
        ).status_code
        == 201
    )
    assert api.post("/api/v1/devices", json={"serial": "DIS-1"}).status_code == 201
    phone, laptop = Browser(server), Browser(server)
    for b in (phone, laptop):
        assert b.sign_in("rogue@org.example").status_code == 303
    assert phone.get("/provision").status_code == 200

    r = api.post("/api/v1/users/rogue@org.example/disable")
    assert r.status_code == 200, r.text
    assert r.json()["sessions_ended"] == 2
    assert r.json()["disabled_at"] is not None
    # both sessions are gone: the next page asks to sign in, a claim is not taken
    assert phone.get("/provision").status_code == 303
    refused = laptop.post("/provision", {"serial": "DIS-1", "target": "me"})
    assert refused.status_code in (303, 403)
    assert api.get("/api/v1/devices/DIS-1").json()["state"] == "registered"
    # the right password is refused with the same answer as a wrong one
    right, wrong = (
        Browser(server).sign_in("rogue@org.example"),
        Browser(server).sign_in("rogue@org.example", "not the password"),
    )
    assert right.status_code == wrong.status_code == 401
    assert "wrong e-mail or password" in right.text
    assert "wrong e-mail or password" in wrong.text
    again = api.post("/api/v1/users/rogue@org.example/disable")
    assert again.json()["sessions_ended"] == 0  # idempotent
    listed = {u["email"]: u for u in api.get("/api/v1/users").json()["items"]}
    assert listed["rogue@org.example"]["disabled_at"] is not None

    assert api.post("/api/v1/users/rogue@org.example/enable").status_code == 200
    assert Browser(server).sign_in("rogue@org.example").status_code == 303
    assert api.post("/api/v1/users/nobody@org.example/disable").json()["code"] == "user-not-found"
    events = sql_rows(server, "SELECT type FROM events WHERE type LIKE 'user.%abled' ORDER BY id")
    assert events == [("user.disabled",), ("user.enabled",)]
    reasons = sql_rows(server, "SELECT data FROM events WHERE type = 'user.sign-in-failed'")
    assert any("disabled" in str(d) for (d,) in reasons)
