"""The MQTT provisioning listener over TLS (mqtt_tls_cert, mqtt_tls_key): a device that
trusts the server's CA provisions as over plain TCP; one that does not cannot connect."""

from __future__ import annotations

import json
import socket
import ssl
from pathlib import Path

import httpx
import pytest

from provisiond.protocols import mqtt
from provisiond.settings import Settings, load_settings
from tests.integration.web.conftest import Server
from tests.integration.web.test_mqtt import (
    answer_of,
    connect_packet,
    read_packets,
    subscribe_packet,
)
from tests.integration.web.test_provisioning import make_profile, use_token
from tests.support.mosquitto import write_tls_files


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    return write_tls_files(tmp_path)


@pytest.fixture
def server_settings(database_url: str, tls_files: tuple[Path, Path, Path]) -> Settings:
    _, cert, key = tls_files
    return load_settings(
        database_url=database_url,
        log_level="warning",
        provisioning__mqtt_tls_cert=str(cert),
        provisioning__mqtt_tls_key=str(key),
    )


def test_a_device_provisions_over_tls(
    server: Server, api: httpx.Client, tls_files: tuple[Path, Path, Path]
) -> None:
    ca, _, _ = tls_files
    key, secret = make_profile(api)
    request = json.dumps(
        {"deviceName": "tls-1", "provisionDeviceKey": key, "provisionDeviceSecret": secret}
    ).encode()
    context = ssl.create_default_context(cafile=str(ca))
    with (
        socket.create_connection(("127.0.0.1", server.mqtt_port), timeout=30) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as s,
    ):
        s.sendall(
            connect_packet(4, "provision")
            + subscribe_packet(4, "/provision/response")
            + mqtt.encode_publish(4, "/provision/request", request, 1, 3)
        )
        packets = read_packets(s, 4)  # type: ignore[arg-type]
    assert [k for k, _ in packets] == [mqtt.CONNACK, mqtt.SUBACK, mqtt.PUBACK, mqtt.PUBLISH]
    answer = answer_of(4, packets[3][1], qos=1)
    assert answer["status"] == "SUCCESS"
    assert use_token(server, answer["credentialsValue"]) == "TLS-1"

    untrusting = ssl.create_default_context()  # the system's CAs only
    with (
        socket.create_connection(("127.0.0.1", server.mqtt_port), timeout=30) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        untrusting.wrap_socket(raw, server_hostname="127.0.0.1")
    with socket.create_connection(("127.0.0.1", server.mqtt_port), timeout=30) as plain:
        plain.sendall(connect_packet(4, "provision"))  # not TLS: no MQTT answer
        assert read_packets(plain, 1) == []
