"""The CoAP device API (aiocoap on both ends, real UDP on loopback), on both backends: the
same registry as HTTP."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import aiocoap
import httpx
import pytest

from provisiond.settings import Settings, load_settings
from tests.integration.web.conftest import Server
from tests.integration.web.test_provisioning import make_profile, provision, sql, use_token


def free_udp_port() -> int:
    """A port free for UDP and for TCP alike (aiocoap serves CoAP over both on it)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
            with socket.socket() as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port


@pytest.fixture
def server_settings(database_url: str) -> Settings:
    return load_settings(
        database_url=database_url,
        log_level="warning",
        provisioning__coap_port=free_udp_port(),
        provisioning__unknown_source_rate_per_minute=3,
    )


def coap_post(server: Server, payload: bytes) -> tuple[Any, dict[str, Any], int | None]:
    async def main() -> tuple[Any, dict[str, Any], int | None]:
        context = await aiocoap.Context.create_client_context()
        try:
            request = aiocoap.Message(
                code=aiocoap.POST,
                payload=payload,
                uri=f"coap://127.0.0.1:{server.settings.provisioning.coap_port}/api/v1/provision",
            )
            response = await asyncio.wait_for(context.request(request).response, 30)
            return response.code, json.loads(response.payload), response.opt.max_age
        finally:
            await context.shutdown()

    return asyncio.run(main())


def test_provisioning_over_coap_shares_the_registry(server: Server, api: httpx.Client) -> None:
    key, secret = make_profile(api)
    code, body, _ = coap_post(
        server,
        json.dumps(
            {"deviceName": "coap-1", "provisionDeviceKey": key, "provisionDeviceSecret": secret}
        ).encode(),
    )
    assert code == aiocoap.CONTENT
    assert (body["status"], body["credentialsType"]) == ("SUCCESS", "ACCESS_TOKEN")
    assert use_token(server, body["credentialsValue"]) == "COAP-1"
    assert api.get("/api/v1/devices/COAP-1").status_code == 200  # the same registry
    assert provision(server, key, secret, deviceName="http-1")["status"] == "SUCCESS"
    # a name provisions once, whatever the transport (ThingsBoard's answer)
    code, body, _ = coap_post(
        server,
        json.dumps(
            {"deviceName": "coap-1", "provisionDeviceKey": key, "provisionDeviceSecret": secret}
        ).encode(),
    )
    assert body == {"status": "FAILURE", "errorMsg": "Failed to provision device!"}
    code, body, _ = coap_post(
        server,
        json.dumps(
            {"deviceName": "http-1", "provisionDeviceKey": key, "provisionDeviceSecret": secret}
        ).encode(),
    )
    assert body == {"status": "FAILURE", "errorMsg": "Failed to provision device!"}
    refused = sql(server, "SELECT data FROM events WHERE type = 'device.reprovision-refused'")
    assert len(refused) == 2
    assert all("coap" in str(r[0]) for r in refused)

    assert coap_post(server, b"{nope")[1] == {
        "status": "FAILURE",
        "errorMsg": "the request is not valid JSON",
    }
    wrong = json.dumps({"provisionDeviceKey": key, "provisionDeviceSecret": "x"}).encode()
    answers = [coap_post(server, wrong) for _ in range(4)]
    assert [a[1]["status"] for a in answers] == ["NOT_FOUND"] * 3 + ["FAILURE"]
    code, body, max_age = answers[3]
    assert code == aiocoap.TOO_MANY_REQUESTS
    assert body["errorMsg"].startswith("Too many provision requests")
    assert max_age is not None
    assert max_age >= 1
