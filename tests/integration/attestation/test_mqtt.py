"""Certificate-chain attestation over the MQTT provisioning listener (paho, MQTT 3.1.1 over
TLS with the device's client certificate): provisioned on first contact with no secret,
the same certificate again is the same identity, the reprovisioning policy for another
certificate, the profile chosen by the CA that signed it; on both backends."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.integration.attestation.conftest import (
    Pki,
    Refused,
    assert_refused,
    events,
    handshake,
    make_ca,
    mqtt_provision,
)
from tests.integration.web.conftest import Server
from tests.integration.web.test_provisioning import make_profile, use_token


def credentials(api: httpx.Client, serial: str) -> list[dict[str, object]]:
    r = api.get(f"/api/v1/devices/{serial}")
    assert r.status_code == 200, r.text
    found: list[dict[str, object]] = r.json()["credentials"]
    return found


def test_a_device_is_provisioned_on_first_contact_by_its_certificate(
    server: Server, api: httpx.Client, pki: Pki
) -> None:
    device = pki.device("cam-1")
    answer = mqtt_provision(server, pki, device)  # an empty request: {}
    assert answer == {
        "status": "SUCCESS",
        "credentialsType": "X509_CERTIFICATE",
        "credentialsValue": device.pem,
    }
    assert [c["type"] for c in credentials(api, "CAM-1")] == ["x509"]
    (provisioned,) = events(server, "CAM-1", ["device.provisioned"])
    assert provisioned["data"]["profile"] == "cams"
    assert provisioned["data"]["attested_by"] == "maker"
    assert provisioned["data"]["transport"] == "mqtt"
    assert provisioned["data"]["created"] is True

    # the same certificate again (a lost answer, a reboot): its same identity, nothing new
    again = mqtt_provision(server, pki, device, {"deviceName": "CAM-1"})
    assert again == answer
    assert len(credentials(api, "CAM-1")) == 1
    repeated = events(server, "CAM-1", ["device.provisioned"])[0]
    assert repeated["data"]["repeated"] is True
    assert repeated["data"]["proof"] == "tls-certificate"

    # another certificate for the serial: "cams" reprovisions never
    refused = mqtt_provision(server, pki, pki.device("CAM-1"))
    assert_refused(refused, "provisioned already with another credential", "never")
    (audit,) = events(server, "CAM-1", ["device.reprovision-refused"])
    assert audit["data"]["attested_by"] == "maker"
    assert len(credentials(api, "CAM-1")) == 1


def test_factory_reset_replaces_the_certificate_with_a_new_one_its_maker_signed(
    server: Server, api: httpx.Client, pki: Pki
) -> None:
    first, second = pki.device("RST-1", pki.reset_maker), pki.device("RST-1", pki.reset_maker)
    assert mqtt_provision(server, pki, first)["status"] == "SUCCESS"
    assert mqtt_provision(server, pki, first)["credentialsValue"] == first.pem  # the same
    answer = mqtt_provision(server, pki, second)
    assert (answer["status"], answer["credentialsValue"]) == ("SUCCESS", second.pem)
    held = credentials(api, "RST-1")
    assert [c["revoked_at"] is None for c in held] == [False, True]  # the old one revoked
    reset = events(server, "RST-1", ["device.provisioned"])[0]
    assert (reset["data"]["factory_reset"], reset["data"]["proof"]) == (True, "tls-certificate")
    # the revoked certificate does not come back
    assert_refused(mqtt_provision(server, pki, first), "in use")
    assert len(credentials(api, "RST-1")) == 2


def test_devices_without_a_certificate_provision_with_a_secret_as_before(
    server: Server, api: httpx.Client, pki: Pki
) -> None:
    key, secret = make_profile(api, name="plain")
    body = {"deviceName": "plain-1", "provisionDeviceKey": key, "provisionDeviceSecret": secret}
    answer = mqtt_provision(server, pki, None, body)
    assert (answer["status"], answer["credentialsType"]) == ("SUCCESS", "ACCESS_TOKEN")
    assert use_token(server, answer["credentialsValue"]) == "PLAIN-1"
    # a device with a certificate that sends a secret: the secret-based flow, unchanged
    body = {"deviceName": "plain-2", "provisionDeviceKey": key, "provisionDeviceSecret": secret}
    answer = mqtt_provision(server, pki, pki.device("PLAIN-2"), body)
    assert (answer["status"], answer["credentialsType"]) == ("SUCCESS", "ACCESS_TOKEN")
    # neither a certificate nor a secret: ThingsBoard's answer, as before
    assert mqtt_provision(server, pki, None, {"deviceName": "plain-3"}) == {
        "status": "NOT_FOUND",
        "errorMsg": "Provision data was not found!",
    }


def test_a_ca_shared_by_two_profiles_needs_the_profile_named(
    server: Server, api: httpx.Client, pki: Pki
) -> None:
    device = pki.device("SHR-1", pki.shared)
    assert_refused(
        mqtt_provision(server, pki, device),
        "device CA of several profiles (shared-a, shared-b)",
        "provisionDeviceKey",
    )
    assert api.get("/api/v1/devices/SHR-1").status_code == 404  # nothing written
    key = api.get("/api/v1/profiles/shared-b").json()["key"]
    tokens_key = api.get("/api/v1/profiles/tokens").json()["key"]
    assert_refused(
        mqtt_provision(server, pki, device, {"provisionDeviceKey": tokens_key}),
        "names no profile whose device CA (shared)",
    )
    answer = mqtt_provision(server, pki, device, {"provisionDeviceKey": key})
    assert answer["status"] == "SUCCESS"
    assert events(server, "SHR-1", ["device.provisioned"])[0]["data"]["profile"] == "shared-b"


@pytest.mark.parametrize("send_chain", [True, False])
def test_an_intermediate_ca_is_the_device_ca_of_its_own_profile(
    server: Server, pki: Pki, send_chain: bool
) -> None:
    """Maker root -> Maker Line 2 (intermediate) -> device: the profile of the CA that
    signed the certificate ("line"), whether the device sends its chain or not."""
    serial = f"LINE-{int(send_chain)}"
    device = pki.device(serial, pki.line, send_chain=send_chain)
    assert mqtt_provision(server, pki, device)["status"] == "SUCCESS"
    assert events(server, serial, ["device.provisioned"])[0]["data"]["profile"] == "line"


def test_an_intermediate_nobody_registered_is_refused_though_its_root_is(
    server: Server, api: httpx.Client, pki: Pki
) -> None:
    """The handshake accepts the chain (its root is the device CA of "rooted"), but the
    device CA must be the certificate's issuer: register the intermediate."""
    line_3 = make_ca("Maker Line 3", pki.root)
    device = pki.device("L3-1", line_3)
    answer = mqtt_provision(server, pki, device)
    assert answer == {
        "status": "NOT_FOUND",
        "errorMsg": "the client certificate was not issued by the device CA of an enabled profile",
    }
    assert api.get("/api/v1/devices/L3-1").status_code == 404


