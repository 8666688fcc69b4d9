"""The pure rules of the integrations: broker accounts and topics, the dynamic security
codec, webhook signatures, backoff and group matching."""

from __future__ import annotations

import importlib
import json
import uuid
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provisiond.domain import broker, webhooks
from provisiond.domain.credentials import CredentialType
from provisiond.errors import InvalidInput
from provisiond.protocols import dynsec
from provisiond.store import schema

DEVICE = uuid.UUID("0195f3c2-7d1e-7c55-9a40-1d6f6c0e9b11")


def test_accounts_follow_thingsboards_conventions() -> None:
    cred = uuid.uuid4()
    token = broker.account_for(CredentialType.ACCESS_TOKEN, device_id=DEVICE,
                               credential_id=cred, lookup=None, client_id=None, secret="tok")
    assert token is not None
    assert (token.username, token.password, token.client_id) == ("tok", "tok", None)
    basic = broker.account_for(CredentialType.MQTT_BASIC, device_id=DEVICE,
                               credential_id=cred, lookup="user-1", client_id="SN-1",
                               secret="pw")
    assert basic is not None
    assert (basic.username, basic.password, basic.client_id) == ("user-1", "pw", "SN-1")
    assert basic.digest == broker.username_digest("user-1") != token.digest
    for kind in (CredentialType.X509, CredentialType.LORAWAN):
        assert broker.account_for(kind, device_id=DEVICE, credential_id=cred, lookup="x",
                                  client_id=None, secret="s") is None


@pytest.mark.parametrize(("template", "wrong"), [
    ("devices", "must contain {device_id}"),
    ("devices/{device_id}/#", "plain topic"),
    ("$SYS/{device_id}", "plain topic"),
    ("/devices/{device_id}", "start or end with /"),
    ("devices/{device_id}/{serial}", "only {device_id}"),
])
def test_bad_topic_prefixes_are_refused_with_the_reason(template: str, wrong: str) -> None:
    with pytest.raises(ValueError, match=wrong):
        broker.check_prefix_template(template)


def test_topics_under_a_prefix() -> None:
    prefix = broker.topic_prefix("devices/{device_id}", DEVICE)
    assert prefix == f"devices/{DEVICE}"
    assert broker.topic_within(prefix, prefix)
    assert broker.topic_within(prefix, f"{prefix}/a/b")
    assert broker.topic_within(prefix, f"{prefix}/#")
    assert not broker.topic_within(prefix, f"{prefix}x")
    assert not broker.topic_within(prefix, "devices/+/a")
    assert not broker.topic_within(prefix, "#")


@pytest.mark.parametrize("template", ["devices/{device_id}", "fleet/{device_id}/io",
                                      "{device_id}"])
def test_event_topics_name_their_device(template: str) -> None:
    sub = broker.event_filter(template, "claim/button")
    assert "+" in sub
    topic = template.format(device_id=DEVICE) + "/claim/button"
    assert broker.device_in_topic(template, "claim/button", topic) == DEVICE
    assert broker.device_in_topic(template, "claim", topic) is None
    assert broker.device_in_topic(template, "claim/button",
                                  template.format(device_id="not-a-uuid") + "/claim/button") \
        is None
    assert broker.role_name(DEVICE).startswith(broker.ROLE_PREFIX)
    assert broker.device_of_role(broker.role_name(DEVICE)) == DEVICE
    assert broker.device_of_role("admin") is None


@given(st.text(max_size=80))
def test_device_in_topic_is_total(topic: str) -> None:
    found = broker.device_in_topic("devices/{device_id}", "claim", topic)
    assert found is None or topic == f"devices/{found}/claim"


def test_dynsec_commands_and_answers() -> None:
    role = dynsec.create_role("r", dynsec.prefix_acls("devices/x"))
    assert [a["topic"] for a in role["acls"]] == ["devices/x/#"] * 4
    client = dynsec.create_client("u", "p", roles=["r"], groups=["g"])
    assert "clientid" not in client
    assert client["roles"] == [{"rolename": "r"}]
    assert json.loads(dynsec.encode([client])) == {"commands": [client]}
    answers = dynsec.decode(b'{"responses":[{"command":"createClient","error":'
                            b'"Client already exists","correlationData":"k"},'
                            b'{"command":"listClients","data":{"totalCount":0,"clients":[]}}]}')
    assert answers[0].error in dynsec.ALREADY
    assert answers[0].correlation == "k"
    assert answers[1].ok
    assert answers[1].data["totalCount"] == 0
    for bad in (b"\xff", b"[]", b'{"responses": 1}', b'{"responses": [{}]}'):
        with pytest.raises(dynsec.DynsecError):
            dynsec.decode(bad)
    assert dynsec.names([{"rolename": "a"}, {"x": 1}, "junk"], "rolename") == ["a"]


def test_webhook_signatures_verify_and_expire() -> None:
    body = b'{"event_id": 1}'
    header = webhooks.sign("whsec_k", 1_764_000_000, body)
    assert header.startswith("t=1764000000,v1=")
    assert webhooks.verify("whsec_k", header, body, now=1_764_000_100)
    assert not webhooks.verify("whsec_k", header, body, now=1_764_000_400)  # too old
    assert not webhooks.verify("whsec_other", header, body, now=1_764_000_000)
    assert not webhooks.verify("whsec_k", header, body + b"x", now=1_764_000_000)
    assert not webhooks.verify("whsec_k", "garbage", body, now=1_764_000_000)


def test_webhook_backoff_doubles_to_an_hour() -> None:
    waits = [webhooks.backoff(n) for n in range(1, 15)]
    assert waits[:4] == [timedelta(seconds=s) for s in (1, 2, 4, 8)]
    assert waits[-1] == timedelta(hours=1)
    assert sum((w.total_seconds() for w in waits[:11]), 0.0) == 2047


def test_webhook_groups_and_inputs() -> None:
    assert webhooks.receives("Org/West", "Org/West/Anaheim", 1)
    assert webhooks.receives("Org/West", "Org/West", 1)
    assert not webhooks.receives("Org/West", "Org/Westfield", 1)
    assert not webhooks.receives("Org/West", None, 1)
    assert webhooks.receives("Org", None, 0)
    assert webhooks.parse_events(None) == webhooks.EVENTS
    assert webhooks.parse_events(["device.claimed", "device.claimed"]) == (
        webhooks.EventType.DEVICE_CLAIMED,)
    for url in ("ftp://x", "https://", "https://u:p@x.example/h", "x" * 3000):
        with pytest.raises(InvalidInput):
            webhooks.parse_url(url)
    assert webhooks.parse_url(" https://hooks.example/p ") == "https://hooks.example/p"


def test_the_outbox_trigger_knows_every_event_an_integration_uses() -> None:
    migration = importlib.import_module(
        "provisiond.store.migrations.versions.0008_integrations")
    assert set(migration._TYPES) == set(schema.OUTBOX_EVENT_TYPES)
    from provisiond.services.outbox import BROKER_EVENTS

    used = {e.value for e in webhooks.EVENTS} | {e.value for e in BROKER_EVENTS} | {
        "devices.imported"}
    assert used <= set(schema.OUTBOX_EVENT_TYPES)
