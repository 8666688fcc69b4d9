"""Provisioning profiles over the admin API (real HTTP on loopback), on both backends."""

from __future__ import annotations

import re
import time
import uuid

import httpx

from tests.integration.web.conftest import Server
from tests.integration.web.test_api import problem

GENERATED = re.compile(r"[A-Za-z0-9]{20}")


def test_admin_api(api: httpx.Client) -> None:
    assert api.post("/api/v1/groups", json={"path": "Kanarra/Gateways"}).status_code == 201
    r = api.post(
        "/api/v1/profiles",
        json={"name": "gw", "group": "Kanarra/Gateways", "credentials": ["mqtt-basic"]},
    )
    assert r.status_code == 201, r.text
    made = r.json()
    assert (made["name"], made["group"], made["credentials"], made["enabled"]) == (
        "gw",
        "Kanarra/Gateways",
        ["mqtt-basic"],
        True,
    )
    assert GENERATED.fullmatch(made["secret"])
    listed = api.get("/api/v1/profiles").json()["items"]
    assert [p["name"] for p in listed] == ["gw"]
    assert "secret" not in listed[0]
    assert made["secret"] not in api.get("/api/v1/profiles/gw").text

    doc = problem(
        api.post("/api/v1/profiles", json={"name": "", "strategy": "x", "rate_per_minute": 0}),
        422,
        "invalid-input",
    )
    assert [e["field"] for e in doc["errors"]] == [  # type: ignore[attr-defined]
        "name",
        "strategy",
        "rate_per_minute",
    ]
    problem(api.post("/api/v1/profiles", json={"name": "gw"}), 409, "profile-exists")
    problem(api.post("/api/v1/profiles", json={"name": "x", "unknown": 1}), 422, "invalid-input")
    problem(api.get("/api/v1/profiles/nope"), 404, "profile-not-found")

    assert api.post("/api/v1/profiles/gw/disable").json()["enabled"] is False
    assert api.post("/api/v1/profiles/gw/enable").json()["enabled"] is True
    rotated = api.post("/api/v1/profiles/gw/rotate-secret", json={"secret": "chosen-secret-9"})
    assert rotated.json()["secret"] == "chosen-secret-9"
    generated = api.post("/api/v1/profiles/gw/rotate-secret").json()["secret"]
    assert GENERATED.fullmatch(generated)
    problem(api.post("/api/v1/profiles/nope/rotate-secret"), 404, "profile-not-found")


def test_thingsboard_profile_request(server: Server, api: httpx.Client) -> None:
    assert api.post("/api/v1/groups", json={"path": "Sadler-Isberg/West"}).status_code == 201
    customer = next(
        g for g in api.get("/api/v1/groups").json()["items"] if g["path"] == "Sadler-Isberg"
    )

    # ThingsBoard's clients send the token in X-Authorization; the body is optional.
    with httpx.Client(
        base_url=server.url, headers={"X-Authorization": f"Bearer {server.token}"}
    ) as tb:
        empty = tb.post("/api/device/provision")
        assert empty.status_code == 200, empty.text
        made = empty.json()
        assert made["id"]["entityType"] == "PROVISION_PROFILE"
        assert made["strategy"] == {"validationStrategyType": "CHECK_NEW_DEVICE"}
        assert GENERATED.fullmatch(made["credentials"]["provisionProfileKey"])
        assert GENERATED.fullmatch(made["credentials"]["provisionProfileSecret"])
        assert made["customerId"]["id"] == made["tenantId"]["id"]  # no customer: the null id
        assert abs(made["createdTime"] / 1000 - time.time()) < 3600

        full = tb.post(
            "/api/device/provision",
            json={
                "createdTime": 0,
                "id": {"entityType": "PROVISION_PROFILE", "id": "ignored"},
                "tenantId": {"entityType": "TENANT", "id": "ignored"},
                "credentials": {
                    "provisionProfileKey": "tb-line-key-1",
                    "provisionProfileSecret": "tb-line-secret-1",
                },
                "customerId": {"entityType": "CUSTOMER", "id": customer["id"]},
                "strategy": {"validationStrategyType": "CHECK_PRE_PROVISIONED_DEVICE"},
                "groupName": "Sadler-Isberg/West",
            },
        ).json()
        assert full["credentials"] == {
            "provisionProfileKey": "tb-line-key-1",
            "provisionProfileSecret": "tb-line-secret-1",
        }
        assert (full["customerId"]["id"], full["groupName"]) == (
            customer["id"],
            "Sadler-Isberg/West",
        )
        shown = api.get(f"/api/v1/profiles/{full['name']}").json()
        assert (shown["key"], shown["strategy"], shown["group"]) == (
            "tb-line-key-1",
            "pre-provisioned",
            "Sadler-Isberg/West",
        )

        by_customer = tb.post(
            "/api/device/provision",
            json={"customerId": {"entityType": "CUSTOMER", "id": customer["id"]}},
        ).json()
        assert by_customer["groupName"] == "Sadler-Isberg"

        doc = problem(
            tb.post(
                "/api/device/provision",
                json={
                    "strategy": {"validationStrategyType": "SOMETIMES"},
                    "customerId": {"entityType": "CUSTOMER", "id": "not-a-uuid"},
                },
            ),
            422,
            "invalid-input",
        )
        assert [e["field"] for e in doc["errors"]] == [  # type: ignore[attr-defined]
            "strategy.validationStrategyType",
            "customerId.id",
        ]
        problem(
            tb.post(
                "/api/device/provision",
                json={"customerId": {"entityType": "CUSTOMER", "id": str(uuid.uuid4())}},
            ),
            404,
            "group-not-found",
        )
        outside = problem(
            tb.post(
                "/api/device/provision",
                json={
                    "customerId": {"entityType": "CUSTOMER", "id": customer["id"]},
                    "groupName": "Elsewhere",
                },
            ),
            422,
            "invalid-input",
        )
        assert outside["errors"][0]["field"] == "groupName"  # type: ignore[index]
        problem(
            tb.post(
                "/api/device/provision",
                json={"credentials": {"provisionProfileKey": "tb-line-key-1"}},
            ),
            409,
            "profile-exists",
        )
    with httpx.Client(base_url=server.url) as anonymous:
        problem(anonymous.post("/api/device/provision"), 401, "unauthenticated")
        problem(
            anonymous.post(
                "/api/device/provision", headers={"X-Authorization": "Bearer pvd_wrong"}
            ),
            401,
            "unauthenticated",
        )
    assert len(api.get("/api/v1/profiles").json()["items"]) == 3
