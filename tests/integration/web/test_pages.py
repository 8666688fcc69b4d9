"""The claiming pages over real HTTP on loopback, on SQLite and PostgreSQL: sign-in, CSRF,
roles, the simple and proven claim flows, the 404 rule, races, release."""

from __future__ import annotations

import csv
import io
import json
import queue
import re
import threading
from collections.abc import Iterator

import httpx
import pytest

from provisiond.settings import Settings, load_settings
from tests.integration.web.conftest import CLIENT_TLS, Server

PASSWORD = "correct horse battery"
USERS = {
    "tech@kanarra.example": ("installer", "Kanarra/Sadler-Isberg"),
    "tech2@kanarra.example": ("installer", "Kanarra/Sadler-Isberg"),
    "boss@kanarra.example": ("admin", "Kanarra"),
    "viewer@kanarra.example": ("viewer", "Kanarra/Sadler-Isberg"),
    "rival@tekton.example": ("installer", "Tekton"),
}


@pytest.fixture
def server_settings(database_url: str) -> Settings:
    return load_settings(
        database_url=database_url,
        log_level="warning",
        claims__rate_per_minute=1000,
        sessions__login_rate_per_minute=1000,
    )


@pytest.fixture
def fleet(api: httpx.Client) -> dict[str, str]:
    """An organisation, its users, profiles for every proof, and devices under them; returns
    each device's access token (and claim code, as CODE:<serial>)."""
    for path in (
        "Kanarra/Sadler-Isberg/West/Anaheim",
        "Kanarra/Sadler-Isberg/West/Irvine",
        "Kanarra/Sadler-Isberg/East",
        "Tekton",
    ):
        assert api.post("/api/v1/groups", json={"path": path}).status_code == 201
    assert api.post("/api/v1/models", json={"name": "UNO-2483G"}).status_code == 201
    for email, (role, group) in USERS.items():
        assert (
            api.post(
                "/api/v1/users",
                json={"email": email, "password": PASSWORD, "role": role, "group": group},
            ).status_code
            == 201
        )
    for proof, policy in (("button", "keep"), ("code", "keep"), ("device-secret", "reset")):
        r = api.post(
            "/api/v1/profiles",
            json={
                "name": f"p-{proof}",
                "claim_proof": proof,
                "claim_window": 120,
                "release_policy": policy,
            },
        )
        assert r.status_code == 201, r.text
    secrets: dict[str, str] = {}
    for profile, rows in (
        (None, "serial,fw\nPLAIN-1,1\nPLAIN-2,1\nPLAIN-3,1\n"),
        (None, "serial,profile\nBTN-1,p-button\nBTN-2,p-button\n"),
        ("p-code", "serial\nCODE-1\n"),
        ("p-device-secret", "serial,site\nSEC-1,lot\n"),
    ):
        params = {"profile": profile} if profile else {}
        r = api.post(
            "/api/v1/devices/import",
            content=rows,
            params=params,
            headers={"Content-Type": "text/csv"},
        )
        assert r.status_code == 201, r.text
        for row in csv.DictReader(io.StringIO(r.text)):
            key = (
                row["serial"]
                if row["credential_type"] == "access-token"
                else f"CODE:{row['serial']}"
            )
            secrets[key] = row["secret"]
    r = api.post("/api/v1/devices", json={"serial": "TEK-1", "group": "Tekton"})
    assert r.status_code == 201
    return secrets


class Browser:
    """A person's browser: cookies, and the CSRF token of the last page."""

    def __init__(self, server: Server) -> None:
        self.http = httpx.Client(
            base_url=server.url, follow_redirects=False, timeout=30, verify=CLIENT_TLS
        )
        self.csrf = ""

    def get(self, path: str) -> httpx.Response:
        r = self.http.get(path)
        found = re.search(r'name="csrf" value="([^"]+)"', r.text)
        if found:
            self.csrf = found.group(1)
        return r

    def post(
        self, path: str, data: dict[str, str] | None = None, csrf: bool = True
    ) -> httpx.Response:
        form = dict(data or {})
        if csrf:
            form["csrf"] = self.csrf
        return self.http.post(path, data=form)

    def sign_in(self, email: str, password: str = PASSWORD) -> httpx.Response:
        page = self.http.get("/login")
        token = re.search(r'name="login_csrf" value="([^"]+)"', page.text)
        assert token is not None
        r = self.http.post(
            "/login",
            data={
                "email": email,
                "password": password,
                "login_csrf": token.group(1),
                "next": "/devices",
            },
        )
        if r.status_code == 303:
            self.get("/devices")
        return r


