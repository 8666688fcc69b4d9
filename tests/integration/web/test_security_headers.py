"""Every page, error pages included, carries the security headers; no page runs inline script;
cookies are HttpOnly, SameSite and (in production, or when asked) Secure."""

from __future__ import annotations

import re

import httpx
import pytest

from provisiond.settings import Settings, load_settings
from tests.integration.web.conftest import Server
from tests.integration.web.test_pages import PASSWORD, Browser, finish_simple, fleet, signed_in

__all__ = ["fleet"]  # a fixture these tests use


@pytest.fixture
def cookie_secure() -> bool | None:
    return None  # development's default (plain HTTP on loopback); a test may parametrize it


@pytest.fixture
def server_settings(sqlite_url: str, cookie_secure: bool | None) -> Settings:
    return load_settings(
        database_url=sqlite_url, log_level="warning", sessions__cookie_secure=cookie_secure
    )


def csp(header: str) -> dict[str, list[str]]:
    directives = [d.split() for d in header.split(";") if d.strip()]
    return {d[0]: d[1:] for d in directives}


def assert_safe_page(response_headers: dict[str, str], body: str, path: str) -> None:
    policy = csp(response_headers["content-security-policy"])
    assert policy["frame-ancestors"] == ["'none'"], path
    assert policy["object-src"] == ["'none'"], path
    assert policy["base-uri"] == ["'none'"], path
    script = policy.get("script-src", policy["default-src"])
    assert script == ["'self'"], path  # no 'unsafe-inline', no 'unsafe-eval', no hosts
    assert response_headers["x-frame-options"] == "DENY", path
    assert response_headers["x-content-type-options"] == "nosniff", path
    assert response_headers["referrer-policy"] in ("same-origin", "no-referrer"), path
    assert response_headers["cache-control"] == "no-store", path
    # no inline script a policy would have to allow: every <script> has a src and is empty,
    # and no element has an event-handler attribute or a javascript: URL
    for tag, inner in re.findall(r"<script([^>]*)>(.*?)</script>", body, re.S | re.I):
        assert "src=" in tag, (path, tag)
        assert not inner.strip(), (path, tag)
    assert not re.search(r"\son[a-z]+\s*=", body, re.I), path
    assert "javascript:" not in body.lower(), path


def test_every_page_is_locked_down(server: Server, fleet: dict[str, str]) -> None:
    anon = Browser(server)
    pages = {path: anon.http.get(path) for path in ("/login",)}
    tech = signed_in(server, "tech@kanarra.example")
    claim_path = tech.post("/provision", {"serial": "CODE-1", "target": "me"}).headers["location"]
    assert finish_simple(tech, "PLAIN-1").status_code == 303
    for path in (
        "/devices",
        "/devices/PLAIN-1",
        "/devices/PLAIN-1/release",
        "/devices/NOPE-1",
        "/provision",
        "/d/PLAIN-2",
        claim_path,
        "/claims/not-a-claim",
    ):
        pages[path] = tech.http.get(path)
    admin = signed_in(server, "boss@kanarra.example")
    pages["/overview"] = admin.http.get("/overview")
    assert {p: r.status_code for p, r in pages.items()} == {
        "/login": 200,
        "/devices": 200,
        "/devices/PLAIN-1": 200,
        "/devices/PLAIN-1/release": 200,
        "/devices/NOPE-1": 404,
        "/provision": 200,
        "/d/PLAIN-2": 200,
        claim_path: 200,
        "/claims/not-a-claim": 404,
        "/overview": 200,
    }
    for path, r in pages.items():
        assert_safe_page(dict(r.headers), r.text, path)


@pytest.mark.parametrize("cookie_secure", [True])  # as in production, behind TLS
def test_cookies_are_http_only_same_site_and_secure(server: Server, fleet: dict[str, str]) -> None:
    b = Browser(server)
    form = b.http.get("/login")
    login = form.cookies["provisiond_login"]
    # a Secure cookie is not sent back over plain HTTP: send it by hand
    r = httpx.post(
        server.url + "/login",
        headers={"Cookie": f"provisiond_login={login}"},
        data={
            "email": "tech@kanarra.example",
            "password": PASSWORD,
            "login_csrf": login,
            "next": "/devices",
        },
    )
    assert r.status_code == 303
    cookies = form.headers.get_list("set-cookie") + r.headers.get_list("set-cookie")
    names = {c.split("=", 1)[0] for c in cookies}
    assert {"provisiond_login", "provisiond_session"} <= names
    for cookie in cookies:
        flags = {f.strip().lower() for f in cookie.split(";")[1:]}
        assert {"httponly", "secure", "samesite=lax", "path=/"} <= flags, cookie


def test_api_answers_are_not_sniffed_framed_or_referred(server: Server) -> None:
    answers = [
        httpx.get(server.url + "/api/v1/devices"),  # 401, a problem document
        httpx.get(server.url + "/nowhere"),  # 404 from the router
        httpx.get(server.url + "/healthz"),
        httpx.post(server.url + "/api/v1/provision", json={}),  # the hot path
        httpx.post(server.url + "/api/v1/provision", content=b"{"),
    ]
    assert [a.status_code for a in answers] == [401, 404, 200, 200, 200]
    for a in answers:
        assert a.headers["x-content-type-options"] == "nosniff", a.url
        assert csp(a.headers["content-security-policy"]) == {
            "default-src": ["'none'"],
            "frame-ancestors": ["'none'"],
        }, a.url
        assert a.headers["referrer-policy"] == "no-referrer", a.url
