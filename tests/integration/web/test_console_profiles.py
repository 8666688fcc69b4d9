"""The console's profiles (web/pages/profiles.py): over real HTTP on SQLite and PostgreSQL —
who may use them, the secret shown once, each refused form naming its fields and writing
nothing, the subtree — and one walk in Chromium through every page."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.routing import APIRoute

from provisiond.web.pages import profiles as profile_pages
from tests.integration.web import browsing
from tests.integration.web.browsing import PASSWORD, Audit, organisation, routes_of, screenshot
from tests.integration.web.conftest import Server
from tests.integration.web.test_events_api import every_page
from tests.integration.web.test_pages import (
    server_settings,  # noqa: F401 (the pages' limits)
    signed_in,
)
from tests.integration.web.test_provisioning import URL as PROVISION_URL

BOSS = "boss@kanarra.example"  # an admin of Kanarra
OTHER = "boss@brightwater.example"  # an admin of another customer


def public_pem(key: Any) -> str:
    return str(
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def p256_pem() -> str:
    return public_pem(ec.generate_private_key(ec.SECP256R1()))


def customers(api: httpx.Client) -> None:
    """Kanarra (organisation()) with a profile of its own, a second customer with its
    admin and profile, and a CA."""
    organisation(api)
    assert api.post("/api/v1/groups", json={"path": "Brightwater"}).status_code == 201
    user = {"email": OTHER, "password": PASSWORD, "role": "admin", "group": "Brightwater"}
    assert api.post("/api/v1/users", json=user).status_code == 201
    for name, group in (("kanarra-gw", "Kanarra/Sadler-Isberg"), ("bright-gw", "Brightwater")):
        r = api.post("/api/v1/profiles", json={"name": name, "group": group})
        assert r.status_code == 201, r.text
    assert api.post("/api/v1/cas", json={"name": "factory"}).status_code == 201


def written(api: httpx.Client) -> tuple[Any, int]:
    """What a refused form must not change: the profiles, and their audit events."""
    r = api.get("/api/v1/profiles", params={"limit": 100})
    assert r.status_code == 200, r.text
    return r.json()["items"], len([e for e in every_page(api) if e["type"].startswith("profile")])


def profile(api: httpx.Client, name: str) -> dict[str, Any]:
    r = api.get(f"/api/v1/profiles/{name}")
    assert r.status_code == 200, r.text
    doc: dict[str, Any] = r.json()
    return doc


def provisions(server: Server, key: str, secret: str, serial: str) -> bool:
    r = httpx.post(
        server.url + PROVISION_URL,
        json={"provisionDeviceKey": key, "provisionDeviceSecret": secret, "deviceName": serial},
    )
    assert r.status_code == 200, r.text
    return bool(r.json()["status"] == "SUCCESS")


def shown_secret(html: str) -> str:
    found = re.search(r'id="provision-secret">([^<]+)<', html)
    assert found, html
    return found.group(1)


def field_error(html: str, name: str) -> str:
    found = re.search(rf'id="{name}-error">([^<]*)<', html)
    assert found, f"no message on {name}"
    return found.group(1)


def create_form(**fields: str) -> dict[str, str]:
    form = {
        "name": "meters-2026",
        "group": "Kanarra/Sadler-Isberg/West",
        "strategy": "allow-create",
        "default_credential": "access-token",
        "rate_per_minute": "600",
        "source_rate_per_minute": "60",
        "reprovision": "never",
        "device_secret_min_length": "16",
        "certificate_days": "365",
        "release_policy": "keep",
    }
    return {**form, **fields}


def post_routes() -> list[str]:
    return [
        r.path
        for r in profile_pages.router.routes
        if isinstance(r, APIRoute) and "POST" in r.methods
    ]


def test_installers_and_viewers_get_403_on_every_route(server: Server, api: httpx.Client) -> None:
    customers(api)
    before = written(api)
    gets = [r.path for r in routes_of("profiles")]
    assert len(gets) >= 4
    assert len(post_routes()) >= 5
    for email in ("tech@kanarra.example", "viewer@kanarra.example"):
        b = signed_in(server, email)
        csrf = b.csrf
        assert csrf
        for path in gets:
            r = b.get(path.replace("{name}", "kanarra-gw"))
            assert r.status_code == 403, (email, path)
            assert "The console is for admins" in r.text
            assert "/profiles/new" not in r.text  # nothing of the console shown
        for path in post_routes():
            b.csrf = csrf
            data = {**create_form(), "confirm": "yes", "enabled": "no", "remove": "yes"}
            r = b.post(path.replace("{name}", "kanarra-gw"), data)
            assert r.status_code == 403, (email, path)
    assert written(api) == before


def test_a_created_profile_shows_its_secret_once(server: Server, api: httpx.Client) -> None:
    customers(api)
    boss = signed_in(server, BOSS)
    r = boss.get("/profiles/new")
    assert r.status_code == 200
    assert 'value="Kanarra/Sadler-Isberg/West"' in r.text
    assert "Brightwater" not in r.text
    form = create_form(
        default_credential="mqtt-basic",
        claim_proof="code",
        claim_window="600",
        release_policy="reset",
        ca="factory",
        device_ca="factory",
        frequency_plan="EU_863_870_TTN",
        class_c="yes",
    )
    r = boss.http.post(
        "/profiles/new",
        data={**form, "credentials": ["access-token", "x509"], "csrf": boss.csrf},
        files={"jwt_public_key_file": ("line.pub.pem", p256_pem().encode(), "text/plain")},
    )
    assert r.status_code == 200, r.text
    secret = shown_secret(r.text)
    made = profile(api, "meters-2026")
    assert made["group"] == "Kanarra/Sadler-Isberg/West"
    assert made["credentials"] == ["mqtt-basic", "access-token", "x509"]
    assert (made["claim_proof"], made["claim_window"], made["release_policy"]) == (
        "code",
        600,
        "reset",
    )
    assert (made["ca"], made["device_ca"], made["registration_algorithm"]) == (
        "factory",
        "factory",
        "ES256",
    )
    assert made["lorawan"] == {"frequency_plan_id": "EU_863_870_TTN", "supports_class_c": True}
    assert provisions(server, made["key"], secret, "MTR-1")
    # never again: not on its page, not in the list
    for path in ("/profiles/meters-2026", "/profiles"):
        page = boss.get(path)
        assert page.status_code == 200
        assert made["key"] in page.text
        assert secret not in page.text
    events = [e for e in every_page(api) if e["type"] == "profile.created"]
    assert any(e["actor"] == f"user:{BOSS}" for e in events)


def test_a_refused_create_names_its_fields_and_writes_nothing(
    server: Server, api: httpx.Client
) -> None:
    customers(api)
    boss = signed_in(server, BOSS)
    boss.get("/profiles/new")
    before = written(api)
    bad = create_form(
        name="has spaces",
        key="short",
        rate_per_minute="lots",
        claim_window="5",
        jwt_public_key=public_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
    )
    r = boss.post("/profiles/new", {**bad, "secret": "chosen-secret-1"})
    assert r.status_code == 422
    assert "letters, digits" in field_error(r.text, "name")
    assert "shorter than 8" in field_error(r.text, "key")
    assert "not a whole number" in field_error(r.text, "rate_per_minute")
    r = boss.post("/profiles/new", {**bad, "rate_per_minute": "600"})
    assert r.status_code == 422
    assert "between 30" in field_error(r.text, "claim_window")
    assert "P-256" in field_error(r.text, "jwt_public_key")
    assert 'value="has spaces"' in r.text  # the form comes back as typed
    # refused by name: taken, a group outside the subtree, a CA that cannot sign
    r = boss.post("/profiles/new", create_form(name="kanarra-gw"))
    assert r.status_code == 409
    assert "already exists" in field_error(r.text, "name")
    r = boss.post("/profiles/new", create_form(group="Brightwater"))
    assert r.status_code == 404
    assert "no group" in field_error(r.text, "group")
    r = boss.post("/profiles/new", create_form(model="NO-SUCH"))
    assert "no model" in field_error(r.text, "model")
    r = boss.post("/profiles/new", create_form(), csrf=False)
    assert r.status_code == 403
    assert "Form expired" in r.text
    assert written(api) == before


def edit_form(**fields: str) -> dict[str, str]:
    """The edit form as kanarra-gw's page shows it (its values unchanged), then ``fields``."""
    form = {
        "reprovision": "never",
        "device_secret_min_length": "16",
        "device_ca": "",
        "ca": "",
        "certificate_days": "365",
        "claim_proof": "",
        "claim_window": "",
        "release_policy": "keep",
    }
    return {**form, **fields}


