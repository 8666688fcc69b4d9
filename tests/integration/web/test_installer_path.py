"""The installer's path on a phone (issue 23), over real HTTP on loopback, on SQLite and
PostgreSQL: the finish form keeps the registered model, devices needing no proof are named
and placed too, "my group" owns what it says, a typed code survives a wrong try, the
device-secret proof explains its window (and an expired one costs no try), ThingsBoard's
``durationMs`` is optional, waits read in minutes and seconds, release asks first."""

from __future__ import annotations

import csv
import html
import io
import re
import time
from datetime import timedelta

import httpx
import pytest

from provisiond.bootstrap import utc_now
from provisiond.settings import Settings, load_settings
from tests.integration.web.conftest import Server
from tests.integration.web.test_pages import Browser, fleet, signed_in  # noqa: F401


@pytest.fixture
def server_settings(database_url: str) -> Settings:
    return load_settings(
        database_url=database_url,
        log_level="warning",
        claims__rate_per_minute=1000,
        claims__code_attempts_per_minute=1000,
        sessions__login_rate_per_minute=1000,
    )


def leaf_id(page: str, name: str) -> str:
    found = re.search(rf'<option value="([0-9a-f-]{{36}})"[^>]*>{re.escape(name)}<', page)
    assert found is not None, f"no site {name} offered"
    return found.group(1)


def selected_model(page: str) -> str | None:
    select = re.search(r'<select[^>]*id="model".*?</select>', page, re.S)
    assert select is not None
    chosen = re.search(r'<option value="([^"]*)"[^>]*\bselected\b', select.group(0))
    return chosen.group(1) if chosen else None


def start(person: Browser, serial: str, target: str = "me") -> str:
    r = person.post("/provision", {"serial": serial, "target": target})
    assert r.status_code == 303, r.text[:500]
    assert r.headers["location"].startswith("/claims/"), r.headers["location"]
    return str(r.headers["location"])


def access_token(credentials_csv: str, serial: str) -> str:
    rows = csv.DictReader(io.StringIO(credentials_csv))
    return next(
        r["secret"]
        for r in rows
        if r["serial"] == serial and r["credential_type"] == "access-token"
    )


def press(server: Server, token: str) -> None:
    with httpx.Client(base_url=server.url) as device:
        assert device.post(f"/api/v1/{token}/claim/button").json()["proven"] is True


def test_the_finish_form_preselects_the_registered_model(
    server: Server,
    fleet: dict[str, str],  # noqa: F811
    api: httpx.Client,
) -> None:
    # a model that sorts before the device's: the one a careless form would take
    assert api.post("/api/v1/models", json={"name": "AAA-100"}).status_code == 201
    r = api.post(
        "/api/v1/devices/import",
        content="serial,model,profile\nBTN-M,UNO-2483G,p-button\n",
        headers={"Content-Type": "text/csv"},
    )
    assert r.status_code == 201, r.text
    secret = access_token(r.text, "BTN-M")
    tech = signed_in(server, "tech@kanarra.example")
    claim_path = start(tech, "BTN-M")
    press(server, secret)
    page = tech.get(claim_path).text
    assert selected_model(page) == "UNO-2483G"
    anaheim = leaf_id(page, "Anaheim")
    # another model than the registered one is not saved silently: the form asks
    r = tech.post(f"{claim_path}/finish", {"name": "KP1", "group": anaheim, "model": "AAA-100"})
    assert r.status_code == 422
    assert "registered as UNO-2483G" in html.unescape(r.text)
    assert selected_model(r.text) == "AAA-100"  # what they chose, to confirm
    assert api.get("/api/v1/devices/BTN-M").json()["state"] == "registered"
    # confirmed: saved
    r = tech.post(
        f"{claim_path}/finish",
        {"name": "KP1", "group": anaheim, "model": "AAA-100", "model_confirmed": "AAA-100"},
    )
    assert r.status_code == 303
    assert api.get("/api/v1/devices/BTN-M").json()["model"] == "AAA-100"


def test_the_registered_model_is_kept_when_the_form_leaves_it(
    server: Server,
    fleet: dict[str, str],  # noqa: F811
    api: httpx.Client,
) -> None:
    assert api.post("/api/v1/models", json={"name": "AAA-100"}).status_code == 201
    r = api.post(
        "/api/v1/devices/import",
        content="serial,model,profile\nBTN-K,UNO-2483G,p-button\n",
        headers={"Content-Type": "text/csv"},
    )
    secret = access_token(r.text, "BTN-K")
    tech = signed_in(server, "tech@kanarra.example")
    claim_path = start(tech, "BTN-K")
    press(server, secret)
    anaheim = leaf_id(tech.get(claim_path).text, "Anaheim")
    r = tech.post(f"{claim_path}/finish", {"name": "KP2", "group": anaheim, "model": "UNO-2483G"})
    assert r.status_code == 303
    assert api.get("/api/v1/devices/BTN-K").json()["model"] == "UNO-2483G"


