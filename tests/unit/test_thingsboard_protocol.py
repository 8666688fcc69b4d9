"""ThingsBoard's provision request parser: every field, every malformation."""

from __future__ import annotations

import pytest

from provisiond.protocols import thingsboard as tb

BASE = {"provisionDeviceKey": "key-1", "provisionDeviceSecret": "secret-1"}


def test_minimal_and_full_requests() -> None:
    r = tb.parse_request({**BASE})
    assert (r.key, r.secret, r.device_name, r.credentials_type) == ("key-1", "secret-1",
                                                                    None, None)
    assert not r.device_chose_credentials
    r = tb.parse_request({**BASE, "deviceName": "GW 1", "credentialsType": "mqtt_basic",
                          "clientId": "c", "username": "u", "password": "p", "token": "t"})
    assert r.credentials_type is tb.TbCredentialsType.MQTT_BASIC
    assert (r.client_id, r.username, r.password, r.token) == ("c", "u", "p", None)
    assert r.device_chose_credentials
    r = tb.parse_request({**BASE, "credentialsType": "ACCESS_TOKEN", "token": "tok"})
    assert (r.token, r.username) == ("tok", None)
    pem = "-----BEGIN CERTIFICATE-----\n" + "A" * 1000 + "\n-----END CERTIFICATE-----"
    r = tb.parse_request({**BASE, "credentialsType": "X509_CERTIFICATE", "hash": pem})
    assert r.certificate == pem
    assert tb.parse_request({**BASE, "deviceName": "  "}).device_name is None


@pytest.mark.parametrize(("body", "status", "message"), [
    ([], tb.FAILURE, "the request must be a JSON object"),
    ("text", tb.FAILURE, "the request must be a JSON object"),
    ({}, tb.NOT_FOUND, "Provision data was not found!"),
    ({"provisionDeviceKey": "k"}, tb.NOT_FOUND, "Provision data was not found!"),
    ({**BASE, "provisionDeviceSecret": " "}, tb.NOT_FOUND, "Provision data was not found!"),
    ({**BASE, "provisionDeviceKey": 7}, tb.FAILURE, "provisionDeviceKey must be a string"),
    ({**BASE, "deviceName": ["x"]}, tb.FAILURE, "deviceName must be a string"),
    ({**BASE, "deviceName": "x" * 257}, tb.FAILURE,
     "deviceName is longer than 256 characters"),
    ({**BASE, "credentialsType": "PSK"}, tb.FAILURE,
     "credentialsType 'PSK' is not one of ACCESS_TOKEN, MQTT_BASIC, X509_CERTIFICATE"),
    ({**BASE, "credentialsType": "ACCESS_TOKEN", "token": "t" * 300}, tb.FAILURE,
     "token is longer than 256 characters"),
])
def test_refusals_name_the_field(body: object, status: str, message: str) -> None:
    with pytest.raises(tb.Refused) as refused:
        tb.parse_request(body)
    assert (refused.value.status, refused.value.message) == (status, message)


def test_answers() -> None:
    assert tb.success(tb.TbCredentialsType.ACCESS_TOKEN, "t") == {
        "status": "SUCCESS", "credentialsType": "ACCESS_TOKEN", "credentialsValue": "t"}
    assert tb.failure(tb.FAILURE, "why") == {"status": "FAILURE", "errorMsg": "why"}