def test_editing_names_its_fields_and_saves(server: Server, api: httpx.Client) -> None:
    customers(api)
    boss = signed_in(server, BOSS)
    r = boss.get("/profiles/kanarra-gw")
    assert r.status_code == 200
    assert 'id="rules-form"' in r.text
    before = written(api)
    r = boss.post(
        "/profiles/kanarra-gw/edit",
        edit_form(
            device_secret_min_length="0",
            certificate_days="lots",
            claim_proof="sometimes",
            claim_window="5",
            release_policy="never",
        ),
    )
    assert r.status_code == 422
    assert "between 1 and 128" in field_error(r.text, "device_secret_min_length")
    assert "not a whole number" in field_error(r.text, "certificate_days")
    assert "not a claim proof" in field_error(r.text, "claim_proof")
    assert "between 30" in field_error(r.text, "claim_window")
    assert "not a release policy" in field_error(r.text, "release_policy")
    assert 'value="0"' in r.text  # the form comes back as typed
    r = boss.post("/profiles/kanarra-gw/edit", edit_form(reprovision="always"))
    assert "not a reprovisioning policy" in field_error(r.text, "reprovision")
    r = boss.post("/profiles/kanarra-gw/edit", edit_form(device_ca="x"))
    assert r.status_code == 404
    assert "no certificate authority" in field_error(r.text, "device_ca")
    r = boss.post("/profiles/kanarra-gw/edit", edit_form(ca="x"))
    assert "no certificate authority" in field_error(r.text, "ca")
    assert written(api) == before
    # unchanged: saved, no event
    assert boss.post("/profiles/kanarra-gw/edit", edit_form()).status_code == 303
    assert written(api) == before

    changed = edit_form(
        reprovision="with-proof",
        device_secret_min_length="8",
        device_ca="factory",
        ca="factory",
        certificate_days="90",
        claim_proof="button",
        claim_window="900",
        release_policy="reset",
    )
    r = boss.post("/profiles/kanarra-gw/edit", changed)
    assert r.status_code == 303
    assert r.headers["location"] == "/profiles/kanarra-gw?saved=rules"
    made = profile(api, "kanarra-gw")
    assert {k: made[k] for k in ("reprovision", "device_secret_min_length", "device_ca")} == {
        "reprovision": "with-proof",
        "device_secret_min_length": 8,
        "device_ca": "factory",
    }
    assert {k: made[k] for k in ("ca", "certificate_days", "claim_proof", "claim_window")} == {
        "ca": "factory",
        "certificate_days": 90,
        "claim_proof": "button",
        "claim_window": 900,
    }
    assert made["release_policy"] == "reset"
    page = boss.get("/profiles/kanarra-gw").text
    assert 'value="factory" selected' in page
    assert 'value="button" selected' in page
    # the empty choices: no CAs, the instance's claim proof and window
    r = boss.post(
        "/profiles/kanarra-gw/edit",
        {**changed, "device_ca": "", "ca": "", "claim_proof": "", "claim_window": ""},
    )
    assert r.status_code == 303
    made = profile(api, "kanarra-gw")
    assert [made[k] for k in ("device_ca", "ca", "claim_proof", "claim_window")] == [None] * 4
    assert made["certificate_days"] == 90
    updates = [e for e in every_page(api) if e["type"] == "profile.updated"]
    assert len(updates) == 2
    assert {e["actor"] for e in updates} == {f"user:{BOSS}"}


