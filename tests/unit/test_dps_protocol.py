"""protocols/dps.py against Microsoft's documented vector and its SDK's own token code."""

from __future__ import annotations

import base64
import contextlib

import pytest
from azure.iot.device.common.auth.sastoken import RenewableSasToken
from azure.iot.device.common.auth.signing_mechanism import SymmetricKeySigningMechanism
from hypothesis import given
from hypothesis import strategies as st

from provisiond.protocols import dps

# Microsoft's "provision devices with symmetric keys" walkthrough: a group key, a
# registration id and the device key derived from them.
GROUP_KEY = (
    "8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw=="
)
REGISTRATION = "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6"
DERIVED = "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc="


def test_device_keys_are_derived_as_dps_derives_them() -> None:
    assert dps.derive_device_key(GROUP_KEY, REGISTRATION) == DERIVED


@pytest.mark.parametrize("key_name", [None, "registration"])
def test_the_sdks_own_tokens_verify(key_name: str | None) -> None:
    resource = dps.resource_of("0ne00000A0A", REGISTRATION)
    token = RenewableSasToken(
        resource, SymmetricKeySigningMechanism(DERIVED), key_name=key_name, ttl=60
    )
    sas = dps.parse_sas(str(token))
    assert sas.key_name == key_name
    now = int(token.expiry_time) - 30
    assert dps.sas_problem(sas, DERIVED, resource, now) is None
    assert dps.sas_problem(sas, DERIVED, resource, int(token.expiry_time)) == (
        "the token has expired"
    )
    other = base64.b64encode(b"\x01" * 32).decode()
    assert dps.sas_problem(sas, other, resource, now) == "the signature does not match the key"
    elsewhere = dps.resource_of("0ne00000A0A", "someone-else")
    assert dps.sas_problem(sas, DERIVED, elsewhere, now) == "the token is for another registration"


def test_a_made_token_round_trips_with_either_encoding() -> None:
    resource = dps.resource_of("0ne1", "dev-1")
    token = dps.make_sas(DERIVED, resource, 2_000_000_000)
    assert "sr=0ne1%2Fregistrations%2Fdev-1" in token
    lower = token.replace("%2F", "%2f")
    assert dps.sas_problem(dps.parse_sas(lower), DERIVED, resource, 1) is None


def test_user_names_and_topics() -> None:
    user = dps.parse_username(
        "0ne1/registrations/dev-1/api-version=2019-03-31&ClientVersion=azure-iot-device%2F2.0"
    )
    assert user == dps.UserName("0ne1", "dev-1", "2019-03-31")
    with pytest.raises(dps.DpsRefused):
        dps.parse_username("0ne1/registrations/DEV-1/api-version=1")  # DPS ids are lowercase
    with pytest.raises(dps.DpsRefused):
        dps.parse_username("0ne1/registrations/dev-1/ClientVersion=1")  # no api-version
    assert dps.parse_request_topic("$dps/registrations/PUT/iotdps-register/?$rid=7") == (
        dps.Request("register", "7")
    )
    assert dps.parse_request_topic(
        "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=8&operationId=4.ab.cd"
    ) == dps.Request("status", "8", "4.ab.cd")
    assert dps.response_topic(401, "a$b&c") == "$dps/registrations/res/401/?$rid=a%24b%26c"


@given(st.text(max_size=300))
def test_parsers_are_total(text: str) -> None:
    for parse in (dps.parse_username, dps.parse_sas, dps.parse_request_topic):
        with contextlib.suppress(dps.DpsRefused):
            parse(text)
