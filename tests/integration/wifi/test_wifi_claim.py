"""Claiming on the way (`wifi provision --claim EMAIL`): the host hands the device a
one-time user mapping, the device reports it to provisiond once on Wi-Fi, and provisiond
claims it for that user. Real server, real emulator, both backends."""

from __future__ import annotations

import json

import httpx
from typer.testing import CliRunner

from provisiond.cli.app import app
from provisiond.wifi.emulator import DeviceConfig
from tests.integration.web.conftest import Server, api, server, server_settings  # noqa: F401
from tests.integration.wifi.test_wifi import FAST, running

runner = CliRunner()
PASSWORD = "correct horse battery"


def test_wifi_provisioning_claims_the_device_for_the_user(
    server: Server,  # noqa: F811
    api: httpx.Client,  # noqa: F811
    database_url: str,
) -> None:
    assert api.post("/api/v1/groups", json={"path": "Kanarra/West"}).status_code == 201
    for email, role in (
        ("tech@kanarra.example", "installer"),
        ("viewer@kanarra.example", "viewer"),
    ):
        assert (
            api.post(
                "/api/v1/users",
                json={"email": email, "password": PASSWORD, "role": role, "group": "Kanarra"},
            ).status_code
            == 201
        )
    made = api.post("/api/v1/devices", json={"serial": "ESP-C3-0001"}).json()
    token = made["credential"]["secret"]
    cfg = DeviceConfig(delay_scale=FAST, report_to=server.url, device_token=token)
    with running(cfg) as (device, port):
        result = runner.invoke(
            app,
            [
                "wifi",
                "provision",
                "abcd1234",
                "--device",
                f"127.0.0.1:{port}",
                "--ssid",
                "Kanarra Ops",
                "--passphrase-stdin",
                "--claim",
                "tech@kanarra.example",
                "--database",
                database_url,
                "--json",
            ],
            input=PASSWORD + "\n",
        )
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["node_id"] == cfg.node_id
        viewer = runner.invoke(
            app,
            [
                "wifi",
                "provision",
                "abcd1234",
                "--device",
                f"127.0.0.1:{port}",
                "--ssid",
                "Kanarra Ops",
                "--passphrase-stdin",
                "--claim",
                "viewer@kanarra.example",
                "--database",
                database_url,
            ],
            input=PASSWORD + "\n",
        )
    assert device.reported is not None
    assert device.reported["status"] == 200
    assert device.reported["body"] == {"claimed": True, "serial": "ESP-C3-0001"}
    shown = api.get("/api/v1/devices/ESP-C3-0001").json()
    assert (shown["state"], shown["owner"]) == ("claimed", "tech@kanarra.example")
    assert viewer.exit_code == 6  # forbidden: viewers do not claim
    assert "viewers may not claim" in viewer.stderr

    user_id, secret = device.user_mapping or ("", "")
    again = httpx.post(
        f"{server.url}/api/v1/{token}/association",
        json={"user_id": user_id, "secret_key": secret},
        timeout=30,
    )
    assert again.status_code == 409  # used once
    assert again.json()["code"] == "claim-closed"
    stranger = httpx.post(
        f"{server.url}/api/v1/not-a-token/association",
        json={"user_id": user_id, "secret_key": secret},
        timeout=30,
    )
    assert stranger.status_code == 401