def test_a_jwt_key_is_checked_uploaded_and_removed(server: Server, api: httpx.Client) -> None:
    customers(api)
    boss = signed_in(server, BOSS)
    boss.get("/profiles/kanarra-gw")
    before = written(api)
    for pem, message in (
        ("-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----", "not a PEM"),
        (public_pem(ec.generate_private_key(ec.SECP384R1())), "P-256"),
        ("", "paste a PEM public key"),
    ):
        r = boss.post("/profiles/kanarra-gw/jwt-key", {"jwt_public_key": pem})
        assert r.status_code == 422
        assert message in field_error(r.text, "jwt_public_key")
    assert written(api) == before
    r = boss.http.post(
        "/profiles/kanarra-gw/jwt-key",
        data={"csrf": boss.csrf},
        files={"jwt_public_key_file": ("k.pem", p256_pem().encode(), "application/x-pem-file")},
    )
    assert r.status_code == 303
    assert profile(api, "kanarra-gw")["registration_algorithm"] == "ES256"
    assert boss.post("/profiles/kanarra-gw/jwt-key", {"remove": "yes"}).status_code == 303
    assert profile(api, "kanarra-gw")["registration_algorithm"] == "HS256"


def test_rotating_asks_shows_the_new_secret_once_and_is_not_repeated(
    server: Server, api: httpx.Client
) -> None:
    customers(api)
    boss = signed_in(server, BOSS)
    r = api.post("/api/v1/profiles/kanarra-gw/rotate-secret")
    key, old = r.json()["key"], r.json()["secret"]
    r = boss.get("/profiles/kanarra-gw/rotate")
    assert r.status_code == 200
    assert "Rotate the secret" in r.text
    rotated_at = re.search(r'name="rotated_at" value="([^"]+)"', r.text)
    assert rotated_at
    before = written(api)
    assert boss.post("/profiles/kanarra-gw/rotate", {}).status_code == 200  # not confirmed: asked
    form = {"confirm": "yes", "rotated_at": rotated_at.group(1)}
    r = boss.post("/profiles/kanarra-gw/rotate", {**form, "secret": key})
    assert r.status_code == 422
    assert "differ from the key" in field_error(r.text, "secret")
    r = boss.post("/profiles/kanarra-gw/rotate", {**form, "secret": "tiny"})
    assert r.status_code == 422
    assert "shorter than 8" in field_error(r.text, "secret")
    assert written(api) == before
    r = boss.post("/profiles/kanarra-gw/rotate", form)
    assert r.status_code == 200
    new = shown_secret(r.text)
    assert not provisions(server, key, old, "GW-1")
    assert provisions(server, key, new, "GW-2")
    # the same form again (a reload): refused, the secret just shown stays
    r = boss.post("/profiles/kanarra-gw/rotate", form)
    assert r.status_code == 409
    assert "nothing was changed" in r.text
    assert provisions(server, key, new, "GW-3")
    assert new not in boss.get("/profiles/kanarra-gw").text


