"""Every listing of the API pages alike: `limit` and `cursor` in, `items` and `next_cursor`
out, a `Link: rel="next"` header while there is more (real HTTP, both backends)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.web.conftest import Server
from tests.integration.web.test_api import problem

RECEIVER = "https://93.184.215.14/hook"
N = 7


def walk(client: httpx.Client, path: str, limit: int, **params: str) -> list[dict[str, Any]]:
    """Every item of a listing, ``limit`` at a time, following next_cursor and Link."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {**params, "limit": str(limit), **({"cursor": cursor} if cursor else {})}
        r = client.get(path, params=query)
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) <= limit
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            assert "link" not in r.headers
            return items
        assert page["items"], "a page before the last one is never empty"
        assert r.headers["link"].endswith('>; rel="next"')
        assert f"cursor={cursor}" in r.headers["link"]


def populate(api: httpx.Client) -> None:
    for i in range(N):
        group = f"Org/Site-{i}"
        assert api.post("/api/v1/groups", json={"path": group}).status_code == 201
        assert (
            api.post(
                "/api/v1/users",
                json={
                    "email": f"u{i}@org.example",
                    "password": "long enough password",
                    "role": "viewer",
                    "group": group,
                },
            ).status_code
            == 201
        )
        assert (
            api.post("/api/v1/profiles", json={"name": f"line-{i}", "group": group}).status_code
            == 201
        )
        assert (
            api.post(
                "/api/v1/tokens", json={"name": f"t-{i}", "role": "viewer", "group": group}
            ).status_code
            == 201
        )
        assert (
            api.post("/api/v1/devices", json={"serial": f"DEV-{i}", "group": group}).status_code
            == 201
        )
        # after the device, so nothing is ever delivered to it
        assert (
            api.post("/api/v1/webhooks", json={"group": group, "url": RECEIVER}).status_code == 201
        )


LISTINGS = {  # path: the key a listing is ordered by
    "/api/v1/groups": "path",
    "/api/v1/users": "email",
    "/api/v1/profiles": "name",
    "/api/v1/webhooks": "id",
    "/api/v1/tokens": "name",
    "/api/v1/devices": "serial",
}


@pytest.mark.slow
@pytest.mark.parametrize("limit", [1, 2, 3])
def test_every_listing_pages_through_everything_once_in_order(
    api: httpx.Client, limit: int
) -> None:
    populate(api)
    for path, key in LISTINGS.items():
        whole = api.get(path, params={"limit": "500"}).json()
        assert whole["next_cursor"] is None
        paged = walk(api, path, limit)
        assert paged == whole["items"], path
        keys = [item[key] for item in paged]
        assert keys == sorted(keys), path
        assert len(keys) >= N, path


def test_bad_cursors_and_limits_are_refused_naming_the_field(api: httpx.Client) -> None:
    for path in LISTINGS:
        doc = problem(api.get(path, params={"cursor": "not-a-cursor"}), 422, "invalid-cursor")
        assert doc["errors"][0]["field"] == "cursor"  # type: ignore[index]
        for limit in ("0", "501"):
            doc = problem(api.get(path, params={"limit": limit}), 422, "invalid-input")
            assert doc["errors"][0]["field"] == "limit"  # type: ignore[index]


@pytest.mark.slow
def test_a_scoped_token_pages_through_its_subtree_only(server: Server, api: httpx.Client) -> None:
    populate(api)
    for i in range(3):
        assert api.post("/api/v1/groups", json={"path": f"Org/Site-1/Room-{i}"}).status_code == 201
    made = api.post(
        "/api/v1/tokens", json={"name": "site-1", "role": "viewer", "group": "Org/Site-1"}
    ).json()
    with server.client(made["secret"]) as site:
        assert [g["path"] for g in walk(site, "/api/v1/groups", 1)] == [
            "Org/Site-1",
            "Org/Site-1/Room-0",
            "Org/Site-1/Room-1",
            "Org/Site-1/Room-2",
        ]
        assert [u["email"] for u in walk(site, "/api/v1/users", 1)] == ["u1@org.example"]
        assert [p["name"] for p in walk(site, "/api/v1/profiles", 1)] == ["line-1"]
        assert [w["group"] for w in walk(site, "/api/v1/webhooks", 1)] == ["Org/Site-1"]
        assert [t["name"] for t in walk(site, "/api/v1/tokens", 1)] == ["site-1", "t-1"]
        assert [d["serial"] for d in walk(site, "/api/v1/devices", 1)] == ["DEV-1"]
