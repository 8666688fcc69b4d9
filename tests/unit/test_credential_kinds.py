"""Credential types are one table (domain/credentials.py's ``KINDS``) and one handler each
(services/credential_kinds.py): every type has both, complete, and the rules that used to
be written once per use case — the MQTT user name a device is given — are one rule."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from provisiond.domain import broker
from provisiond.domain.credentials import (
    KINDS,
    PROVISIONABLE,
    REVOCABLE,
    ROTATABLE,
    BrokerLogin,
    Credential,
    CredentialType,
    kind_of,
    mqtt_username,
)
from provisiond.protocols import thingsboard as tb
from provisiond.services import credential_kinds
from provisiond.services.credential_kinds import HANDLERS, CredentialHandler, handler
from provisiond.services.issuing import TB_NAMES, TB_TYPES, Issued, Job

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SERIAL = "SN-" + "7" * 45  # longer than the 40 characters a user name keeps of it


def overrides(h: CredentialHandler, method: str) -> bool:
    return getattr(type(h), method) is not getattr(CredentialHandler, method)


@pytest.mark.parametrize("ctype", list(CredentialType))
def test_every_type_has_a_complete_row(ctype: CredentialType) -> None:
    kind = KINDS[ctype]
    assert kind.type is ctype
    assert kind_of(ctype.value) is kind
    assert kind.lookup, "say what the lookup column holds"
    assert isinstance(kind.broker_account, BrokerLogin)
    if kind.provisioned:
        assert kind.thingsboard_name in {t.value for t in tb.TbCredentialsType}
        assert kind.reissue, "what a repeat presenting another credential is told"
    else:
        assert kind.reissue is None
    if not kind.rotatable:
        assert kind.not_rotated, "why it is not rotated"


@pytest.mark.parametrize("ctype", list(CredentialType))
def test_every_type_has_a_handler_doing_what_its_row_says(ctype: CredentialType) -> None:
    h = HANDLERS[ctype]
    assert h.type is ctype
    assert handler(ctype.value) is h
    assert h.kind is KINDS[ctype]
    provisioned = KINDS[ctype].provisioned
    for method in ("issue", "reissue_problem", "chosen_value"):
        assert overrides(h, method) == provisioned, method
    assert overrides(h, "rotate") == KINDS[ctype].rotatable
    on_broker = KINDS[ctype].broker_account is not BrokerLogin.NONE
    for method in ("answers_to", "secret_matches"):
        assert overrides(h, method) == on_broker, method


def test_thingsboard_names_are_one_to_one() -> None:
    assert set(TB_TYPES) == set(tb.TbCredentialsType)
    assert set(TB_NAMES) == set(PROVISIONABLE)
    assert all(TB_TYPES[TB_NAMES[t]] is t for t in PROVISIONABLE)


def test_the_derived_sets_are_the_ones_the_use_cases_had() -> None:
    a, m, x = CredentialType.ACCESS_TOKEN, CredentialType.MQTT_BASIC, CredentialType.X509
    assert (a, m, x) == PROVISIONABLE
    assert (a, m) == ROTATABLE
    assert (a, m, x) == REVOCABLE
    assert {a, m} == broker.BROKER_TYPES


def test_a_type_without_a_use_refuses_it() -> None:
    with pytest.raises(TypeError, match="lorawan credentials are not rotated"):
        asyncio.run(
            HANDLERS[CredentialType.LORAWAN].rotate(
                cast(Any, None), credential=cast(Any, None), serial="S", active=[], sealer=None
            )
        )


class _Credentials:
    """What rotation asks of the unit of work's credentials."""

    def __init__(self) -> None:
        self.added: list[dict[str, Any]] = []

    async def client_id(self, credential_id: uuid.UUID) -> str | None:
        return "bound-client"

    async def add(self, credential: Credential, **columns: Any) -> None:
        self.added.append(columns)


def _provisioned_username() -> str:
    request = tb.ProvisionRequest("key", "secret", SERIAL, tb.TbCredentialsType.MQTT_BASIC)
    ctype = CredentialType.MQTT_BASIC
    job = Job(cast(Any, None), request, ctype, SERIAL, cast(Any, None), "http", "test", NOW)
    credential = Credential(uuid.uuid4(), uuid.uuid4(), ctype, NOW)
    issued = handler(ctype).issue(cast(Any, None), job, credential)
    assert isinstance(issued, Issued)
    assert isinstance(issued.value, dict)
    assert issued.lookup == issued.value["userName"]
    return issued.lookup or ""


def _rotated_username() -> str:
    ctype = CredentialType.MQTT_BASIC
    credentials = _Credentials()
    uow = cast(Any, type("Uow", (), {"credentials": credentials})())
    old = Credential(uuid.uuid4(), uuid.uuid4(), ctype, NOW)
    rotated = asyncio.run(
        handler(ctype).rotate(
            uow,
            credential=Credential(uuid.uuid4(), old.device_id, ctype, NOW),
            serial=SERIAL,
            active=[old],
            sealer=None,
        )
    )
    assert rotated.client_id == "bound-client"
    assert credentials.added[0]["lookup"] == rotated.username
    return rotated.username or ""


def test_provisioning_and_rotation_make_mqtt_user_names_by_one_rule(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """They were made two ways (a base32 suffix when provisioning, hex when rotating)."""
    monkeypatch.setattr(credential_kinds, "random_text", lambda n: "S" * n)
    expected = mqtt_username(SERIAL, "SSSSSSSS")
    assert expected == f"{SERIAL[:40]}-SSSSSSSS"
    assert _provisioned_username() == expected
    assert _rotated_username() == expected


def test_generated_mqtt_user_names_look_alike() -> None:
    shape = re.compile(re.escape(SERIAL[:40]) + "-[A-Z2-7]{8}")
    assert shape.fullmatch(_provisioned_username())
    assert shape.fullmatch(_rotated_username())