def test_disabling_and_enabling(server: Server, api: httpx.Client) -> None:
    customers(api)
    boss = signed_in(server, BOSS)
    boss.get("/profiles/kanarra-gw")
    r = boss.post("/profiles/kanarra-gw/enabled", {"enabled": "no"})
    assert r.status_code == 303
    assert profile(api, "kanarra-gw")["enabled"] is False
    assert 'id="enable-profile"' in boss.get("/profiles/kanarra-gw").text
    assert boss.post("/profiles/kanarra-gw/enabled", {"enabled": "yes"}).status_code == 303
    assert profile(api, "kanarra-gw")["enabled"] is True


def test_every_form_is_refused_without_its_csrf_token(server: Server, api: httpx.Client) -> None:
    customers(api)
    boss = signed_in(server, BOSS)
    before = written(api)
    data = {**create_form(), **edit_form(), "confirm": "yes", "enabled": "no", "remove": "yes"}
    for path in post_routes():
        for csrf in ("", "not-the-token"):
            r = boss.http.post(path.replace("{name}", "kanarra-gw"), data={**data, "csrf": csrf})
            assert r.status_code == 403, path
            assert "Form expired" in r.text
    assert written(api) == before


def test_another_customers_profiles_are_not_found(server: Server, api: httpx.Client) -> None:
    customers(api)
    other = signed_in(server, OTHER)
    listed = other.get("/profiles")
    assert "bright-gw" in listed.text
    assert "kanarra-gw" not in listed.text
    before = written(api)

    def answers(name: str) -> list[tuple[int, str]]:
        out = []
        for path in [r.path for r in routes_of("profiles")] + post_routes():
            if "{name}" not in path:
                continue
            url = path.replace("{name}", name)
            if path in post_routes():
                data = {**edit_form(), "confirm": "yes", "enabled": "no", "remove": "yes"}
                r = other.post(url, data)
            else:
                r = other.get(url)
            out.append((r.status_code, r.text.replace(name, "NAME")))
        return out

    theirs, missing = answers("kanarra-gw"), answers("nobody-gw")
    assert {status for status, _ in theirs} == {404}
    assert theirs == missing
    assert written(api) == before


