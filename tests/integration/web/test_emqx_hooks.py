"""EMQX's HTTP authentication and authorisation hooks, over real HTTP, on both backends:
devices are named as on every broker (a token's public half, the serial for a token the
device chose, MQTT-basic names as issued) with the secret as the password; ThingsBoard's
token-as-user-name is an opt-in; the answer bounds the session (``expire_at``); a request
without ``clientid`` is refused, so a forgotten ``${clientid}`` cannot unbind MQTT-basic
credentials from their client id."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from provisiond.settings import Settings, load_settings
from tests.integration.web.conftest import Server
from tests.integration.web.test_provisioning import make_profile, provision
from tests.support.broker_accounts import name
from tests.support.emqx import EmqxStandIn

CHOSEN = "a token the device chose for itself 03"


@pytest.fixture
def server_settings(database_url: str, request: pytest.FixtureRequest) -> Settings:
    broker: dict[str, Any] = {"kind": "emqx", "session_max_seconds": 3600}
    marker = request.node.get_closest_marker("hook_secret")
    if marker is not None:
        broker["hook_secret"] = marker.args[0]
    if request.node.get_closest_marker("token_as_username") is not None:
        broker["token_as_username"] = True
    return load_settings(database_url=database_url, log_level="warning", broker=broker)


def hook(server: Server, name: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.post(f"{server.url}/hooks/emqx/{name}", json=body, headers=headers, timeout=30)


def verdict(server: Server, name: str, body: dict[str, Any]) -> str:
    answer = hook(server, name, body)
    assert answer.status_code == 200, answer.text
    result: str = answer.json()["result"]
    return result


def test_token_devices_are_authenticated_and_kept_under_their_prefix(
    server: Server, api: httpx.Client
) -> None:
    a = api.post("/api/v1/devices", json={"serial": "EMQ-A"}).json()
    b = api.post("/api/v1/devices", json={"serial": "EMQ-B"}).json()
    token = a["credential"]["secret"]
    login = {"username": name(token), "password": token, "clientid": "any"}

    before = int(time.time())
    answer = hook(server, "authn", login)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert body["result"] == "allow"
    assert body["is_superuser"] is False
    assert body["client_attrs"] == {"device_id": a["id"], "serial": "EMQ-A"}
    assert {"permission": "allow", "action": "all", "topic": f"devices/{a['id']}/#"} in body["acl"]
    assert body["acl"][-1] == {"permission": "deny", "action": "all", "topic": "#"}
    # the session must authenticate again within session_max_seconds (less a spread)
    assert before + 3600 - 360 <= body["expire_at"] <= int(time.time()) + 3600

    wrong = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert verdict(server, "authn", {**login, "password": wrong}) == "deny"
    assert verdict(server, "authn", {**login, "password": ""}) == "deny"
    assert verdict(server, "authn", {**login, "password": b["credential"]["secret"]}) == "deny"
    # the token as the user name is ThingsBoard's convention: refused unless opted in
    assert (
        verdict(server, "authn", {"username": token, "password": token, "clientid": "any"})
        == "deny"
    )
    assert (
        verdict(
            server, "authn", {"username": "dashboard-admin", "password": "x", "clientid": "any"}
        )
        == "ignore"
    )
    assert verdict(server, "authn", {"password": "x", "clientid": "any"}) == "ignore"

    def authz(topic: str, username: str = name(token)) -> str:
        return verdict(
            server,
            "authz",
            {"username": username, "clientid": "any", "topic": topic, "action": "publish"},
        )

    assert authz(f"devices/{a['id']}/telemetry") == "allow"
    assert authz(f"devices/{a['id']}/#") == "allow"
    assert authz(f"devices/{a['id']}") == "allow"
    assert authz(f"devices/{b['id']}/telemetry") == "deny"
    assert authz("devices/+/telemetry") == "deny"
    assert authz("#") == "deny"
    assert authz(f"devices/{a['id']}x/y") == "deny"
    assert authz("a/b", username="dashboard-admin") == "ignore"

    assert api.post("/api/v1/devices/EMQ-A/credentials/revoke").status_code == 200
    assert verdict(server, "authn", login) == "deny"
    assert authz(f"devices/{a['id']}/telemetry") == "deny"


def test_a_token_the_device_chose_is_named_by_its_serial(server: Server, api: httpx.Client) -> None:
    key, secret = make_profile(api, name="chosen")
    answer = provision(
        server, key, secret, deviceName="EMQ-C", credentialsType="ACCESS_TOKEN", token=CHOSEN
    )
    assert answer["status"] == "SUCCESS"
    assert (
        verdict(server, "authn", {"username": "EMQ-C", "password": CHOSEN, "clientid": "c"})
        == "allow"
    )
    assert (
        verdict(server, "authn", {"username": "EMQ-C", "password": CHOSEN + "x", "clientid": "c"})
        == "deny"
    )
    assert (
        verdict(server, "authn", {"username": CHOSEN, "password": CHOSEN, "clientid": "c"})
        == "ignore"
    )  # not a name of ours


def test_of_two_credentials_wanting_one_name_the_first_holds_it(
    server: Server, api: httpx.Client
) -> None:
    first = api.post("/api/v1/devices", json={"serial": "EMQ-F"}).json()
    token = first["credential"]["secret"]
    key, secret = make_profile(api, name="squat", credentials=["mqtt-basic"])
    squat = provision(
        server,
        key,
        secret,
        deviceName="EMQ-S",
        credentialsType="MQTT_BASIC",
        clientId="emq-s",
        username=name(token),
        password="a squatter's pw 01",
    )
    assert squat["status"] == "SUCCESS"  # provisioning let it through; the name did not
    assert (
        verdict(
            server,
            "authn",
            {"username": name(token), "password": "a squatter's pw 01", "clientid": "emq-s"},
        )
        == "deny"
    )
    assert (
        verdict(server, "authn", {"username": name(token), "password": token, "clientid": "emq-s"})
        == "allow"
    )


@pytest.mark.token_as_username
def test_token_as_username_is_thingsboards_opt_in(server: Server, api: httpx.Client) -> None:
    token = api.post("/api/v1/devices", json={"serial": "EMQ-TB"}).json()["credential"]["secret"]
    assert (
        verdict(server, "authn", {"username": token, "password": "", "clientid": "x"}) == "allow"
    )  # any password, as ThingsBoard
    assert (
        verdict(server, "authn", {"username": name(token), "password": token, "clientid": "x"})
        == "deny"
    )


def test_mqtt_basic_devices_need_their_password_and_client_id(
    server: Server, api: httpx.Client
) -> None:
    api.post("/api/v1/devices", json={"serial": "EMQ-M"})
    rotated = api.post("/api/v1/devices/EMQ-M/credentials/rotate", params={"type": "mqtt-basic"})
    assert rotated.status_code == 200, rotated.text
    creds = rotated.json()
    assert creds["type"] == "mqtt-basic"
    assert creds["client_id"] == "EMQ-M"
    good = {"username": creds["username"], "password": creds["password"], "clientid": "EMQ-M"}
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
    answer = httpx.post(
        f"{server.url}/hooks/emqx/authz",
        content=b"{not json",
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert answer.status_code == 422
    assert answer.json()["code"] == "invalid-input"
    missing = hook(server, "authz", {"username": "x", "clientid": "c"})
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["field"] == "topic"


@pytest.mark.parametrize("hook_name", ["authn", "authz"])
def test_a_request_without_clientid_is_refused_naming_the_field(
    server: Server, hook_name: str
) -> None:
    body: dict[str, Any] = {"username": "u", "password": "p", "topic": "t/1"}
    missing = hook(server, hook_name, body)
    assert missing.status_code == 422
    assert [e["field"] for e in missing.json()["errors"]] == ["clientid"]
    unfilled = hook(server, hook_name, {**body, "clientid": "${clientid}"})
    assert unfilled.status_code == 422
    (problem,) = unfilled.json()["errors"]
    assert problem["field"] == "clientid"
    assert "EMQX did not fill it in" in problem["message"]


def test_emqx_without_clientid_in_its_template_lets_no_device_in(
    server: Server, api: httpx.Client
) -> None:
    """The stand-in renders EMQX's body template as EMQX does: with ``${clientid}``
    forgotten, the hook's 422 is EMQX's "ignore", and provisiond being the last
    authenticator the connection is refused — loudly, instead of an MQTT-basic credential
    working under any client id."""
    api.post("/api/v1/devices", json={"serial": "EMQ-N"})
    basic = api.post(
        "/api/v1/devices/EMQ-N/credentials/rotate", params={"type": "mqtt-basic"}
    ).json()
    emqx = EmqxStandIn()
    emqx.hook_url = server.url
    assert emqx.connect("EMQ-N", basic["username"], basic["password"]) == "allow"
    assert emqx.connect("another", basic["username"], basic["password"]) == "deny"
    emqx.authn_body = {"username": "${username}", "password": "${password}"}
    assert emqx.connect("another", basic["username"], basic["password"]) == "ignore"
    assert emqx.connect("EMQ-N", basic["username"], basic["password"]) == "ignore"
    # and EMQX ends the allowed session at its expire_at
    (session,) = emqx.sessions.values()
    assert session.expire_at is not None
    assert emqx.expire(session.expire_at - 1) == []
    assert emqx.expire(session.expire_at) == ["EMQ-N"]


@pytest.mark.hook_secret("s3cret-hook")
def test_a_hook_secret_is_required_when_set(server: Server) -> None:
    body = {"username": "nobody", "password": "x", "clientid": "c"}
    assert hook(server, "authn", body).status_code == 401
    assert hook(server, "authn", body, Authorization="Bearer wrong").status_code == 401
    answer = hook(server, "authn", body, Authorization="Bearer s3cret-hook")
    assert answer.status_code == 200
    assert answer.json()["result"] == "ignore"
