"""Provisioning profiles over the admin API (real HTTP on loopback), on both backends."""

from __future__ import annotations

import re

import httpx

from tests.integration.web.test_api import problem

GENERATED = re.compile(r"[A-Za-z0-9]{20}")


def test_admin_api(api: httpx.Client) -> None:
    assert api.post("/api/v1/groups", json={"path": "Kanarra/Gateways"}).status_code == 201
    r = api.post("/api/v1/profiles", json={"name": "gw", "group": "Kanarra/Gateways",
                                           "credentials": ["mqtt-basic"]})
    assert r.status_code == 201, r.text
    made = r.json()
    assert (made["name"], made["group"], made["credentials"], made["enabled"]) == (
        "gw", "Kanarra/Gateways", ["mqtt-basic"], True)
    assert GENERATED.fullmatch(made["secret"])
    listed = api.get("/api/v1/profiles").json()
    assert [p["name"] for p in listed] == ["gw"]
    assert "secret" not in listed[0]
    assert made["secret"] not in api.get("/api/v1/profiles/gw").text

    doc = problem(api.post("/api/v1/profiles", json={"name": "", "strategy": "x",
                                                     "rate_per_minute": 0}),
                  422, "invalid-input")
    assert [e["field"] for e in doc["errors"]] == [  # type: ignore[attr-defined]
        "name", "strategy", "rate_per_minute"]
    problem(api.post("/api/v1/profiles", json={"name": "gw"}), 409, "profile-exists")
    problem(api.post("/api/v1/profiles", json={"name": "x", "unknown": 1}), 422,
            "invalid-input")
    problem(api.get("/api/v1/profiles/nope"), 404, "profile-not-found")

    assert api.post("/api/v1/profiles/gw/disable").json()["enabled"] is False
    assert api.post("/api/v1/profiles/gw/enable").json()["enabled"] is True
    rotated = api.post("/api/v1/profiles/gw/rotate-secret", json={"secret": "chosen-secret-9"})
    assert rotated.json()["secret"] == "chosen-secret-9"
    generated = api.post("/api/v1/profiles/gw/rotate-secret").json()["secret"]
    assert GENERATED.fullmatch(generated)
    problem(api.post("/api/v1/profiles/nope/rotate-secret"), 404, "profile-not-found")