@pytest.mark.slow  # a real browser
@pytest.mark.sqlite_only  # the pages are the same on both; the services are tested on both
def test_console_profiles_walk(server: Server, api: httpx.Client, browser_page: Any) -> None:
    from playwright.sync_api import expect

    customers(api)
    page, url = browser_page, server.url
    page.set_viewport_size(browsing.SIZES["desktop"])
    check = Audit(page, routes_of("profiles"), size="desktop")
    browsing.sign_in(page, url, BOSS)
    page.wait_for_url("**/devices")

    page.goto(f"{url}/profiles")
    expect(page.locator("#profile-list")).to_contain_text("kanarra-gw")
    check("profiles: list")

    # create: a mistake first, then the secret, shown once
    page.click("#new-profile")
    page.wait_for_url("**/profiles/new")
    check("profiles: new")
    page.fill("#name", "line 2")
    page.fill("#claim_window", "5")
    page.click("#create-profile")
    expect(page.locator("#name")).to_have_class(re.compile("is-invalid"))
    expect(page.locator("#claim_window-error")).to_contain_text("between 30")
    check("profiles: new, refused")
    screenshot(page, "console-profiles-new")
    page.fill("#name", "line-2")
    page.fill("#claim_window", "600")
    page.select_option("#group", "Kanarra/Sadler-Isberg/East")
    page.select_option("#claim_proof", "button")
    page.select_option("#release_policy", "reset")
    page.check("#credentials-x509")
    page.click("#create-profile")
    secret = page.locator("#provision-secret")
    expect(secret).to_be_visible()
    shown = secret.inner_text().strip()
    assert len(shown) == 20
    check("profiles: created, the secret shown once")
    page.reload()  # the address is the profile's own now: its page, without the secret
    expect(page.locator("h1")).to_have_text("line-2")
    assert shown not in page.content()
    expect(page.locator("#profile-settings")).to_contain_text("button")
    expect(page.locator("#profile-settings")).to_contain_text("600 s")

    # edit: errors, then fixed; CAs attached, the claim rules changed
    page.fill("#device_secret_min_length", "0")
    page.fill("#claim_window", "5")
    page.click("#save-rules")
    expect(page.locator("#device_secret_min_length-error")).to_contain_text("between 1 and 128")
    expect(page.locator("#claim_window-error")).to_contain_text("between 30")
    check("profiles: edit, refused")
    page.fill("#device_secret_min_length", "12")
    page.fill("#claim_window", "900")
    page.select_option("#ca", "factory")
    page.select_option("#device_ca", "factory")
    page.select_option("#claim_proof", "code")
    page.select_option("#reprovision", "with-proof")
    page.click("#save-rules")
    expect(page.locator("#saved")).to_be_visible()
    expect(page.locator("#ca")).to_have_value("factory")
    expect(page.locator("#device_secret_min_length")).to_have_value("12")
    expect(page.locator("#profile-settings")).to_contain_text("900 s")

    # a registration-token key, uploaded as a file
    page.set_input_files(
        "#jwt_public_key_file",
        files=[{"name": "line-2.pub.pem", "mimeType": "text/plain", "buffer": p256_pem().encode()}],
    )
    page.click("#save-jwt-key")
    expect(page.locator("#profile-algorithm")).to_contain_text("ES256")
    check("profiles: profile page")
    screenshot(page, "console-profiles-edit")

    # rotate: asked, then the new secret once
    page.click("#rotate-secret")
    page.wait_for_url("**/profiles/line-2/rotate")
    check("profiles: rotate, asking")
    page.click("#rotate-confirm")
    expect(page.locator("#provision-secret")).to_be_visible()
    rotated = page.locator("#provision-secret").inner_text().strip()
    assert rotated != shown
    page.click("#secret-done")
    expect(page.locator("h1")).to_have_text("line-2")

    # disable
    page.click("#disable-profile")
    expect(page.locator("#profile-state")).to_have_text("disabled")
    page.goto(f"{url}/profiles")
    expect(page.locator("#profile-list")).to_contain_text("disabled")
    check("profiles: list, one disabled")
    screenshot(page, "console-profiles-list")

    page.goto(f"{url}/profiles/nobody-gw")
    expect(page.locator("h1")).to_have_text("Not found")
    check("profiles: not found")
    check.assert_clean()
    made = profile(api, "line-2")
    assert (made["ca"], made["device_ca"], made["device_secret_min_length"]) == (
        "factory",
        "factory",
        12,
    )
    assert (made["claim_proof"], made["claim_window"], made["enabled"]) == ("code", 900, False)