@pytest.fixture
def browser(server: Server) -> Iterator[Browser]:
    b = Browser(server)
    yield b
    b.http.close()


def signed_in(server: Server, email: str) -> Browser:
    b = Browser(server)
    assert b.sign_in(email).status_code == 303
    return b


def finish_simple(
    person: Browser, serial: str, target: str = "me", site: str = "East", name: str = ""
) -> httpx.Response:
    """The simple flow (no proof): scan, then name the device and choose its site."""
    r = person.post("/provision", {"serial": serial, "target": target})
    assert r.status_code == 303, r.text[:300]
    claim_path = r.headers["location"]
    assert claim_path.startswith("/claims/")
    page = person.get(claim_path).text
    leaf = re.search(rf'<option value="([0-9a-f-]{{36}})"[^>]*>{re.escape(site)}<', page)
    assert leaf is not None
    return person.post(
        f"{claim_path}/finish",
        {"name": name or serial.strip().upper(), "group": leaf.group(1), "model": "UNO-2483G"},
    )


def test_sign_in_sets_a_safe_cookie_and_sign_out_needs_csrf(
    server: Server, fleet: dict[str, str], browser: Browser
) -> None:
    assert browser.get("/devices").headers["location"] == "/login?next=/devices"
    r = browser.sign_in("tech@kanarra.example", "wrong password")
    assert r.status_code == 401
    assert "wrong e-mail or password" in r.text
    r = browser.sign_in("nobody@kanarra.example")
    assert r.status_code == 401
    assert "wrong e-mail or password" in r.text
    r = browser.sign_in("tech@kanarra.example")
    assert (r.status_code, r.headers["location"]) == (303, "/devices")
    cookie = r.headers["set-cookie"]
    assert "provisiond_session=" in cookie
    assert "HttpOnly" in cookie
    assert "samesite=lax" in cookie.lower()
    page = browser.get("/devices")
    assert page.status_code == 200
    assert "PLAIN-1" not in page.text
    assert "Content-Security-Policy" in page.headers
    assert browser.post("/logout", csrf=False).status_code == 403
    assert browser.post("/logout", {"csrf": "forged"}, csrf=False).status_code == 403
    assert browser.post("/logout").status_code == 303
    assert browser.get("/devices").status_code == 303  # the session is gone


def test_a_form_without_the_login_token_is_refused(server: Server, fleet: dict[str, str]) -> None:
    with httpx.Client(base_url=server.url) as http:
        r = http.post("/login", data={"email": "tech@kanarra.example", "password": PASSWORD})
        assert r.status_code == 403
        assert "provisiond_session" not in r.headers.get("set-cookie", "")


@pytest.mark.slow
def test_wrong_passwords_lock_the_account(
    server: Server, fleet: dict[str, str], browser: Browser, api: httpx.Client
) -> None:
    for _ in range(5):
        assert browser.sign_in("tech@kanarra.example", "nope nope nope").status_code == 401
    # locked: the right password is refused too, with the same message
    r = browser.sign_in("tech@kanarra.example")
    assert r.status_code == 401
    assert "wrong e-mail or password" in r.text
    assert signed_in(server, "tech2@kanarra.example").get("/devices").status_code == 200


