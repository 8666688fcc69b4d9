"""The API refuses a webhook to a non-public destination, naming the field, and makes
nothing (every spelling: tests/integration/webhooks/test_destinations.py)."""

from __future__ import annotations

import httpx


def test_the_api_refuses_a_forbidden_url_naming_the_field(api: httpx.Client) -> None:
    assert api.post("/api/v1/groups", json={"path": "Org"}).status_code == 201
    for url in (
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:10.0.0.1]/",
        "http://2130706433:6379/",
        "http://localhost:8000/api/v1/tokens",
    ):
        answer = api.post("/api/v1/webhooks", json={"group": "Org", "url": url})
        assert answer.status_code == 422, url
        problem = answer.json()
        assert problem["code"] == "invalid-input"
        assert [p["field"] for p in problem["errors"]] == ["url"]
        assert "must be a public destination" in problem["errors"][0]["message"]
    assert api.get("/api/v1/webhooks").json()["items"] == []
