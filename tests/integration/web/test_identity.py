"""One device, one identity: a name provisions once, whatever the transport; a repeat gets
credentials only with a proof that only the first requester holds; a certificate a device
brings is accepted only with proof that the device holds its key. Each test plays the
attacker who holds the profile's key and secret (they are in every firmware image) and a
serial (it is on the label), on SQLite and PostgreSQL, over real HTTP, MQTT and CoAP."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import aiomqtt
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tb_device_http import TBHTTPDevice, TBProvisionFailure
from tb_device_mqtt import TBDeviceMqttClient

from provisiond.errors import Unauthenticated
from provisiond.settings import Settings, load_settings
from tests.integration.web.conftest import Server
from tests.integration.web.test_provisioning import make_profile, provision, sql, use_token
from tests.integration.web.test_x509 import csr, proof

# ThingsBoard's answer to a name that exists, word for word: firmware matches on it.
FAILED = {"status": "FAILURE", "errorMsg": "Failed to provision device!"}


@pytest.fixture
def server_settings(database_url: str) -> Settings:
    return load_settings(
        database_url=database_url,
        log_level="warning",
        ca_key_passphrase="correct horse battery staple",
    )


def active_credentials(server: Server, serial: str) -> list[tuple[Any, ...]]:
    return sql(
        server,
        "SELECT c.type FROM credentials c JOIN devices d ON d.id = c.device_id"  # noqa: S608
        f" WHERE d.serial = '{serial}' AND c.revoked_at IS NULL",
    )


def events_of(server: Server, serial: str) -> list[str]:
    return [
        r[0]
        for r in sql(
            server,
            f"SELECT type FROM events WHERE serial = '{serial}'"  # noqa: S608
            " ORDER BY id",
        )
    ]


def mqtt_provision(server: Server, body: dict[str, Any]) -> dict[str, Any]:
    """One provisioning session over MQTT (ThingsBoard's topics), its answer."""

    async def main() -> dict[str, Any]:
        async with aiomqtt.Client("127.0.0.1", server.mqtt_port, username="provision") as c:
            await c.subscribe("/provision/response", qos=1)
            await c.publish("/provision/request", json.dumps(body), qos=1)
            async for message in c.messages:
                answer: dict[str, Any] = json.loads(bytes(message.payload))  # type: ignore[arg-type]
                return answer
        raise AssertionError("the session ended without an answer")

    return asyncio.run(asyncio.wait_for(main(), 30))


# The SDK uses paho's deprecated callback API: its warning, not ours.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_name_that_exists_is_refused_on_every_transport(
    server: Server, api: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    """The retry hole: today anyone with the profile secret and a serial gets a working
    credential for that device (and kills the real one) while its first credential has not
    been seen in use — with Mosquitto or X.509, for a day."""
    key, secret = make_profile(api)
    first = provision(server, key, secret, deviceName="GW-1")
    assert first["status"] == "SUCCESS"

    assert provision(server, key, secret, deviceName="GW-1") == FAILED
    assert provision(server, key, secret, deviceName=" gw-1 ") == FAILED  # the same serial
    # ThingsBoard's SDK hears FAILURE: it logs ThingsBoard's message and answers None
    assert (
        TBDeviceMqttClient.provision(
            "127.0.0.1", key, secret, port=server.mqtt_port, device_name="GW-1"
        )
        is None
    )
    assert "status FAILURE and message: Failed to provision device!" in caplog.text
    assert (
        mqtt_provision(
            server,
            {"deviceName": "GW-1", "provisionDeviceKey": key, "provisionDeviceSecret": secret},
        )
        == FAILED
    )
    # (and over CoAP: test_coap.py)
    # a device-chosen token does not get around it
    assert (
        provision(
            server,
            key,
            secret,
            deviceName="GW-1",
            credentialsType="ACCESS_TOKEN",
            token="attackers-own-token-0001",
        )
        == FAILED
    )

    # the device's own credential still works, and it is the only one
    assert use_token(server, first["credentialsValue"]) == "GW-1"
    assert active_credentials(server, "GW-1") == [("access-token",)]
    # every refused repeat is in the audit log, with where it came from
    refused = sql(
        server,
        "SELECT data FROM events WHERE serial = 'GW-1' AND"
        " type = 'device.reprovision-refused' ORDER BY id",
    )
    assert len(refused) == 5
    sources = [json.loads(r[0]) if isinstance(r[0], str) else r[0] for r in refused]
    assert {s["transport"] for s in sources} == {"http", "mqtt"}
    assert all(s["reason"] == "already provisioned" for s in sources)


def test_thingsboards_http_sdk_provisions_and_hears_failure_for_a_name_that_exists(
    server: Server, api: httpx.Client
) -> None:
    key, secret = make_profile(api)
    device = TBHTTPDevice.provision(server.url, "http-sdk-1", key, secret)
    assert use_token(server, device.token) == "HTTP-SDK-1"
    with pytest.raises(TBProvisionFailure) as refused:
        TBHTTPDevice.provision(server.url, "http-sdk-1", key, secret)
    assert refused.value.args[0] == FAILED
    assert use_token(server, device.token) == "HTTP-SDK-1"


def test_a_pre_provisioned_device_ends_with_exactly_one_credential(
    server: Server, api: httpx.Client
) -> None:
    key, secret = make_profile(api, strategy="pre-provisioned")
    imported = api.post("/api/v1/devices", json={"serial": "P1"})
    assert imported.status_code == 201, imported.text
    import_token = imported.json()["credential"]["secret"]
    assert use_token(server, import_token) == "P1"

    ok = provision(server, key, secret, deviceName="P1")
    assert ok["status"] == "SUCCESS"
    assert active_credentials(server, "P1") == [("access-token",)]
    with pytest.raises(Unauthenticated):
        use_token(server, import_token)
    assert use_token(server, ok["credentialsValue"]) == "P1"
    assert provision(server, key, secret, deviceName="P1") == FAILED
    assert provision(server, key, secret, deviceName="P2")["errorMsg"] == (
        "Device P2 was not registered beforehand"
    )
    assert "credentials.revoked" in events_of(server, "P1")


def test_the_strength_of_a_device_chosen_secret_is_the_profiles_choice(
    server: Server, api: httpx.Client
) -> None:
    """Firmware in the field may carry 8-character tokens that ThingsBoard accepted."""
    key, secret = make_profile(api)
    short = {"deviceName": "T1", "credentialsType": "ACCESS_TOKEN", "token": "A1B2C3D4"}
    assert provision(server, key, secret, **short)["errorMsg"] == (
        "token must be at least 16 characters (this profile's device_secret_min_length)"
    )
    lenient_key, lenient_secret = make_profile(
        api, name="legacy", device_secret_min_length=8, credentials=["access-token", "mqtt-basic"]
    )
    profile = api.get("/api/v1/profiles/legacy").json()
    assert profile["device_secret_min_length"] == 8
    assert provision(server, lenient_key, lenient_secret, **short)["credentialsValue"] == "A1B2C3D4"
    assert use_token(server, "A1B2C3D4") == "T1"
    basic = {
        "deviceName": "M1",
        "credentialsType": "MQTT_BASIC",
        "username": "m1",
        "password": "seven77",
    }
    assert provision(server, lenient_key, lenient_secret, **basic)["errorMsg"] == (
        "password must be at least 8 characters (this profile's device_secret_min_length)"
    )
    bad = api.post("/api/v1/profiles", json={"name": "zero", "device_secret_min_length": 0})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "device_secret_min_length"


def _self_signed_key_and_cert(
    common_name: str,
    issuer: tuple[Any, x509.Name] | None = None,
) -> tuple[ec.EllipticCurvePrivateKey, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    signer, issuer_name = issuer or (key, name)
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(signer, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM).decode()


def test_a_victims_certificate_cannot_be_registered_under_another_serial(
    server: Server, api: httpx.Client
) -> None:
    """A certificate is public (the device shows it in every TLS handshake). Today anyone
    with the profile secret registers a victim's certificate under a serial of their own, and
    the real device is locked out ('in use by another device')."""
    key, secret = make_profile(api, credentials=["x509"])
    victim_key, victim_pem = _self_signed_key_and_cert("VICTIM-1")

    stolen = provision(
        server,
        key,
        secret,
        deviceName="ATTACKER-1",
        credentialsType="X509_CERTIFICATE",
        hash=victim_pem,
    )
    assert stolen == {
        "status": "FAILURE",
        "errorMsg": "a certificate the device brings needs its proof: a signature by its "
        "key in certificateProof, or a profile whose device_ca issued it",
    }
    forged = provision(
        server,
        key,
        secret,
        deviceName="ATTACKER-1",
        credentialsType="X509_CERTIFICATE",
        hash=victim_pem,
        certificateProof=proof(
            ec.generate_private_key(ec.SECP256R1()), key, "ATTACKER-1", victim_pem
        ),
    )
    assert forged["errorMsg"] == "certificateProof is not a signature by the certificate's key"
    # a signature the victim made for its own serial is no use under another
    replayed = provision(
        server,
        key,
        secret,
        deviceName="ATTACKER-1",
        credentialsType="X509_CERTIFICATE",
        hash=victim_pem,
        certificateProof=proof(victim_key, key, "VICTIM-1", victim_pem),
    )
    assert replayed["errorMsg"] == "certificateProof is not a signature by the certificate's key"

    # the real device proves it holds the key
    ok = provision(
        server,
        key,
        secret,
        deviceName="VICTIM-1",
        credentialsType="X509_CERTIFICATE",
        hash=victim_pem,
        certificateProof=proof(victim_key, key, "VICTIM-1", victim_pem),
    )
    assert (ok["status"], ok["credentialsValue"]) == ("SUCCESS", victim_pem)
    assert sql(server, "SELECT serial FROM devices") == [("VICTIM-1",)]


def test_a_manufacturer_ca_vouches_for_the_certificates_devices_bring(
    server: Server, api: httpx.Client, tmp_path: Any
) -> None:
    maker_key = ec.generate_private_key(ec.SECP256R1())
    maker_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Maker Device CA")])
    now = datetime.now(UTC)
    maker = (
        x509.CertificateBuilder()
        .subject_name(maker_name)
        .issuer_name(maker_name)
        .public_key(maker_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=900))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(maker_key, hashes.SHA256())
    )
    maker_pem = maker.public_bytes(serialization.Encoding.PEM).decode()
    registered = api.post("/api/v1/cas", json={"name": "maker", "certificate": maker_pem})
    assert registered.status_code == 201, registered.text
    assert registered.json()["can_sign"] is False
    made = api.post(
        "/api/v1/profiles", json={"name": "factory", "credentials": ["x509"], "device_ca": "maker"}
    )
    assert made.status_code == 201, made.text
    assert made.json()["device_ca"] == "maker"
    key, secret = made.json()["key"], made.json()["secret"]

    _, genuine = _self_signed_key_and_cert("MTR-7", issuer=(maker_key, maker_name))
    _, foreign = _self_signed_key_and_cert("MTR-8")
    # the maker's CA vouches for MTR-7's certificate: no signature needed
    assert (
        provision(
            server,
            key,
            secret,
            deviceName="MTR-7",
            credentialsType="X509_CERTIFICATE",
            hash=genuine,
        )["status"]
        == "SUCCESS"
    )
    # but only under the serial it names
    _, other = _self_signed_key_and_cert("MTR-9", issuer=(maker_key, maker_name))
    assert provision(
        server, key, secret, deviceName="MTR-10", credentialsType="X509_CERTIFICATE", hash=other
    )["errorMsg"] == ("the certificate's subject CN 'MTR-9' is not the device's serial MTR-10")
    assert provision(
        server, key, secret, deviceName="MTR-8", credentialsType="X509_CERTIFICATE", hash=foreign
    )["errorMsg"].startswith("a certificate the device brings needs its proof")
    # a CA known by its certificate only cannot sign CSRs
    refused = api.post(
        "/api/v1/profiles", json={"name": "signer", "credentials": ["x509"], "ca": "maker"}
    )
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "ca"


def retry_key() -> str:
    """What firmware generates once and keeps before its first request."""
    return base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")


def test_with_proof_a_retry_key_gets_the_first_answer_back(
    server: Server, api: httpx.Client
) -> None:
    key, secret = make_profile(
        api, reprovision="with-proof", credentials=["access-token", "mqtt-basic"]
    )
    mine = retry_key()
    first = provision(server, key, secret, deviceName="R1", retryKey=mine)
    assert first["status"] == "SUCCESS"

    # without the key, or with another, ThingsBoard's answer; nothing changes
    assert provision(server, key, secret, deviceName="R1") == FAILED
    assert provision(server, key, secret, deviceName="R1", retryKey=retry_key()) == FAILED
    # with it, the first answer again: the same credential, still the only one
    assert provision(server, key, secret, deviceName="R1", retryKey=mine) == first
    assert use_token(server, first["credentialsValue"]) == "R1"
    assert provision(server, key, secret, deviceName="R1", retryKey=mine) == first  # used
    assert active_credentials(server, "R1") == [("access-token",)]
    # MQTT basic: the generated user name and password come back the same
    other = retry_key()
    basic = provision(
        server, key, secret, deviceName="R2", credentialsType="MQTT_BASIC", retryKey=other
    )
    assert (
        provision(
            server, key, secret, deviceName="R2", credentialsType="MQTT_BASIC", retryKey=other
        )
        == basic
    )
    # a copy of the database holds neither the key nor the credential
    stored = str(sql(server, "SELECT * FROM devices"))
    for secret_text in (
        mine,
        other,
        first["credentialsValue"],
        basic["credentialsValue"]["password"],
    ):
        assert secret_text not in stored
    # an operator's revocation stands: the key no longer gets anything under with-proof
    assert api.post("/api/v1/devices/R1/credentials/revoke").status_code == 200
    assert provision(server, key, secret, deviceName="R1", retryKey=mine) == FAILED
    proofs = [
        r[0]
        for r in sql(
            server,
            "SELECT data FROM events WHERE serial = 'R1' AND"
            " type = 'device.provisioned' ORDER BY id",
        )
    ]
    assert [
        json.loads(p).get("proof") if isinstance(p, str) else p.get("proof") for p in proofs
    ] == [None, "retry-key", "retry-key"]


def test_with_proof_the_same_chosen_credential_or_key_is_confirmed(
    server: Server, api: httpx.Client
) -> None:
    made = api.post("/api/v1/cas", json={"name": "factory"})
    assert made.status_code == 201, made.text
    created = api.post(
        "/api/v1/profiles",
        json={
            "name": "proof",
            "reprovision": "with-proof",
            "ca": "factory",
            "credentials": ["access-token", "mqtt-basic", "x509"],
        },
    )
    key, secret = created.json()["key"], created.json()["secret"]

    token = {"deviceName": "C1", "credentialsType": "ACCESS_TOKEN", "token": "chosen-token-0000001"}
    assert provision(server, key, secret, **token)["credentialsValue"] == token["token"]
    assert provision(server, key, secret, **token)["credentialsValue"] == token["token"]
    assert provision(server, key, secret, **{**token, "token": "another-token-000001"}) == FAILED
    basic = {
        "deviceName": "C2",
        "credentialsType": "MQTT_BASIC",
        "clientId": "c2",
        "username": "c2-user",
        "password": "c2-password-long-enough",
    }
    ok = provision(server, key, secret, **basic)
    assert provision(server, key, secret, **basic) == ok
    assert provision(server, key, secret, **{**basic, "clientId": "other"}) == FAILED

    # a CSR for the key of the certificate issued: that certificate (nothing new is signed)
    device_key = ec.generate_private_key(ec.SECP256R1())
    issued = provision(
        server,
        key,
        secret,
        deviceName="C3",
        credentialsType="X509_CERTIFICATE",
        hash=csr("C3", device_key),
    )
    again = provision(
        server,
        key,
        secret,
        deviceName="C3",
        credentialsType="X509_CERTIFICATE",
        hash=csr("C3", device_key),
    )
    assert again == issued
    assert (
        provision(
            server, key, secret, deviceName="C3", credentialsType="X509_CERTIFICATE", hash=csr("C3")
        )
        == FAILED
    )  # another key: not the first requester
    assert len(sql(server, "SELECT serial_number FROM issued_certificates")) == 1
    for serial in ("C1", "C2", "C3"):
        assert len(active_credentials(server, serial)) == 1


def test_factory_reset_gives_a_device_that_proves_itself_new_credentials(
    server: Server, api: httpx.Client
) -> None:
    assert api.post("/api/v1/cas", json={"name": "line"}).status_code == 201
    created = api.post(
        "/api/v1/profiles",
        json={
            "name": "reset",
            "reprovision": "factory-reset",
            "ca": "line",
            "credentials": ["x509", "access-token"],
        },
    )
    key, secret = created.json()["key"], created.json()["secret"]
    # a device with a secure element: its key survives the reset
    element = ec.generate_private_key(ec.SECP256R1())
    first = provision(
        server,
        key,
        secret,
        deviceName="FR-1",
        credentialsType="X509_CERTIFICATE",
        hash=csr("FR-1", element),
    )
    current = first["credentialsValue"]

    fresh = ec.generate_private_key(ec.SECP256R1())
    request = csr("FR-1", fresh)

    def reset(signer: ec.EllipticCurvePrivateKey, shown: str) -> dict[str, Any]:
        return provision(
            server,
            key,
            secret,
            deviceName="FR-1",
            credentialsType="X509_CERTIFICATE",
            hash=request,
            currentCertificate=shown,
            reprovisionProof=proof(signer, key, "FR-1", request, "provisiond-reprovision-proof"),
        )

    # the attacker has the certificate (it is public) but not the key
    assert reset(ec.generate_private_key(ec.SECP256R1()), current) == FAILED
    assert (
        provision(
            server, key, secret, deviceName="FR-1", credentialsType="X509_CERTIFICATE", hash=request
        )
        == FAILED
    )
    replaced = reset(element, current)
    assert replaced["status"] == "SUCCESS"
    assert replaced["credentialsValue"] != current
    # the old certificate is revoked in its CA's register, the new one is the only one
    assert sql(
        server, "SELECT revocation_reason FROM issued_certificates ORDER BY revoked_at IS NULL"
    ) == [("superseded",), (None,)]
    assert active_credentials(server, "FR-1") == [("x509",)]
    # the same reset again (its answer was lost): the new certificate, nothing else issued
    assert reset(element, current) == replaced
    # the old certificate proves nothing any more
    request = csr("FR-1", ec.generate_private_key(ec.SECP256R1()))
    assert reset(element, current) == FAILED

    # a retry key survives a reset in a protected partition: after an operator revoked the
    # token it protects, it gets a new one
    mine = retry_key()
    token = provision(
        server, key, secret, deviceName="FR-2", credentialsType="ACCESS_TOKEN", retryKey=mine
    )
    assert (
        provision(
            server, key, secret, deviceName="FR-2", credentialsType="ACCESS_TOKEN", retryKey=mine
        )
        == token
    )  # still held: the same one
    assert api.post("/api/v1/devices/FR-2/credentials/revoke").status_code == 200
    renewed = provision(
        server, key, secret, deviceName="FR-2", credentialsType="ACCESS_TOKEN", retryKey=mine
    )
    assert renewed["status"] == "SUCCESS"
    assert renewed["credentialsValue"] != token["credentialsValue"]
    assert use_token(server, renewed["credentialsValue"]) == "FR-2"
    with pytest.raises(Unauthenticated):
        use_token(server, token["credentialsValue"])
    # one revocation each: FR-1's certificate by the reset, FR-2's token by the operator
    assert events_of(server, "FR-1").count("credentials.revoked") == 1
    assert events_of(server, "FR-2").count("credentials.revoked") == 1


@pytest.mark.slow
def test_simultaneous_requests_never_answer_a_dead_credential(
    server: Server, api: httpx.Client
) -> None:
    """A device retrying before its first answer came (a timeout), on every policy: of its
    requests in flight at once, each SUCCESS answers the credential that stays alive."""
    keys = {
        policy: make_profile(api, name=policy, reprovision=policy)
        for policy in ("never", "with-proof", "factory-reset")
    }
    jobs = []
    for policy, (key, secret) in keys.items():
        for n in range(12):
            mine = retry_key()
            body = {
                "provisionDeviceKey": key,
                "provisionDeviceSecret": secret,
                "deviceName": f"{policy}-{n}",
                "retryKey": mine,
            }
            jobs.extend([body] * 4)
    answers: list[dict[str, Any]] = [{}] * len(jobs)
    barrier = threading.Barrier(8)

    def worker(w: int) -> None:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            barrier.wait()
            for i in range(w, len(jobs), 8):
                answers[i] = client.post("/api/v1/provision", json=jobs[i]).json()

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for body, answer in zip(jobs, answers, strict=True):
        if answer["status"] == "SUCCESS":
            assert use_token(server, answer["credentialsValue"]) == body["deviceName"].upper()
        else:
            assert answer == FAILED
            assert body["deviceName"].startswith("never-")
    for policy in keys:
        for n in range(12):
            assert len(active_credentials(server, f"{policy}-{n}".upper())) == 1