def test_simple_flow_names_and_places_the_device_for_me_or_my_group(
    server: Server, fleet: dict[str, str], api: httpx.Client
) -> None:
    tech = signed_in(server, "tech@kanarra.example")
    form = tech.get("/provision")
    assert form.status_code == 200
    assert 'name="serial"' in form.text
    r = finish_simple(tech, " plain-1 ", name="Pump 1")
    assert (r.status_code, r.headers["location"]) == (303, "/devices/PLAIN-1")
    page = tech.get("/devices/PLAIN-1")
    assert page.status_code == 200
    assert "tech@kanarra.example" in page.text
    assert "device.claimed" in page.text
    device = api.get("/api/v1/devices/PLAIN-1").json()
    assert (device["state"], device["owner"], device["group"], device["name"]) == (
        "claimed",
        "tech@kanarra.example",
        "Kanarra/Sadler-Isberg/East",
        "Pump 1",
    )
    assert finish_simple(tech, "PLAIN-2", "group").status_code == 303
    device = api.get("/api/v1/devices/PLAIN-2").json()
    assert (device["owner_kind"], device["owner"], device["group"]) == (
        "group",
        "Kanarra/Sadler-Isberg",
        "Kanarra/Sadler-Isberg/East",
    )
    listing = tech.get("/devices")
    assert "PLAIN-1" in listing.text
    assert "PLAIN-2" in listing.text
    # bad input: a clear error naming the field, nothing changed
    r = tech.post("/provision", {"serial": "", "target": "me"})
    assert r.status_code == 422
    assert "serial" in r.text
    r = tech.post("/provision", {"serial": "PLAIN-3", "target": "everyone"})
    assert r.status_code == 422
    assert "my account" in r.text
    assert api.get("/api/v1/devices/PLAIN-3").json()["state"] == "registered"


def test_missing_and_hidden_devices_get_the_same_404(server: Server, fleet: dict[str, str]) -> None:
    tech = signed_in(server, "tech@kanarra.example")
    missing = tech.get("/devices/NO-SUCH-1")
    hidden = tech.get("/devices/TEK-1")  # exists, in another organisation
    unowned = tech.get("/devices/PLAIN-3")  # exists, nobody's yet
    assert missing.status_code == hidden.status_code == unowned.status_code == 404
    assert missing.content == hidden.content == unowned.content
    posted = [
        tech.post("/provision", {"serial": s, "target": "me"}) for s in ("NO-SUCH-1", "TEK-1")
    ]
    assert [p.status_code for p in posted] == [404, 404]
    assert posted[0].content == posted[1].content
    assert tech.get("/d/TEK-1").content == tech.get("/d/NO-SUCH-1").content


def test_viewers_see_but_may_not_claim(server: Server, fleet: dict[str, str]) -> None:
    tech = signed_in(server, "tech@kanarra.example")
    assert finish_simple(tech, "PLAIN-1", "group").status_code == 303
    viewer = signed_in(server, "viewer@kanarra.example")
    listing = viewer.get("/devices")
    assert "PLAIN-1" in listing.text
    assert 'href="/provision"' not in listing.text
    assert 'href="/provision"' in tech.get("/devices").text
    assert viewer.get("/provision").status_code == 403
    # the server checks again whatever the page showed
    assert viewer.post("/provision", {"serial": "PLAIN-2", "target": "me"}).status_code == 403
    assert viewer.get("/overview").status_code == 403
    assert viewer.get("/d/PLAIN-2").status_code == 404  # may not claim: nothing to see


def read_events(
    server: Server,
    browser: Browser,
    claim_path: str,
    into: queue.Queue[tuple[str, dict[str, object]]],
    ready: threading.Event,
) -> None:
    cookies = dict(browser.http.cookies)
    with (
        httpx.Client(base_url=server.url, cookies=cookies, timeout=30) as http,
        http.stream("GET", f"{claim_path}/events") as stream,
    ):
        assert stream.headers["content-type"].startswith("text/event-stream")
        event = ""
        for line in stream.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                into.put((event, json.loads(line[6:])))
                if event == "state":
                    ready.set()
                if event in ("completed", "failed", "expired", "cancelled"):
                    return