def test_a_device_needing_no_proof_is_named_and_placed_at_a_site(
    server: Server,
    fleet: dict[str, str],  # noqa: F811
    api: httpx.Client,
) -> None:
    tech = signed_in(server, "tech@kanarra.example")
    claim_path = start(tech, " plain-1 ")
    # nothing claimed yet: not in the user's (non-leaf) group, not named after its serial
    assert api.get("/api/v1/devices/PLAIN-1").json()["state"] == "registered"
    page = tech.get(claim_path).text
    assert "Prove you have the device" not in page
    assert re.search(r'<fieldset id="finish"[^>]*disabled', page) is None  # ready to finish
    r = tech.post(f"{claim_path}/finish", {"name": "", "group": "", "model": "UNO-2483G"})
    assert r.status_code == 422
    assert "give the device a name" in r.text
    assert "choose a site" in r.text
    r = tech.post(
        f"{claim_path}/finish",
        {"name": "Pump 3", "group": leaf_id(page, "Irvine"), "model": "UNO-2483G"},
    )
    assert (r.status_code, r.headers["location"]) == (303, "/devices/PLAIN-1")
    device = api.get("/api/v1/devices/PLAIN-1").json()
    assert (device["state"], device["name"], device["group"], device["owner"]) == (
        "claimed",
        "Pump 3",
        "Kanarra/Sadler-Isberg/West/Irvine",
        "tech@kanarra.example",
    )


def test_my_group_owns_the_device_at_the_site_chosen(
    server: Server,
    fleet: dict[str, str],  # noqa: F811
    api: httpx.Client,
) -> None:
    tech = signed_in(server, "tech@kanarra.example")
    assert "My group (Kanarra/Sadler-Isberg)" in tech.get("/provision").text
    claim_path = start(tech, "CODE-1", target="group")
    assert tech.post(f"{claim_path}/proof", {"code": fleet["CODE:CODE-1"]}).status_code == 303
    anaheim = leaf_id(tech.get(claim_path).text, "Anaheim")
    r = tech.post(f"{claim_path}/finish", {"name": "Gen", "group": anaheim, "model": "UNO-2483G"})
    assert r.status_code == 303
    device = api.get("/api/v1/devices/CODE-1").json()
    assert (device["owner_kind"], device["owner"], device["group"]) == (
        "group",
        "Kanarra/Sadler-Isberg",
        "Kanarra/Sadler-Isberg/West/Anaheim",
    )
    page = tech.get("/devices/CODE-1").text
    owner = re.search(r'id="device-owner">([^<]*)<', page)
    assert owner is not None
    assert owner.group(1) == "Kanarra/Sadler-Isberg"
    # the group owns it: its other installer sees it as their group's
    assert "CODE-1" in signed_in(server, "tech2@kanarra.example").get("/devices").text


def test_a_wrong_claim_code_keeps_what_was_typed(
    server: Server,
    fleet: dict[str, str],  # noqa: F811
) -> None:
    tech = signed_in(server, "tech@kanarra.example")
    claim_path = start(tech, "CODE-1")
    right = fleet["CODE:CODE-1"].replace("-", "")
    alphabet = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
    body = list(right[:-1])
    body[0] = alphabet[(alphabet.index(body[0]) + 1) % 31]
    body[1] = alphabet[(alphabet.index(body[1]) - 2) % 31]
    total = sum((i + 1) * alphabet.index(c) for i, c in enumerate(body))
    wrong = "".join(body) + alphabet[total % 31]
    typed = f"{wrong[:4]}-{wrong[4:8]}-{wrong[8:]}"
    for code, message in ((typed, "tries left"), ("7KQ4-MZ2X-9HRO", "which no claim code has")):
        r = tech.post(f"{claim_path}/proof", {"code": code})
        assert r.status_code == 422
        field = re.search(r'<input[^>]*id="code"[^>]*>', r.text)
        assert field is not None
        assert f'value="{code}"' in field.group(0)
        assert "is-invalid" in field.group(0)
        feedback = re.search(r'id="code-error"[^>]*>([^<]*)<', r.text)
        assert feedback is not None
        assert message in html.unescape(feedback.group(1))
        assert 'aria-describedby="code-error' in field.group(0)


def test_the_device_secret_page_explains_the_window_to_open_first(
    server: Server,
    fleet: dict[str, str],  # noqa: F811
) -> None:
    tech = signed_in(server, "tech@kanarra.example")
    claim_path = start(tech, "SEC-1")
    page = tech.get(claim_path).text
    assert "must open its claim window first" in page
    # the device has not opened its window: said so, and no try spent (5 would fail it)
    for _ in range(6):
        r = tech.post(f"{claim_path}/proof", {"code": "sunflower"})
        assert r.status_code == 422
        assert "has not opened its claim window" in html.unescape(r.text)
        assert "tries left" not in r.text
    with httpx.Client(base_url=server.url) as device:
        opened = device.post(
            f"/api/v1/{fleet['SEC-1']}/claim", json={"secretKey": "sunflower", "durationMs": 60_000}
        )
        assert opened.status_code == 200
    assert tech.post(f"{claim_path}/proof", {"code": "sunflower"}).status_code == 303


