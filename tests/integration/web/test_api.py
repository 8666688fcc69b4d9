"""The admin REST API over real HTTP on loopback, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.web.conftest import Server

PROBLEM = "application/problem+json"


def problem(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    doc = response.json()
    assert (doc["status"], doc["code"]) == (status, code)
    assert doc["type"] == f"urn:provisiond:error:{code}"
    return doc  # type: ignore[no-any-return]


@pytest.fixture
def org(api: httpx.Client) -> httpx.Client:
    assert (
        api.post("/api/v1/groups", json={"path": "Kanarra/Sadler-Isberg/West"}).status_code == 201
    )
    assert api.post("/api/v1/groups", json={"path": "Kanarra/Tekton"}).status_code == 201
    assert api.post("/api/v1/models", json={"name": "UNO-2483G"}).status_code == 201
    assert (
        api.post(
            "/api/v1/users",
            json={
                "email": "tech@example.com",
                "password": "correct horse",
                "role": "installer",
                "group": "Kanarra/Sadler-Isberg",
            },
        ).status_code
        == 201
    )
    return api


def test_authentication_is_required_and_checked(server: Server) -> None:
    with httpx.Client(base_url=server.url) as anon:
        r = anon.get("/api/v1/devices")
        doc = problem(r, 401, "unauthenticated")
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert doc["instance"] == "/api/v1/devices"
    for bad in ("pvd_not-a-token", "something-else"):
        with server.client(bad) as client:
            problem(client.get("/api/v1/devices"), 401, "unauthenticated")


def test_groups_users_models(org: httpx.Client) -> None:
    r = org.post("/api/v1/groups", json={"path": "Kanarra/Tekton"})
    assert (r.status_code, r.json()["created"]) == (200, [])
    groups = org.get("/api/v1/groups").json()["items"]
    assert [g["path"] for g in groups] == [
        "Kanarra",
        "Kanarra/Sadler-Isberg",
        "Kanarra/Sadler-Isberg/West",
        "Kanarra/Tekton",
    ]
    sub = org.get("/api/v1/groups", params={"under": "Kanarra/Sadler-Isberg"}).json()["items"]
    assert [g["path"] for g in sub] == ["Kanarra/Sadler-Isberg", "Kanarra/Sadler-Isberg/West"]
    problem(org.get("/api/v1/groups", params={"under": "Nope"}), 404, "group-not-found")
    problem(org.delete("/api/v1/groups/Kanarra"), 409, "group-not-empty")
    assert org.delete("/api/v1/groups/Kanarra/Tekton").status_code == 204

    users = org.get("/api/v1/users").json()["items"]
    assert [(u["email"], u["role"], u["group"]) for u in users] == [
        ("tech@example.com", "installer", "Kanarra/Sadler-Isberg")
    ]
    assert "password" not in str(users)
    problem(
        org.post(
            "/api/v1/users",
            json={
                "email": "TECH@example.com",
                "password": "x" * 9,
                "role": "viewer",
                "group": "Kanarra",
            },
        ),
        409,
        "user-exists",
    )

    problem(org.post("/api/v1/models", json={"name": "uno-2483g"}), 409, "model-exists")
    assert [m["name"] for m in org.get("/api/v1/models").json()] == ["UNO-2483G"]


def test_validation_errors_name_the_field(org: httpx.Client) -> None:
    doc = problem(org.post("/api/v1/devices", json={"name": "no serial"}), 422, "invalid-input")
    assert {e["field"] for e in doc["errors"]} == {"serial"}  # type: ignore[attr-defined]
    doc = problem(org.post("/api/v1/devices", json={"serial": "bad/serial"}), 422, "invalid-input")
    assert doc["errors"] == [
        {
            "field": "serial",
            "message": "contains '/'; a serial may hold only letters A-Z, digits, "
            "'-', '_', '.' and ':'",
        }
    ]
    doc = problem(
        org.post("/api/v1/devices", json={"serial": "A1", "colour": "red"}), 422, "invalid-input"
    )
    assert doc["errors"][0]["field"] == "colour"  # type: ignore[index]
    doc = problem(
        org.post(
            "/api/v1/users",
            json={"email": "nope", "password": "long enough", "role": "admin", "group": "Kanarra"},
        ),
        422,
        "invalid-input",
    )
    assert doc["errors"][0]["field"] == "email"  # type: ignore[index]
    problem(org.get("/api/v1/devices", params={"tag": "novalue"}), 422, "invalid-input")
    problem(org.get("/api/v1/devices", params={"cursor": "zzz"}), 422, "invalid-cursor")


def test_create_show_delete_device(org: httpx.Client) -> None:
    r = org.post(
        "/api/v1/devices",
        json={
            "serial": " ab 12 ",
            "model": "uno-2483g",
            "owner": "tech@example.com",
            "tags": {"site": "n"},
        },
    )
    assert r.status_code == 201, r.text
    created = r.json()
    secret = created["credential"]["secret"]
    assert (created["serial"], created["state"], created["owner_kind"], created["group"]) == (
        "AB12",
        "claimed",
        "user",
        "Kanarra/Sadler-Isberg",
    )
    shown = org.get("/api/v1/devices/ab12")
    assert shown.status_code == 200
    assert secret not in shown.text
    assert hashlib.sha256(secret.encode()).hexdigest() not in shown.text
    detail = shown.json()
    assert [c["type"] for c in detail["credentials"]] == ["access-token"]
    assert [e["type"] for e in detail["events"]] == ["device.registered"]
    problem(org.post("/api/v1/devices", json={"serial": "AB12"}), 409, "device-exists")
    assert org.delete("/api/v1/devices/AB12").status_code == 204
    problem(org.get("/api/v1/devices/AB12"), 404, "device-not-found")
    problem(org.delete("/api/v1/devices/AB12"), 404, "device-not-found")


def test_list_filters_and_keyset_pages(org: httpx.Client) -> None:
    body = "serial,model,group,bucket\n" + "".join(
        f"L{n:03d},{'UNO-2483G' if n % 2 else ''},{'Kanarra/Tekton' if n % 4 == 0 else ''},"
        f"{n % 3}\n"
        for n in range(1, 41)
    )
    r = org.post("/api/v1/devices/import", content=body, headers={"Content-Type": "text/csv"})
    assert r.status_code == 201, r.text
    seen: list[str] = []
    url: str | None = "/api/v1/devices?limit=9"
    while url:
        page = org.get(url)
        seen += [d["serial"] for d in page.json()["items"]]
        link = page.headers.get("link")
        url = link[1 : link.index(">")] if link else None
        assert (link is None) == (page.json()["next_cursor"] is None)
    assert seen == [f"L{n:03d}" for n in range(1, 41)]

    def serials(**params: object) -> list[str]:
        got = org.get("/api/v1/devices", params={"limit": 500, **params})  # type: ignore[arg-type]
        assert got.status_code == 200, got.text
        return [d["serial"] for d in got.json()["items"]]

    assert serials(group="Kanarra") == [f"L{n:03d}" for n in range(4, 41, 4)]
    assert serials(state="registered", tag="bucket=0") == [
        f"L{n:03d}" for n in range(3, 41, 3) if n % 4
    ]
    assert serials(model="UNO-2483G", tag=["bucket=1"]) == [f"L{n:03d}" for n in range(1, 41, 6)]
    assert serials(serial_prefix="l01") == [f"L{n:03d}" for n in range(10, 20)]
    problem(org.get("/api/v1/devices", params={"model": "Nope"}), 404, "model-not-found")


def test_import_returns_credentials_once_and_stores_hashes(org: httpx.Client) -> None:
    body = '{"serial": "J1", "owner": "tech@example.com"}\n{"serial": "J2", "fw": 3}\n'
    r = org.post(
        "/api/v1/devices/import",
        content=body,
        headers={"Content-Type": "application/x-ndjson", "Accept": "application/json"},
    )
    assert r.status_code == 201, r.text
    summary = r.json()
    assert (summary["imported"], summary["claimed"], summary["skipped"]) == (2, 1, 0)
    assert r.headers["x-provisiond-imported"] == "2"
    creds = {c["serial"]: c for c in summary["credentials"]}
    assert set(creds) == {"J1", "J2"}
    j2 = org.get("/api/v1/devices/J2").json()
    assert j2["id"] == creds["J2"]["device_id"]
    assert j2["tags"] == {"fw": "3"}
    assert creds["J2"]["secret"] not in org.get("/api/v1/devices/J2").text

    again = org.post(
        "/api/v1/devices/import",
        content="serial\nJ1\nJ3\n",
        params={"skip_existing": "true", "group": "Kanarra/Tekton"},
        headers={"Content-Type": "text/csv"},
    )
    assert again.status_code == 201
    rows = list(csv.DictReader(io.StringIO(again.text)))
    assert [r["serial"] for r in rows] == ["J3"]
    assert again.headers["x-provisiond-skipped"] == "1"
    assert org.get("/api/v1/devices/J3").json()["group"] == "Kanarra/Tekton"


def test_failed_import_lists_problems_and_changes_nothing(org: httpx.Client) -> None:
    org.post("/api/v1/devices", json={"serial": "OLD1"})
    before = org.get("/api/v1/devices").json()["items"]
    body = b"serial,name,group\nN1,,\nOLD1,,\nN1,,\nN2,,Nowhere\nN3,\xff,\n"
    doc = problem(
        org.post("/api/v1/devices/import", content=body, headers={"Content-Type": "text/csv"}),
        422,
        "import-invalid",
    )
    assert doc["detail"] == "4 problems found; nothing was imported"
    assert [(e["line"], e.get("field")) for e in doc["errors"]] == [  # type: ignore[attr-defined]
        (3, "serial"),
        (4, "serial"),
        (5, "group"),
        (6, None),
    ]
    assert org.get("/api/v1/devices").json()["items"] == before
    problem(
        org.post("/api/v1/devices/import", content="serial\nZ1\n", params={"model": "Nope"}),
        404,
        "model-not-found",
    )


def test_import_streams_a_large_body(org: httpx.Client) -> None:
    count = 20_000

    def body() -> Iterator[bytes]:
        yield b"serial,batch\n"
        for start in range(0, count, 1000):
            yield "".join(f"BIG{n:06d},7\n" for n in range(start, start + 1000)).encode()

    r = org.post("/api/v1/devices/import", content=body(), headers={"Content-Type": "text/csv"})
    assert r.status_code == 201, r.text[:500]
    assert r.headers["x-provisiond-imported"] == str(count)
    lines = r.text.splitlines()
    assert len(lines) == count + 1
    assert len({line.split(",")[3] for line in lines[1:]}) == count
    last = org.get("/api/v1/devices", params={"serial_prefix": "BIG019999"}).json()["items"]
    assert [d["tags"] for d in last] == [{"batch": "7"}]


def test_body_over_the_cap_is_refused(server: Server, database_url: str) -> None:
    from provisiond.bootstrap import create_app
    from provisiond.settings import load_settings

    small = load_settings(database_url=database_url, limits__api_max_body_bytes=1024)
    app = create_app(small)
    transport = httpx.ASGITransport(app=app)

    async def call() -> httpx.Response:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=transport,
                base_url="http://t",
                headers={"Authorization": f"Bearer {server.token}"},
            ) as client,
        ):
            return await client.post(
                "/api/v1/devices/import",
                content=b"serial\n" + b"X" * 2000,
                headers={"Content-Type": "text/csv"},
            )

    import asyncio

    doc = problem(asyncio.run(call()), 413, "payload-too-large")
    assert "1024" in str(doc["detail"])


def test_tokens(server: Server, api: httpx.Client) -> None:
    r = api.post("/api/v1/tokens", json={"name": "line-2"})
    assert r.status_code == 201
    secret = r.json()["secret"]
    with server.client(secret) as second:
        assert second.get("/api/v1/tokens").status_code == 200
        assert secret not in second.get("/api/v1/tokens").text
    assert api.delete("/api/v1/tokens/line-2").status_code == 204
    with server.client(secret) as second:
        problem(second.get("/api/v1/devices"), 401, "unauthenticated")
    problem(api.delete("/api/v1/tokens/line-2"), 404, "token-not-found")


def test_health_readiness_metrics_and_unknown_routes(server: Server, api: httpx.Client) -> None:
    with httpx.Client(base_url=server.url) as anon:
        assert anon.get("/healthz").json() == {"status": "ok"}
        assert anon.get("/readyz").json() == {"status": "ready"}
        api.get("/api/v1/devices")
        metrics = anon.get("/metrics")
        assert metrics.status_code == 200
        assert (
            'provisiond_http_requests_total{method="GET",route="/api/v1/devices",status="200"}'
        ) in metrics.text
        problem(anon.get("/nothing/here"), 404, "not-found")
        problem(anon.put("/healthz"), 405, "method-not-allowed")


def test_the_emqx_hooks_are_not_served_unless_emqx_is_the_broker(server: Server) -> None:
    answer = httpx.post(
        f"{server.url}/hooks/emqx/authn", json={"username": "u", "password": "p"}, timeout=30
    )
    assert answer.status_code == 404
    assert answer.json()["code"] == "not-found"
    assert "broker__kind is not emqx" in answer.json()["detail"]
