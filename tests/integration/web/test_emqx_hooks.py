"""EMQX's HTTP authentication and authorisation hooks, over real HTTP, on both backends."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from provisiond.settings import Settings, load_settings
from tests.integration.web.conftest import Server


@pytest.fixture
def server_settings(database_url: str, request: pytest.FixtureRequest) -> Settings:
    broker: dict[str, Any] = {"kind": "emqx"}
    marker = request.node.get_closest_marker("hook_secret")
    if marker is not None:
        broker["hook_secret"] = marker.args[0]
    return load_settings(database_url=database_url, log_level="warning", broker=broker)


def hook(server: Server, name: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.post(f"{server.url}/hooks/emqx/{name}", json=body, headers=headers,
                      timeout=30)


def verdict(server: Server, name: str, body: dict[str, Any]) -> str:
    answer = hook(server, name, body)
    assert answer.status_code == 200, answer.text
    result: str = answer.json()["result"]
    return result


def test_token_devices_are_authenticated_and_kept_under_their_prefix(
        server: Server, api: httpx.Client) -> None:
    a = api.post("/api/v1/devices", json={"serial": "EMQ-A"}).json()
    b = api.post("/api/v1/devices", json={"serial": "EMQ-B"}).json()
    token = a["credential"]["secret"]

    answer = hook(server, "authn", {"username": token, "password": "", "clientid": "any"})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert body["result"] == "allow"
    assert body["is_superuser"] is False
    assert body["client_attrs"] == {"device_id": a["id"], "serial": "EMQ-A"}
    assert {"permission": "allow", "action": "all", "topic": f"devices/{a['id']}/#"} \
        in body["acl"]
    assert body["acl"][-1] == {"permission": "deny", "action": "all", "topic": "#"}

    wrong = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert verdict(server, "authn", {"username": wrong, "password": ""}) == "deny"
    assert verdict(server, "authn", {"username": "dashboard-admin", "password": "x"}) \
        == "ignore"
    assert verdict(server, "authn", {"password": "x"}) == "ignore"

    def authz(topic: str, username: str = token) -> str:
        return verdict(server, "authz", {"username": username, "clientid": "any",
                                         "topic": topic, "action": "publish"})

    assert authz(f"devices/{a['id']}/telemetry") == "allow"
    assert authz(f"devices/{a['id']}/#") == "allow"
    assert authz(f"devices/{a['id']}") == "allow"
    assert authz(f"devices/{b['id']}/telemetry") == "deny"
    assert authz("devices/+/telemetry") == "deny"
    assert authz("#") == "deny"
    assert authz(f"devices/{a['id']}x/y") == "deny"
    assert authz("a/b", username="dashboard-admin") == "ignore"

    assert api.post("/api/v1/devices/EMQ-A/credentials/revoke").status_code == 200
    assert verdict(server, "authn", {"username": token, "password": ""}) == "deny"
    assert authz(f"devices/{a['id']}/telemetry") == "deny"


def test_mqtt_basic_devices_need_their_password_and_client_id(server: Server,
                                                              api: httpx.Client) -> None:
    api.post("/api/v1/devices", json={"serial": "EMQ-M"})
    rotated = api.post("/api/v1/devices/EMQ-M/credentials/rotate",
                       params={"type": "mqtt-basic"})
    assert rotated.status_code == 200, rotated.text
    creds = rotated.json()
    assert creds["type"] == "mqtt-basic"
    assert creds["client_id"] == "EMQ-M"
    good = {"username": creds["username"], "password": creds["password"],
            "clientid": "EMQ-M"}
    assert verdict(server, "authn", good) == "allow"
    assert verdict(server, "authn", {**good, "password": "nope"}) == "deny"
    assert verdict(server, "authn", {**good, "clientid": "other"}) == "deny"
    bad_type = api.post("/api/v1/devices/EMQ-M/credentials/rotate", params={"type": "x509"})
    assert bad_type.status_code == 422
    assert bad_type.json()["errors"][0]["field"] == "type"
    again = api.post("/api/v1/devices/EMQ-M/credentials/rotate").json()
    assert again["type"] == "mqtt-basic"  # the kind it has
    assert verdict(server, "authn", good) == "deny"


def test_malformed_hook_requests_are_refused_clearly(server: Server) -> None:
    answer = httpx.post(f"{server.url}/hooks/emqx/authz", content=b"{not json",
                        headers={"content-type": "application/json"}, timeout=30)
    assert answer.status_code == 422
    assert answer.json()["code"] == "invalid-input"
    missing = hook(server, "authz", {"username": "x"})
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["field"] == "topic"


@pytest.mark.hook_secret("s3cret-hook")
def test_a_hook_secret_is_required_when_set(server: Server) -> None:
    body = {"username": "nobody", "password": "x"}
    assert hook(server, "authn", body).status_code == 401
    assert hook(server, "authn", body, Authorization="Bearer wrong").status_code == 401
    answer = hook(server, "authn", body, Authorization="Bearer s3cret-hook")
    assert answer.status_code == 200
    assert answer.json()["result"] == "ignore"