def test_an_expired_device_window_is_called_expired_and_costs_no_try(
    server: Server,
    fleet: dict[str, str],  # noqa: F811
) -> None:
    tech = signed_in(server, "tech@kanarra.example")
    claim_path = start(tech, "SEC-1")
    with httpx.Client(base_url=server.url) as device:
        opened = device.post(
            f"/api/v1/{fleet['SEC-1']}/claim", json={"secretKey": "sunflower", "durationMs": 60_000}
        )
        assert opened.status_code == 200
    # a minute and a half later the device's window has closed (the claim's, 120 s, has not)
    container = server.app.state.container
    real_clock = container.clock
    container.clock = lambda: utc_now() + timedelta(seconds=90)
    try:
        for _ in range(6):
            r = tech.post(f"{claim_path}/proof", {"code": "sunflower"})
            assert r.status_code == 422
            text = html.unescape(r.text)
            assert "claim window has expired" in text
            assert "not this device's" not in text
        with httpx.Client(base_url=server.url) as device:
            assert (
                device.post(
                    f"/api/v1/{fleet['SEC-1']}/claim",
                    json={"secretKey": "sunflower", "durationMs": 60_000},
                ).status_code
                == 200
            )
        assert tech.post(f"{claim_path}/proof", {"code": "sunflower"}).status_code == 303
    finally:
        container.clock = real_clock


def test_duration_ms_is_optional_as_in_thingsboard(
    server: Server,
    fleet: dict[str, str],  # noqa: F811
) -> None:
    before = time.time()
    with httpx.Client(base_url=server.url) as device:
        r = device.post(f"/api/v1/{fleet['SEC-1']}/claim", json={"secretKey": "sunflower"})
        assert r.status_code == 200, r.text
        # the profile's claim window (p-device-secret: 120 s)
        left = r.json()["expiresAt"] / 1000 - before
        assert 110 < left < 130
        bad = device.post(
            f"/api/v1/{fleet['SEC-1']}/claim", json={"secretKey": "x", "durationMs": 5}
        )
        assert bad.status_code == 422
    tech = signed_in(server, "tech@kanarra.example")
    claim_path = start(tech, "SEC-1")
    assert tech.post(f"{claim_path}/proof", {"code": "sunflower"}).status_code == 303


def test_waits_read_in_minutes_and_seconds(
    server: Server,
    fleet: dict[str, str],  # noqa: F811
) -> None:
    tech = signed_in(server, "tech@kanarra.example")
    start(tech, "BTN-1")
    other = signed_in(server, "tech2@kanarra.example")
    r = other.post("/provision", {"serial": "BTN-1", "target": "me"})
    assert r.status_code == 409
    text = html.unescape(r.text)
    assert re.search(r"try again in (1 min \d{1,2} s|2 min)\b", text), text
    assert re.search(r"\b\d{3} s\b", text) is None


def test_release_asks_first_and_says_it_happened(
    server: Server,
    fleet: dict[str, str],  # noqa: F811
    api: httpx.Client,
) -> None:
    tech = signed_in(server, "tech@kanarra.example")
    claim_path = start(tech, "CODE-1")
    assert tech.post(f"{claim_path}/proof", {"code": fleet["CODE:CODE-1"]}).status_code == 303
    east = leaf_id(tech.get(claim_path).text, "East")
    r = tech.post(f"{claim_path}/finish", {"name": "Gen", "group": east, "model": "UNO-2483G"})
    assert r.status_code == 303
    page = tech.get("/devices/CODE-1").text
    assert 'href="/devices/CODE-1/release"' in page
    # someone who may not release it is not asked either
    other = signed_in(server, "tech2@kanarra.example")
    assert 'href="/devices/CODE-1/release"' not in other.get("/devices/CODE-1").text
    assert other.get("/devices/CODE-1/release").status_code == 403
    # the question, without JavaScript: a page of its own
    ask = tech.get("/devices/CODE-1/release")
    assert ask.status_code == 200
    assert "Release CODE-1?" in html.unescape(ask.text)
    assert 'name="confirm" value="yes"' in ask.text
    assert api.get("/api/v1/devices/CODE-1").json()["state"] == "claimed"
    # a post without the confirmation (the old form, a stray click) asks again, changes nothing
    again = tech.post("/devices/CODE-1/release")
    assert again.status_code == 200
    assert "Release CODE-1?" in html.unescape(again.text)
    assert api.get("/api/v1/devices/CODE-1").json()["state"] == "claimed"
    # without the form's token: refused
    assert tech.post("/devices/CODE-1/release", {"confirm": "yes"}, csrf=False).status_code == 403
    assert api.get("/api/v1/devices/CODE-1").json()["state"] == "claimed"
    # confirmed: released, and the page says so
    r = tech.post("/devices/CODE-1/release", {"confirm": "yes"})
    assert r.status_code == 303
    assert api.get("/api/v1/devices/CODE-1").json()["state"] == "released"
    done = tech.get(r.headers["location"])
    assert done.status_code == 200
    assert "CODE-1 was released" in html.unescape(done.text)