def test_button_flow_live_page_and_finish_validation(
    server: Server, fleet: dict[str, str], api: httpx.Client
) -> None:
    tech = signed_in(server, "tech@kanarra.example")
    r = tech.post("/provision", {"serial": "btn-1", "target": "me"})
    assert r.status_code == 303
    assert r.headers["location"].startswith("/claims/")
    claim_path = r.headers["location"]
    page = tech.get(claim_path)
    assert page.status_code == 200
    assert "claim button" in page.text
    assert tech.get(claim_path).text.count("data-seconds-left") == 1  # reload is safe
    events: queue.Queue[tuple[str, dict[str, object]]] = queue.Queue()
    ready = threading.Event()
    reader = threading.Thread(
        target=read_events, args=(server, tech, claim_path, events, ready), daemon=True
    )
    reader.start()
    assert ready.wait(10)
    state = events.get(timeout=5)
    assert state[0] == "state"
    assert state[1]["status"] == "open"
    assert 100 < int(str(state[1]["seconds_left"])) <= 120

    # finishing before the proof is refused, with every problem named
    r = tech.post(f"{claim_path}/finish", {"name": "", "group": "nope", "model": "x"})
    assert r.status_code == 422
    for text in (
        "prove you hold the device",
        "give the device a name",
        "choose a site",
        "choose a model",
    ):
        assert text in r.text

    with httpx.Client(base_url=server.url) as device:
        pressed = device.post(f"/api/v1/{fleet['BTN-1']}/claim/button")
        assert pressed.status_code == 200
        assert pressed.json()["proven"] is True
        assert device.post(f"/api/v1/{fleet['BTN-2']}/claim/button").json()["proven"] is False
        assert device.post("/api/v1/not-a-token/claim/button").status_code == 401
    assert events.get(timeout=5)[0] == "proven"

    # a non-leaf group is not a choice
    groups = re.findall(
        r'<option value="([0-9a-f-]{36})"[^>]*>([^<]+)</option>', tech.get(claim_path).text
    )
    assert sorted(name for _, name in groups) == ["Anaheim", "East", "Irvine"]
    west = api.get("/api/v1/groups", params={"under": "Kanarra/Sadler-Isberg/West"}).json()["items"]
    west_id = next(g["id"] for g in west if g["path"] == "Kanarra/Sadler-Isberg/West")
    r = tech.post(f"{claim_path}/finish", {"name": "KP002", "group": west_id, "model": "UNO-2483G"})
    assert r.status_code == 422
    assert "choose a site" in r.text
    anaheim = next(i for i, name in groups if name == "Anaheim")
    r = tech.post(f"{claim_path}/finish", {"name": "KP002", "group": anaheim, "model": "UNO-2483G"})
    assert (r.status_code, r.headers["location"]) == (303, "/devices/BTN-1")
    assert events.get(timeout=5)[0] == "completed"
    reader.join(5)
    device = api.get("/api/v1/devices/BTN-1").json()
    assert (device["name"], device["group"], device["model"], device["owner"]) == (
        "KP002",
        "Kanarra/Sadler-Isberg/West/Anaheim",
        "UNO-2483G",
        "tech@kanarra.example",
    )
    timeline = tech.get("/devices/BTN-1").text
    for event in ("claim.started", "claim.proven", "device.claimed"):
        assert event in timeline
    # the claim is over: finishing again changes nothing
    assert (
        tech.post(
            f"{claim_path}/finish", {"name": "X", "group": anaheim, "model": "UNO-2483G"}
        ).status_code
        == 409
    )


def test_claim_pages_belong_to_their_claimer(server: Server, fleet: dict[str, str]) -> None:
    tech = signed_in(server, "tech@kanarra.example")
    claim_path = tech.post("/provision", {"serial": "BTN-1", "target": "me"}).headers["location"]
    other = signed_in(server, "tech2@kanarra.example")
    assert other.get(claim_path).status_code == 404
    assert other.get(f"{claim_path}/events").status_code == 404
    # a second claimer of the same device waits for the window
    r = other.post("/provision", {"serial": "BTN-1", "target": "me"})
    assert r.status_code == 409
    assert "someone else is claiming" in r.text
    # the claimer scanning again resumes the same claim
    assert (
        tech.post("/provision", {"serial": "BTN-1", "target": "me"}).headers["location"]
        == claim_path
    )


def test_code_flow_counts_wrong_codes(server: Server, fleet: dict[str, str]) -> None:
    code = fleet["CODE:CODE-1"]
    assert re.fullmatch(r"[2-9A-HJKMNP-Z]{4}-[2-9A-HJKMNP-Z]{4}-[2-9A-HJKMNP-Z]{4}", code)
    tech = signed_in(server, "tech@kanarra.example")
    claim_path = tech.post("/provision", {"serial": "CODE-1", "target": "group"}).headers[
        "location"
    ]
    assert "Claim code from the label" in tech.get(claim_path).text
    r = tech.post(f"{claim_path}/proof", {"code": "AAAA-AAAA-AAAA"})
    assert r.status_code == 422
    assert "tries left" in r.text or "mistyped" in r.text
    r = tech.post(f"{claim_path}/proof", {"code": code.lower().replace("-", " ")})
    assert r.status_code == 303
    assert "Device confirmed" in tech.get(claim_path).text


