"""Deciding, for an MQTT broker that asks (EMQX's HTTP authentication and authorisation),
whether a client is a device and what it may touch.

- authentication: the user name names a credential as domain/broker.py says (a token's
  public half, a device's serial for a token it chose, an MQTT-basic user name); the
  password is its secret, and MQTT-basic credentials must come with the client id they are
  bound to. With ``token_as_username`` (ThingsBoard's convention) the user name is the token
  and any password goes. A user name provisiond does not know is left to the broker's other
  authenticators ("ignore"); a known one with a wrong secret, a revoked credential or the
  wrong client id is refused ("deny"). When several credentials answer to one name, the one
  issued first holds it — as for Mosquitto's accounts.
- authorisation: a device may publish and subscribe under its own topic prefix only.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from provisiond.domain.broker import topic_prefix, topic_within, username_digest
from provisiond.domain.credentials import BrokerLogin, kind_of, selector_credential, types_where
from provisiond.services.broker_names import holder, name_keys
from provisiond.services.credential_kinds import handler
from provisiond.services.hashing import split_token
from provisiond.store.integrations import BrokerCredential, RecordedAccount
from provisiond.store.uow import UnitOfWork

# the types whose lookup is a broker user name (MQTT basic)
BASIC_TYPES = types_where(lambda k: k.broker_account is BrokerLogin.BASIC)


class Verdict(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    IGNORE = "ignore"  # not provisiond's to decide


@dataclass(frozen=True, slots=True)
class MqttDevice:
    device_id: uuid.UUID
    serial: str
    credential_id: uuid.UUID
    first_use: bool = False  # the credential had never been used


@dataclass(frozen=True, slots=True)
class Asker:
    """What the broker sends about a client, and how its user names are read."""

    username: str
    client_id: str
    token_as_username: bool = False


def _secret_matches(c: BrokerCredential, password: str | None, token_as_username: bool) -> bool:
    """Whether ``password`` is the credential's secret (constant time)."""
    return handler(c.type).secret_matches(c, password, token_as_username=token_as_username)


async def _provisionds(uow: UnitOfWork, name: str) -> bool:
    """Whether a name no active credential holds is still provisiond's to refuse: a token's
    shape, or an MQTT user name it issued once."""
    if selector_credential(name) is not None or split_token(name) is not None:
        return True
    for ctype in BASIC_TYPES:
        if await uow.credentials.lookup_taken(ctype, name):
            return True
    return False


async def _identify(uow: UnitOfWork, asker: Asker) -> tuple[Verdict, BrokerCredential | None]:
    """The credential the client names (its binding checked), or the verdict without one."""
    found = await uow.broker.claimants(
        name_keys([asker.username], token_as_username=asker.token_as_username), sealed_only=False
    )
    held = holder(found, asker.username, token_as_username=asker.token_as_username)
    if held is None:
        provisionds = await _provisionds(uow, asker.username)
        return (Verdict.DENY if provisionds else Verdict.IGNORE), None
    if (
        kind_of(held.type).broker_account is BrokerLogin.BASIC
        and held.client_id
        and asker.client_id != held.client_id
    ):
        return Verdict.DENY, None
    return Verdict.ALLOW, held


async def authenticate(
    uow: UnitOfWork,
    *,
    asker: Asker,
    password: str | None,
    now: datetime,
    keep_name: Callable[[str], str] | None = None,
) -> tuple[Verdict, MqttDevice | None]:
    """The verdict on a connecting client, and the device it is when allowed.

    ``keep_name`` (when provisiond ends EMQX sessions, integrations/emqx/sessions.py): how to
    record the user name of a credential used for the first time — sealed if it is a token
    — in the transaction that marks the first use, so that a credential revoked before any
    background round recorded it still has its sessions found."""
    if not asker.username:
        return Verdict.IGNORE, None
    async with uow.read():
        verdict, held = await _identify(uow, asker)
    if held is None:
        return verdict, None
    if not _secret_matches(held, password, asker.token_as_username):
        return Verdict.DENY, None
    device = MqttDevice(held.device_id, held.serial, held.credential_id, held.first_used_at is None)
    if device.first_use:
        async with uow:
            await uow.credentials.mark_first_use(device.credential_id, now)
            if keep_name is not None:
                await uow.broker.record(
                    [
                        RecordedAccount(
                            username_digest(asker.username),
                            held.device_id,
                            held.credential_id,
                            keep_name(asker.username),
                        )
                    ],
                    now,
                )
            await uow.commit()
    return Verdict.ALLOW, device


async def authorise(uow: UnitOfWork, *, asker: Asker, topic: str, prefix_template: str) -> Verdict:
    """May this (already authenticated) client publish or subscribe to ``topic``?"""
    if not asker.username:
        return Verdict.IGNORE
    async with uow.read():
        verdict, held = await _identify(uow, asker)
    if held is None:
        return verdict
    allowed = topic_within(topic_prefix(prefix_template, held.device_id), topic)
    return Verdict.ALLOW if allowed else Verdict.DENY
