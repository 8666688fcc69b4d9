"""The pure rules of the integrations: broker accounts and topics, the dynamic security
codec, webhook signatures, backoff and group matching."""

from __future__ import annotations

import importlib
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provisiond.domain import broker, webhooks
from provisiond.domain.credentials import CredentialType, selector_credential, token_selector
from provisiond.errors import InvalidInput
from provisiond.integrations.mosquitto_dynsec import protocol as dynsec
from provisiond.services.hashing import new_split_token, split_token
from provisiond.store import schema

DEVICE = uuid.UUID("0195f3c2-7d1e-7c55-9a40-1d6f6c0e9b11")


def test_account_names_are_never_secrets() -> None:
    cred = uuid.uuid4()
    issued = broker.account_for(
        CredentialType.ACCESS_TOKEN,
        device_id=DEVICE,
        credential_id=cred,
        lookup=None,
        client_id="ignored",
        serial="SN-1",
        secret="sel.verifier",
    )
    assert issued is not None
    assert (issued.username, issued.password, issued.client_id) == (
        token_selector(cred),
        "sel.verifier",
        None,
    )
    assert not issued.secret_name
    chosen = broker.account_for(
        CredentialType.ACCESS_TOKEN,
        device_id=DEVICE,
        credential_id=cred,
        lookup="sha256-of-it",
        client_id=None,
        serial="SN-1",
        secret="a chosen token",
    )
    assert chosen is not None
    assert (chosen.username, chosen.password) == ("SN-1", "a chosen token")
    basic = broker.account_for(
        CredentialType.MQTT_BASIC,
        device_id=DEVICE,
        credential_id=cred,
        lookup="user-1",
        client_id="SN-1",
        serial="SN-1",
        secret="pw",
    )
    assert basic is not None
    assert (basic.username, basic.password, basic.client_id) == ("user-1", "pw", "SN-1")
    assert basic.digest == broker.username_digest("user-1") != issued.digest
    for kind in (CredentialType.X509, CredentialType.LORAWAN):
        assert (
            broker.account_for(
                kind,
                device_id=DEVICE,
                credential_id=cred,
                lookup="x",
                client_id=None,
                serial="SN-1",
                secret="s",
            )
            is None
        )


def test_thingsboards_token_as_username_is_an_opt_in() -> None:
    cred = uuid.uuid4()
    token = broker.account_for(
        CredentialType.ACCESS_TOKEN,
        device_id=DEVICE,
        credential_id=cred,
        lookup=None,
        client_id=None,
        serial="SN-1",
        secret="tok",
        token_as_username=True,
    )
    assert token is not None
    assert (token.username, token.password, token.secret_name) == ("tok", "tok", True)
    basic = broker.account_for(
        CredentialType.MQTT_BASIC,
        device_id=DEVICE,
        credential_id=cred,
        lookup="user-1",
        client_id=None,
        serial="SN-1",
        secret="pw",
        token_as_username=True,
    )
    assert basic is not None
    assert not basic.secret_name


@given(st.uuids())
def test_a_selector_is_the_public_half_of_the_token(credential_id: uuid.UUID) -> None:
    token, _ = new_split_token(credential_id)
    assert token.partition(".")[0] == token_selector(credential_id)
    assert selector_credential(token_selector(credential_id)) == credential_id
    assert split_token(token) is not None


def test_the_credential_issued_first_holds_a_name() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)

    def account(name: str, minutes: int, cred: uuid.UUID | None = None) -> broker.BrokerAccount:
        return broker.BrokerAccount(
            name,
            "pw",
            uuid.uuid4(),
            cred or uuid.uuid4(),
            issued_at=t0 + timedelta(minutes=minutes),
        )

    first, later, other = account("x", 0), account("x", 5), account("y", 9)
    for order in ([first, later, other], [other, later, first]):
        holders = broker.name_holders(order)
        assert holders == {"x": first, "y": other}
    a = uuid.UUID(int=1)
    b = uuid.UUID(int=2)
    tie = broker.name_holders([account("z", 1, b), account("z", 1, a)])
    assert tie["z"].credential_id == a
    reason = broker.name_taken(first)
    assert str(first.credential_id) in reason
    assert "x" not in reason.split()


def test_session_expiry_is_bounded_and_spread() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    ends = {broker.session_expiry(now, 3600, f"client-{i}") for i in range(200)}
    start = int(now.timestamp())
    assert all(start + 3240 <= e <= start + 3600 for e in ends)
    assert len(ends) > 100  # a fleet that connected at once does not reconnect at once
    assert broker.session_expiry(now, 3600, "c") == broker.session_expiry(now, 3600, "c")


@pytest.mark.parametrize(
    ("template", "wrong"),
    [
        ("devices", "must contain {device_id}"),
        ("devices/{device_id}/#", "plain topic"),
        ("$SYS/{device_id}", "plain topic"),
        ("/devices/{device_id}", "start or end with /"),
        ("devices/{device_id}/{serial}", "only {device_id}"),
    ],
)
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


@pytest.mark.parametrize("template", ["devices/{device_id}", "fleet/{device_id}/io", "{device_id}"])
def test_event_topics_name_their_device(template: str) -> None:
    sub = broker.event_filter(template, "claim/button")
    assert "+" in sub
    topic = template.format(device_id=DEVICE) + "/claim/button"
    assert broker.device_in_topic(template, "claim/button", topic) == DEVICE
    assert broker.device_in_topic(template, "claim", topic) is None
    assert (
        broker.device_in_topic(
            template, "claim/button", template.format(device_id="not-a-uuid") + "/claim/button"
        )
        is None
    )
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
    answers = dynsec.decode(
        b'{"responses":[{"command":"createClient","error":'
        b'"Client already exists","correlationData":"k"},'
        b'{"command":"listClients","data":{"totalCount":0,"clients":[]}}]}'
    )
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
    assert webhooks.receives("Org/West", "Org/West/Anaheim")
    assert webhooks.receives("Org/West", "Org/West")
    assert not webhooks.receives("Org/West", "Org/Westfield")
    assert not webhooks.receives("Org/West", None)
    assert not webhooks.receives("Org", None)  # ungrouped: operator-wide webhooks only
    assert webhooks.receives(None, None)
    assert webhooks.receives(None, "Org/West")
    assert webhooks.parse_events(None) == webhooks.EVENTS
    assert webhooks.parse_events(["device.claimed", "device.claimed"]) == (
        webhooks.EventType.DEVICE_CLAIMED,
    )
    for url in ("ftp://x", "https://", "https://u:p@x.example/h", "x" * 3000):
        with pytest.raises(InvalidInput):
            webhooks.parse_url(url)
    assert webhooks.parse_url(" https://hooks.example/p ") == "https://hooks.example/p"


def test_the_outbox_trigger_knows_every_event_an_integration_uses() -> None:
    migration = importlib.import_module("provisiond.store.migrations.versions.0008_integrations")
    assert set(migration._TYPES) == set(schema.OUTBOX_EVENT_TYPES)
    from provisiond.services.outbox import BROKER_EVENTS

    used = (
        {e.value for e in webhooks.EVENTS} | {e.value for e in BROKER_EVENTS} | {"devices.imported"}
    )
    assert used <= set(schema.OUTBOX_EVENT_TYPES)