def test_too_many_wrong_codes_fail_the_claim(server: Server, fleet: dict[str, str]) -> None:
    tech = signed_in(server, "tech@kanarra.example")
    claim_path = tech.post("/provision", {"serial": "CODE-1", "target": "group"}).headers[
        "location"
    ]
    right = fleet["CODE:CODE-1"].replace("-", "")
    # wrong codes with a valid check character: take the right one and change two places
    wrong = []
    alphabet = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
    for n in range(5):
        body = list(right[:-1])
        body[n] = alphabet[(alphabet.index(body[n]) + 1) % 31]
        body[n + 1] = alphabet[(alphabet.index(body[n + 1]) - 2) % 31]
        total = sum((i + 1) * alphabet.index(c) for i, c in enumerate(body))
        wrong.append("".join(body) + alphabet[total % 31])
    statuses = [tech.post(f"{claim_path}/proof", {"code": w}).status_code for w in wrong]
    assert statuses == [422, 422, 422, 422, 409]
    r = tech.post(f"{claim_path}/proof", {"code": fleet["CODE:CODE-1"]})
    assert r.status_code == 409  # the claim failed: even the right code is too late
    assert "has failed" in tech.get(claim_path).text


def test_device_secret_flow_and_release_with_reset(
    server: Server, fleet: dict[str, str], api: httpx.Client
) -> None:
    with httpx.Client(base_url=server.url) as device:
        r = device.post(
            f"/api/v1/{fleet['SEC-1']}/claim", json={"secretKey": "sunflower", "durationMs": 60_000}
        )
        assert r.status_code == 200, r.text
        bad = device.post(
            f"/api/v1/{fleet['SEC-1']}/claim", json={"secretKey": "x", "durationMs": 5}
        )
        assert bad.status_code == 422
        assert "durationMs" in bad.text
    tech = signed_in(server, "tech@kanarra.example")
    claim_path = tech.post("/provision", {"serial": "SEC-1", "target": "me"}).headers["location"]
    assert tech.post(f"{claim_path}/proof", {"code": "tulip"}).status_code == 422
    assert tech.post(f"{claim_path}/proof", {"code": "sunflower"}).status_code == 303
    east = re.search(r'<option value="([0-9a-f-]{36})"[^>]*>East<', tech.get(claim_path).text)
    assert east is not None
    r = tech.post(
        f"{claim_path}/finish", {"name": "Gen 7", "group": east.group(1), "model": "UNO-2483G"}
    )
    assert r.status_code == 303
    assert api.get("/api/v1/devices/SEC-1").json()["tags"] == {"site": "lot"}

    # release (profile policy: reset), confirmed; the owner loses access at once
    tech.get("/devices/SEC-1/release")
    assert tech.post("/devices/SEC-1/release", {"confirm": "yes"}).status_code == 303
    assert tech.get("/devices/SEC-1").status_code == 404
    device_now = api.get("/api/v1/devices/SEC-1").json()
    assert (device_now["state"], device_now["tags"], device_now["name"]) == (
        "released",
        {},
        "SEC-1",
    )
    # claimable again, by someone else, and the new owner's timeline starts after the release
    rival = signed_in(server, "rival@tekton.example")
    with httpx.Client(base_url=server.url) as device:
        assert (
            device.post(
                f"/api/v1/{fleet['SEC-1']}/claim", json={"secretKey": "daisy", "durationMs": 60_000}
            ).status_code
            == 200
        )
    claim_path = rival.post("/provision", {"serial": "SEC-1", "target": "group"}).headers[
        "location"
    ]
    assert rival.post(f"{claim_path}/proof", {"code": "daisy"}).status_code == 303
    tekton = re.search(r'<option value="([0-9a-f-]{36})"', rival.get(claim_path).text)
    assert tekton is not None
    assert (
        rival.post(
            f"{claim_path}/finish", {"name": "Mine", "group": tekton.group(1), "model": "UNO-2483G"}
        ).status_code
        == 303
    )
    timeline = rival.get("/devices/SEC-1").text
    # the release belongs to the previous owner's customer: not theirs to read
    assert "device.released" not in timeline
    assert "tech@" not in timeline
    assert "Gen 7" not in timeline
    assert "claim.window-opened" in timeline
    assert timeline.count("device.claimed") == 1


