"""Provisioning answers by transport and outcome, and claim steps by outcome: each outcome
made to happen over its real transport (HTTP, MQTT, CoAP, the claiming pages), then read
from /metrics over HTTP."""

from __future__ import annotations

import json

import httpx
import pytest

from provisiond.protocols import mqtt
from provisiond.settings import Settings, load_settings
from tests.integration.metrics.conftest import Samples, scrape, value
from tests.integration.web.conftest import Server
from tests.integration.web.test_coap import coap_post, free_udp_port
from tests.integration.web.test_mqtt import (
    answer_of,
    connect_packet,
    read_packets,
    session,
    subscribe_packet,
)
from tests.integration.web.test_pages import PASSWORD, Browser
from tests.integration.web.test_provisioning import make_profile

URL = "/api/v1/provision"


@pytest.fixture
def server_settings(database_url: str) -> Settings:
    return load_settings(
        database_url=database_url,
        log_level="warning",
        provisioning__coap_port=free_udp_port(),
        provisioning__unknown_source_rate_per_minute=1000,
    )


def over_http(server: Server, body: bytes) -> dict[str, object]:
    r = httpx.post(server.url + URL, content=body, headers={"Content-Type": "application/json"})
    assert r.status_code in (200, 429), r.text
    answer: dict[str, object] = r.json()
    if r.status_code == 429:
        answer["throttled"] = True
    return answer


def over_mqtt(server: Server, body: bytes) -> dict[str, object]:
    with session(server) as s:
        s.sendall(
            connect_packet(5, "provision")
            + subscribe_packet(5, "/provision/response")
            + mqtt.encode_publish(5, "/provision/request", body, 1, 7)
        )
        packets = read_packets(s, 4)
        assert [k for k, _ in packets][-1] == mqtt.PUBLISH, packets
        return answer_of(5, packets[3][1], qos=1)


def over_coap(server: Server, body: bytes) -> dict[str, object]:
    code, answer, _ = coap_post(server, body)
    if str(code).startswith("4.29"):
        answer["throttled"] = True
    return answer


def answers(samples: Samples, transport: str) -> dict[str, float | None]:
    return {
        o: value(samples, "provisiond_provisioning_answers_total", transport=transport, outcome=o)
        for o in ("SUCCESS", "NOT_FOUND", "FAILURE", "THROTTLED", "ERROR")
    }


def test_every_transport_counts_its_answers_by_outcome_throttled_included(
    server: Server,
    api: httpx.Client,
) -> None:
    before = scrape(server.url)
    for transport in ("http", "mqtt", "coap"):
        assert answers(before, transport) == dict.fromkeys(answers(before, transport), 0)

    for transport, send in (("http", over_http), ("mqtt", over_mqtt), ("coap", over_coap)):
        key, secret = make_profile(api, name=f"p-{transport}", rate_per_minute=1)

        def request(name: str, key: str = key, secret: str = secret) -> bytes:
            body = {"provisionDeviceKey": key, "provisionDeviceSecret": secret}
            return json.dumps({**body, "deviceName": name}).encode()

        assert send(server, request(f"{transport}-1"))["status"] == "SUCCESS"
        throttled = send(server, request(f"{transport}-2"))  # the profile's 1 a minute
        assert throttled["status"] == "FAILURE"
        assert throttled.get("throttled") or transport == "mqtt"  # MQTT has no 429
        assert send(server, request(f"{transport}-3", secret="wrong"))["status"] == "NOT_FOUND"
        assert send(server, b"not json")["status"] == "FAILURE"

        assert answers(scrape(server.url), transport) == {
            "SUCCESS": 1,
            "NOT_FOUND": 1,
            "FAILURE": 1,
            "THROTTLED": 1,
            "ERROR": 0,
        }

    # refused for its size before it reaches provisioning (web/limits.py): answered, counted
    big = httpx.post(server.url + URL, content=b"{" + b" " * 70_000 + b"}")
    assert big.status_code == 413
    assert big.json()["status"] == "FAILURE"
    assert answers(scrape(server.url), "http")["FAILURE"] == 2


@pytest.fixture
def installer(server: Server, api: httpx.Client) -> Browser:
    assert api.post("/api/v1/groups", json={"path": "Kanarra/Site"}).status_code == 201
    r = api.post(
        "/api/v1/users",
        json={
            "email": "tech@kanarra.example",
            "password": PASSWORD,
            "role": "installer",
            "group": "Kanarra/Site",
        },
    )
    assert r.status_code == 201, r.text
    r = api.post("/api/v1/profiles", json={"name": "p-code", "claim_proof": "code"})
    assert r.status_code == 201, r.text
    r = api.post(
        "/api/v1/devices/import",
        content="serial\nCODE-1\n",
        params={"profile": "p-code"},
        headers={"Content-Type": "text/csv"},
    )
    assert r.status_code == 201, r.text
    browser = Browser(server)
    assert browser.sign_in("tech@kanarra.example").status_code == 303
    return browser


def claims(samples: Samples) -> dict[tuple[str, str], float]:
    return {
        (dict(k[1])["step"], dict(k[1])["outcome"]): v
        for k, v in samples.items()
        if k[0] == "provisiond_claim_steps_total" and v
    }


def test_claim_steps_are_counted_by_outcome(
    server: Server,
    installer: Browser,
) -> None:
    assert claims(scrape(server.url)) == {}

    installer.get("/provision")
    assert installer.post("/provision", {"serial": "NOPE-1", "target": "me"}).status_code == 404
    assert claims(scrape(server.url)) == {("start", "device-not-found"): 1}

    started = installer.post("/provision", {"serial": "CODE-1", "target": "me"})
    assert started.status_code == 303
    claim = started.headers["location"]
    installer.get(claim)
    wrong = installer.post(claim + "/proof", {"code": "WRONG-CODE"})
    assert wrong.status_code == 422
    installer.get(claim)
    assert installer.post(claim + "/cancel").status_code == 303
    installer.get(claim)
    late = installer.post(claim + "/proof", {"code": "WRONG-CODE"})
    assert late.status_code == 409  # the claim is over

    assert claims(scrape(server.url)) == {
        ("start", "device-not-found"): 1,
        ("start", "success"): 1,
        ("prove", "invalid-input"): 1,
        ("cancel", "success"): 1,
        ("prove", "claim-closed"): 1,
    }
