"""Microsoft's device SDK (azure-iot-device, ProvisioningDeviceClient), unchanged, registers
with provisiond's DPS listener: given the provisioning host, the server's CA
(``server_verification_cert``) and — because the SDK dials port 8883 always — its documented
``proxy_options``, an HTTP CONNECT proxy that carries the connection to the listener's port.
The TLS session is end to end: the proxy sees only the CONNECT line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from azure.iot.device import X509, ProvisioningDeviceClient, ProxyOptions
from azure.iot.device.exceptions import ClientError, ServiceError

from provisiond.bootstrap import open_container
from provisiond.domain.events import EventType
from provisiond.domain.scope import Scope
from provisiond.services import events
from tests.integration.dps.conftest import (
    HOST,
    HUB,
    SCOPE,
    Enrolled,
    Pki,
    Proxy,
    derive,
    device_certificate,
)
from tests.integration.web.conftest import Server

# The SDK uses paho's deprecated callback API: its warning, not ours.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def sdk_client(pki: Pki, proxy: Proxy, registration_id: str, key: str) -> ProvisioningDeviceClient:
    return ProvisioningDeviceClient.create_from_symmetric_key(
        provisioning_host=HOST,
        registration_id=registration_id,
        id_scope=SCOPE,
        symmetric_key=key,
        server_verification_cert=pki.ca.read_text(),
        proxy_options=ProxyOptions("HTTP", "127.0.0.1", proxy.port),
    )


def refusal(client: ProvisioningDeviceClient) -> str:
    """Why register() failed: the SDK raises ClientError("Unexpected failure") from the
    service's answer (ServiceError), whose message holds DPS's status."""
    with pytest.raises(ClientError) as caught:
        client.register()
    cause = caught.value.__cause__
    assert isinstance(cause, ServiceError), caught.value
    return str(cause)


def device_events(server: Server, serial: str) -> list[tuple[str, dict[str, object]]]:
    import asyncio

    async def main() -> list[tuple[str, dict[str, object]]]:
        async with open_container(server.settings) as c:
            page = await events.list_events(c.uow(), scope=Scope.operator(), serial=serial)
            return [(e.type.value, e.data) for e in reversed(page.items)]  # oldest first

    return asyncio.run(main())


def test_a_group_derived_key_registers_and_is_assigned_the_profiles_hub(
    server: Server, dps_proxy: Proxy, pki: Pki, enrolled: Enrolled
) -> None:
    client = sdk_client(pki, dps_proxy, "sensor-1", derive(enrolled.group_key, "sensor-1"))
    result = client.register()
    assert result.status == "assigned"
    assert result.registration_state.device_id == "sensor-1"
    assert result.registration_state.assigned_hub == HUB
    assert dps_proxy.connects == [f"CONNECT {HOST}:8883 HTTP/1.0"] or dps_proxy.connects[
        0
    ].startswith(f"CONNECT {HOST}:8883 ")


def test_an_individual_enrollment_registers_its_registered_device(
    server: Server, dps_proxy: Proxy, pki: Pki, enrolled: Enrolled
) -> None:
    result = sdk_client(pki, dps_proxy, "ind-1", enrolled.device_key).register()
    assert result.status == "assigned"
    assert result.registration_state.device_id == "ind-1"
    assert result.registration_state.assigned_hub == "single.example.com"


def test_a_wrong_key_is_refused_with_401(
    server: Server, dps_proxy: Proxy, pki: Pki, enrolled: Enrolled
) -> None:
    wrong = derive(enrolled.group_key, "someone-else")  # another device's key
    assert "status code 401" in refusal(sdk_client(pki, dps_proxy, "sensor-2", wrong))
    # the group key itself is no device's key
    group_key = sdk_client(pki, dps_proxy, "sensor-2", enrolled.group_key)
    assert "status code 401" in refusal(group_key)
    assert device_events(server, "SENSOR-2") == []  # nothing registered


def test_an_x509_group_registers_a_device_certificate_of_its_ca(
    server: Server, dps_proxy: Proxy, pki: Pki, tmp_path: Path
) -> None:
    cert, key = device_certificate(pki, tmp_path, "cam-1")
    client = ProvisioningDeviceClient.create_from_x509_certificate(
        provisioning_host=HOST,
        registration_id="cam-1",
        id_scope=SCOPE,
        x509=X509(str(cert), str(key)),
        server_verification_cert=pki.ca.read_text(),
        proxy_options=ProxyOptions("HTTP", "127.0.0.1", dps_proxy.port),
    )
    result = client.register()
    assert result.status == "assigned"
    assert result.registration_state.device_id == "cam-1"
    assert result.registration_state.assigned_hub == "x509.example.com"


def test_a_certificate_naming_another_registration_is_refused(
    server: Server, dps_proxy: Proxy, pki: Pki, tmp_path: Path
) -> None:
    cert, key = device_certificate(pki, tmp_path, "cam-2")
    client = ProvisioningDeviceClient.create_from_x509_certificate(
        provisioning_host=HOST,
        registration_id="cam-3",  # not the certificate's common name
        id_scope=SCOPE,
        x509=X509(str(cert), str(key)),
        server_verification_cert=pki.ca.read_text(),
        proxy_options=ProxyOptions("HTTP", "127.0.0.1", dps_proxy.port),
    )
    assert "status code 401" in refusal(client)


def test_a_certificate_of_another_ca_fails_the_handshake(
    server: Server, dps_proxy: Proxy, pki: Pki, tmp_path: Path
) -> None:
    from tests.integration.dps.conftest import make_cert

    _, _, other, other_key = make_cert(tmp_path, "other-ca", None, None, ca=True)  # type: ignore[arg-type]
    cert, key, _, _ = make_cert(tmp_path, "cam-9", other_key, other.subject)
    client = ProvisioningDeviceClient.create_from_x509_certificate(
        provisioning_host=HOST,
        registration_id="cam-9",
        id_scope=SCOPE,
        x509=X509(str(cert), str(key)),
        server_verification_cert=pki.ca.read_text(),
        proxy_options=ProxyOptions("HTTP", "127.0.0.1", dps_proxy.port),
    )
    with pytest.raises(ClientError) as caught:
        client.register()
    # refused by the TLS handshake, before any answer of the service
    assert not isinstance(caught.value.__cause__, ServiceError), caught.value.__cause__


def test_the_same_registration_again_follows_the_reprovisioning_policy(
    server: Server, dps_proxy: Proxy, pki: Pki, enrolled: Enrolled
) -> None:
    never = derive(enrolled.group_key, "sensor-5")  # profile "sensors": never
    assert sdk_client(pki, dps_proxy, "sensor-5", never).register().status == "assigned"
    again = refusal(sdk_client(pki, dps_proxy, "sensor-5", never))
    assert "failed registration status" in again
    audit = device_events(server, "SENSOR-5")
    assert [kind for kind, _ in audit] == [
        EventType.DEVICE_REGISTERED.value,
        EventType.DEVICE_PROVISIONED.value,
        EventType.DEVICE_REPROVISION_REFUSED.value,
    ]
    assert audit[1][1]["transport"] == "dps-mqtt"
    assert audit[2][1]["reason"] == "already provisioned"

    proof = derive(enrolled.again_key, "sensor-6")  # profile "again": with-proof
    first = sdk_client(pki, dps_proxy, "sensor-6", proof).register()
    second = sdk_client(pki, dps_proxy, "sensor-6", proof).register()
    assert first.status == second.status == "assigned"
    assert second.registration_state.device_id == "sensor-6"
    assert second.registration_state.assigned_hub == "again.example.com"


def test_a_custom_allocation_payload_goes_both_ways(
    server: Server, dps_proxy: Proxy, pki: Pki, enrolled: Enrolled, allocator: Any
) -> None:
    client = sdk_client(pki, dps_proxy, "alloc-ok", derive(enrolled.custom_key, "alloc-ok"))
    client.provisioning_payload = {"model": "m1"}
    result = client.register()
    assert result.status == "assigned"
    assert result.registration_state.assigned_hub == "custom.example.com"
    assert json.loads(result.registration_state.response_payload) == {"x": 1}
    assert allocator.asked[0]["deviceRuntimeContext"]["payload"] == {"model": "m1"}
