"""ThingsBoard's provision request parser: every field, every malformation."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provisiond.protocols import thingsboard as tb

BASE = {"provisionDeviceKey": "key-1", "provisionDeviceSecret": "secret-1"}


def test_minimal_and_full_requests() -> None:
    r = tb.parse_request({**BASE})
    assert (r.key, r.secret, r.device_name, r.credentials_type) == ("key-1", "secret-1", None, None)
    assert not r.device_chose_credentials
    r = tb.parse_request(
        {
            **BASE,
            "deviceName": "GW 1",
            "credentialsType": "mqtt_basic",
            "clientId": "c",
            "username": "u",
            "password": "p",
            "token": "t",
        }
    )
    assert r.credentials_type is tb.TbCredentialsType.MQTT_BASIC
    assert (r.client_id, r.username, r.password, r.token) == ("c", "u", "p", None)
    assert r.device_chose_credentials
    r = tb.parse_request({**BASE, "credentialsType": "ACCESS_TOKEN", "token": "tok"})
    assert (r.token, r.username) == ("tok", None)
    pem = "-----BEGIN CERTIFICATE-----\n" + "A" * 1000 + "\n-----END CERTIFICATE-----"
    r = tb.parse_request({**BASE, "credentialsType": "X509_CERTIFICATE", "hash": pem})
    assert r.certificate == pem
    assert tb.parse_request({**BASE, "deviceName": "  "}).device_name is None


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ([], tb.FAILURE, "the request must be a JSON object"),
        ("text", tb.FAILURE, "the request must be a JSON object"),
        ({}, tb.NOT_FOUND, "Provision data was not found!"),
        ({"provisionDeviceKey": "k"}, tb.NOT_FOUND, "Provision data was not found!"),
        ({**BASE, "provisionDeviceSecret": " "}, tb.NOT_FOUND, "Provision data was not found!"),
        ({**BASE, "provisionDeviceKey": 7}, tb.FAILURE, "provisionDeviceKey must be a string"),
        ({**BASE, "deviceName": ["x"]}, tb.FAILURE, "deviceName must be a string"),
        ({**BASE, "deviceName": "x" * 257}, tb.FAILURE, "deviceName is longer than 256 characters"),
        (
            {**BASE, "credentialsType": "PSK"},
            tb.FAILURE,
            "credentialsType 'PSK' is not one of ACCESS_TOKEN, MQTT_BASIC, X509_CERTIFICATE",
        ),
        (
            {**BASE, "credentialsType": "ACCESS_TOKEN", "token": "t" * 300},
            tb.FAILURE,
            "token is longer than 256 characters",
        ),
    ],
)
def test_refusals_name_the_field(body: object, status: str, message: str) -> None:
    with pytest.raises(tb.Refused) as refused:
        tb.parse_request(body)
    assert (refused.value.status, refused.value.message) == (status, message)


def test_answers() -> None:
    assert tb.success(tb.TbCredentialsType.ACCESS_TOKEN, "t") == {
        "status": "SUCCESS",
        "credentialsType": "ACCESS_TOKEN",
        "credentialsValue": "t",
    }
    assert tb.failure(tb.FAILURE, "why") == {"status": "FAILURE", "errorMsg": "why"}


def test_provisiond_extensions() -> None:
    r = tb.parse_request(
        {
            **BASE,
            "retryKey": "q7Rk2vXb9cWm1ZsT4hLp8A",
            "certificateProof": "c2ln",
            "currentCertificate": "PEM",
            "reprovisionProof": "cHJvb2Y=",
        }
    )
    assert (r.retry_key, r.certificate_proof, r.current_certificate, r.reprovision_proof) == (
        "q7Rk2vXb9cWm1ZsT4hLp8A",
        "c2ln",
        "PEM",
        "cHJvb2Y=",
    )
    assert not r.device_chose_credentials  # a retry key chooses no credential
    with pytest.raises(tb.Refused, match="retryKey must be at least 22 characters"):
        tb.parse_request({**BASE, "retryKey": "x" * 21})
    with pytest.raises(tb.Refused, match="certificateProof is longer than 2048"):
        tb.parse_request({**BASE, "certificateProof": "A" * 2049})


def test_the_proof_message_binds_purpose_profile_device_and_pem() -> None:
    message = tb.proof_message(tb.CERTIFICATE_PROOF, "key-1", "GW 1", "PEM")
    lines = message.decode().split("\n")
    assert lines[:3] == ["provisiond-certificate-proof", "key-1", "GW 1"]
    assert lines[3] == hashlib.sha256(b"PEM").hexdigest()
    assert tb.proof_message(tb.REPROVISION_PROOF, "key-1", None, None).decode().split("\n") == [
        "provisiond-reprovision-proof",
        "key-1",
        "",
        hashlib.sha256(b"").hexdigest(),
    ]


def test_an_attested_request_carries_no_secret_and_each_field_is_optional() -> None:
    assert not tb.carries_secret({})
    assert not tb.carries_secret({"provisionDeviceKey": "k", "provisionDeviceSecret": ""})
    assert tb.carries_secret({"provisionDeviceSecret": "s"})
    assert not tb.carries_secret(["provisionDeviceSecret"])
    assert tb.parse_attested_request({}) == tb.AttestedRequest(None, None, None)
    r = tb.parse_attested_request(
        {"deviceName": "CAM-1", "provisionDeviceKey": "k", "credentialsType": "x509_certificate"}
    )
    assert r == tb.AttestedRequest("CAM-1", "k", tb.TbCredentialsType.X509_CERTIFICATE)
    with pytest.raises(tb.Refused, match="the request must be a JSON object"):
        tb.parse_attested_request([])
    with pytest.raises(tb.Refused, match="deviceName must be a string"):
        tb.parse_attested_request({"deviceName": 7})
    with pytest.raises(tb.Refused, match="credentialsType 'PSK' is not one of"):
        tb.parse_attested_request({"credentialsType": "PSK"})


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(), st.lists, max_leaves=8))
def test_parsing_an_attested_request_is_total(body: object) -> None:
    """Any decoded JSON gives a request or a FAILURE naming the problem, never a crash."""
    for candidate in (body, {"deviceName": body, "credentialsType": body}):
        statuses = set()
        try:
            tb.parse_attested_request(candidate)
        except tb.Refused as refused:
            statuses.add(refused.status)
        assert statuses <= {tb.FAILURE}
