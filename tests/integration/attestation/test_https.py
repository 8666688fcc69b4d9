"""Certificate-chain attestation over the mutual-TLS device API (``serve
--device-tls-port``): ThingsBoard's ``POST /api/v1/provision`` without the secret, the
device proven by its TLS client certificate (httpx); the same rules as over MQTT, one
registry; on both backends."""

from __future__ import annotations

import socket

import httpx

from tests.integration.attestation.conftest import (
    Pki,
    assert_refused,
    client_context,
    events,
    https_provision,
    mqtt_provision,
)
from tests.integration.web.conftest import Server
from tests.integration.web.test_provisioning import make_profile, use_token


def test_a_device_provisions_over_https_by_its_certificate(
    server: Server, api: httpx.Client, pki: Pki
) -> None:
    device = pki.device("web-1")
    r = https_provision(server, pki, device)  # an empty JSON object
    assert r.status_code == 200, r.text
    assert r.json() == {
        "status": "SUCCESS",
        "credentialsType": "X509_CERTIFICATE",
        "credentialsValue": device.pem,
    }
    (provisioned,) = events(server, "WEB-1", ["device.provisioned"])
    assert provisioned["data"]["transport"] == "https-mtls"
    assert provisioned["data"]["attested_by"] == "maker"
    # one registry: the same certificate over MQTT is the same identity
    assert mqtt_provision(server, pki, device) == r.json()
    again = https_provision(server, pki, device, {"deviceName": "web-1"})
    assert again.json()["credentialsValue"] == device.pem
    assert_refused(https_provision(server, pki, pki.device("WEB-1")).json(), "never")
    assert len(api.get("/api/v1/devices/WEB-1").json()["credentials"]) == 1


def test_the_secret_based_flow_and_ThingsBoards_answers_on_the_mtls_port(
    server: Server, api: httpx.Client, pki: Pki
) -> None:
    key, secret = make_profile(api, name="plain")
    body = {"deviceName": "web-plain", "provisionDeviceKey": key, "provisionDeviceSecret": secret}
    r = https_provision(server, pki, None, body)  # no client certificate: a secret, as ever
    assert (r.status_code, r.json()["status"]) == (200, "SUCCESS")
    assert use_token(server, r.json()["credentialsValue"]) == "WEB-PLAIN"
    r = https_provision(server, pki, None, {"deviceName": "web-none"})
    assert (r.status_code, r.json()["status"]) == (200, "NOT_FOUND")
    with httpx.Client(verify=client_context(pki, pki.device("WEB-2")), timeout=30) as client:
        base = f"https://127.0.0.1:{server.app.state.device_tls_port}"
        assert client.get(base + "/api/v1/provision").status_code == 404
        assert client.post(base + "/api/v1/other", json={}).status_code == 404
        too_large = client.post(base + "/api/v1/provision", content=b" " * (65 * 1024))
        assert too_large.status_code == 413
        assert too_large.headers["connection"] == "close"  # the client opens another
        assert client.post(base + "/api/v1/provision", content=b"{").json() == {
            "status": "FAILURE",
            "errorMsg": "the request is not valid JSON",
        }
        # several requests on one connection
        for _ in range(3):
            assert client.post(base + "/api/v1/provision", json={}).json()["status"] == "SUCCESS"


def test_plain_http_on_the_mtls_port_gets_no_answer(server: Server, pki: Pki) -> None:
    port = server.app.state.device_tls_port
    with socket.create_connection(("127.0.0.1", port), timeout=30) as plain:
        plain.sendall(b"POST /api/v1/provision HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        assert b"SUCCESS" not in plain.recv(4096)  # a TLS alert, or nothing: not HTTP
    context = client_context(pki, None)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=30) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as s,
    ):
        assert s.version() in ("TLSv1.2", "TLSv1.3")  # no client certificate: fine