def test_only_the_owner_or_an_admin_releases(
    server: Server, fleet: dict[str, str], api: httpx.Client
) -> None:
    tech = signed_in(server, "tech@kanarra.example")
    assert finish_simple(tech, "PLAIN-1").status_code == 303
    other = signed_in(server, "tech2@kanarra.example")
    assert "Release this device" not in other.get("/devices/PLAIN-1").text
    assert other.post("/devices/PLAIN-1/release", {"confirm": "yes"}).status_code == 403
    boss = signed_in(server, "boss@kanarra.example")
    assert "Release this device" in boss.get("/devices/PLAIN-1").text
    assert boss.post("/devices/PLAIN-1/release", {"confirm": "yes"}).status_code == 303
    device = api.get("/api/v1/devices/PLAIN-1").json()
    assert (device["state"], device["tags"]) == ("released", {"fw": "1"})  # policy keep


def test_label_url_leads_to_the_device_or_the_claim(server: Server, fleet: dict[str, str]) -> None:
    tech = signed_in(server, "tech@kanarra.example")
    page = tech.get("/d/PLAIN-1")
    assert page.status_code == 200
    assert 'value="PLAIN-1"' in page.text
    assert finish_simple(tech, "PLAIN-1").status_code == 303
    assert tech.get("/d/PLAIN-1").headers["location"] == "/devices/PLAIN-1"
    # a scanned label URL is understood by the claim form too
    r = tech.post("/provision", {"serial": f"{server.url}/d/PLAIN-2", "target": "me"})
    assert r.headers["location"].startswith("/claims/")
    assert "PLAIN-2" in tech.get(r.headers["location"]).text
    # other codes are named, not mistaken for serials
    r = tech.post("/provision", {"serial": "MT:-8VJ0OMV172PX813210", "target": "me"})
    assert r.status_code == 422
    assert "Matter pairing code" in r.text
    r = tech.post(
        "/provision", {"serial": "LW:D0:42FFFFFFFFFFFFFG:4242FFFFFFFFFFFF:42FFFF42", "target": "me"}
    )
    assert r.status_code == 422
    assert "JoinEUI holds" in r.text
    anon = Browser(server)
    assert anon.get("/d/PLAIN-3").headers["location"] == "/login?next=/d/PLAIN-3"


def test_two_people_claiming_one_device_at_once(server: Server, fleet: dict[str, str]) -> None:
    people = [signed_in(server, e) for e in ("tech@kanarra.example", "tech2@kanarra.example")]
    for serial in ("PLAIN-3", "BTN-2"):
        barrier = threading.Barrier(len(people))
        results: list[httpx.Response] = []
        lock = threading.Lock()

        def claim(
            person: Browser,
            serial: str = serial,
            barrier: threading.Barrier = barrier,
            results: list[httpx.Response] = results,
            lock: threading.Lock = lock,
        ) -> None:
            barrier.wait()
            r = person.post("/provision", {"serial": serial, "target": "me"})
            with lock:
                results.append(r)

        threads = [threading.Thread(target=claim, args=(p,)) for p in people]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        codes = sorted(r.status_code for r in results)
        assert codes == [303, 409], [r.text[:300] for r in results]
        winner = next(r for r in results if r.status_code == 303)
        assert winner.headers["location"].startswith("/claims/")


def test_admin_overview_shows_the_funnel(server: Server, fleet: dict[str, str]) -> None:
    tech = signed_in(server, "tech@kanarra.example")
    assert finish_simple(tech, "PLAIN-1").status_code == 303
    assert tech.get("/overview").status_code == 403
    boss = signed_in(server, "boss@kanarra.example")
    page = boss.get("/overview")
    assert page.status_code == 200
    assert "<polyline" in page.text
    assert "device.claimed" in page.text
    claimed = re.search(r"Claimed</div><div[^>]*>(\d+)<", page.text)
    assert claimed is not None
    assert claimed.group(1) == "1"


def test_manifest_and_static_files(server: Server) -> None:
    with httpx.Client(base_url=server.url) as http:
        manifest = http.get("/manifest.webmanifest").json()
        assert manifest["display"] == "standalone"
        assert manifest["icons"]
        assert http.get(manifest["icons"][0]["src"]).status_code == 200
        for path in ("/static/claim.js", "/static/scan.js", "/static/provisiond.css"):
            assert http.get(path).status_code == 200