def test_the_certificate_must_name_the_device_and_be_the_profiles_type(
    server: Server, api: httpx.Client, pki: Pki
) -> None:
    device = pki.device("CN-1")
    assert_refused(
        mqtt_provision(server, pki, device, {"deviceName": "CN-2"}),
        "deviceName CN-2 is not the certificate's subject CN CN-1",
    )
    assert_refused(mqtt_provision(server, pki, pki.device("bad serial!")), "subject CN")
    assert_refused(
        mqtt_provision(server, pki, device, {"credentialsType": "ACCESS_TOKEN"}),
        "X509_CERTIFICATE",
    )
    assert_refused(
        mqtt_provision(server, pki, pki.device("TOK-1", pki.token_maker)),
        "does not hand out x509 credentials",
    )
    for serial in ("CN-1", "CN-2", "TOK-1"):
        assert api.get(f"/api/v1/devices/{serial}").status_code == 404


def test_a_pre_provisioned_profile_takes_only_devices_registered_beforehand(
    server: Server, api: httpx.Client, pki: Pki
) -> None:
    r = api.post("/api/v1/devices", json={"serial": "PRE-1"})
    assert r.status_code == 201, r.text
    device = pki.device("PRE-1", pki.pre_maker)
    assert mqtt_provision(server, pki, device)["credentialsValue"] == device.pem
    held = credentials(api, "PRE-1")
    assert [c["type"] for c in held if c["revoked_at"] is None] == ["x509"]  # only that one
    assert_refused(
        mqtt_provision(server, pki, pki.device("PRE-2", pki.pre_maker)),
        "was not registered beforehand",
    )
    assert api.get("/api/v1/devices/PRE-2").status_code == 404


def test_a_revoked_device_is_refused_whatever_it_presents(
    server: Server, api: httpx.Client, pki: Pki
) -> None:
    device = pki.device("REV-1", pki.reset_maker)  # factory-reset: even a new certificate
    assert mqtt_provision(server, pki, device)["status"] == "SUCCESS"
    assert api.post("/api/v1/devices/REV-1/credentials/revoke").status_code == 200
    assert_refused(mqtt_provision(server, pki, device), "its credential was revoked")
    assert_refused(
        mqtt_provision(server, pki, pki.device("REV-1", pki.reset_maker)),
        "its credential was revoked",
    )


def refused(server: Server, pki: Pki, device: object) -> bool:
    """Refused at the handshake, or answered with a refusal."""
    try:
        answer = mqtt_provision(server, pki, device)  # type: ignore[arg-type]
    except Refused:
        return True
    return answer["status"] != "SUCCESS"


def test_a_ca_taken_from_its_profile_or_a_disabled_profile_admits_nobody_at_once(
    server: Server, api: httpx.Client, pki: Pki
) -> None:
    assert mqtt_provision(server, pki, pki.device("GONE-1"))["status"] == "SUCCESS"
    r = api.patch("/api/v1/profiles/cams", json={"device_ca": None})
    assert r.status_code == 200, r.text
    assert refused(server, pki, pki.device("GONE-2"))  # whether or not the TLS reloaded yet
    assert refused(server, pki, pki.device("GONE-1"))
    assert api.post("/api/v1/profiles/resets/disable").status_code == 200
    assert refused(server, pki, pki.device("GONE-3", pki.reset_maker))
    for serial in ("GONE-2", "GONE-3"):
        assert api.get(f"/api/v1/devices/{serial}").status_code == 404


def test_a_ca_given_to_a_profile_while_serving_is_trusted_after_the_reload(
    server: Server, api: httpx.Client, pki: Pki
) -> None:
    late = make_ca("Late Maker CA")
    device = pki.device("LATE-1", late)
    assert not handshake(server.mqtt_port, pki, device)  # nothing trusts it yet
    r = api.post("/api/v1/cas", json={"name": "late", "certificate": late.pem})
    assert r.status_code == 201, r.text
    make_profile(api, name="late", credentials=["x509"], device_ca="late")
    deadline = time.monotonic() + 30
    while not handshake(server.mqtt_port, pki, device):  # reloaded every 0.05 s here
        assert time.monotonic() < deadline, "the new device CA was never trusted"
    assert mqtt_provision(server, pki, device)["status"] == "SUCCESS"
