"""Deciding, for an MQTT broker that asks (EMQX's HTTP authentication and authorisation),
whether a client is a device and what it may touch.

- authentication: an access token as the user name (any password; ThingsBoard's
  convention), or MQTT basic credentials as issued (user name, password, and the client id
  they are bound to). A user name provisiond does not know is left to the broker's other
  authenticators ("ignore"); a known one with a wrong secret, a revoked credential or the
  wrong client id is refused ("deny").
- authorisation: a device may publish and subscribe under its own topic prefix only.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from provisiond.domain.broker import topic_prefix, topic_within
from provisiond.domain.credentials import Credential, CredentialType
from provisiond.services.hashing import hash_token, split_token, tokens_equal
from provisiond.store.uow import UnitOfWork


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


async def _by_username(uow: UnitOfWork, username: str, password: str | None,
                       client_id: str | None, *, check_secret: bool
                       ) -> tuple[Verdict, MqttDevice | None]:
    parts = split_token(username)
    if parts is not None:  # a token provisiond issued: its verifier is checked either way
        found = await uow.credentials.find_active_by_id(parts[0])
        if found is None or found[0].type is not CredentialType.ACCESS_TOKEN \
                or found[1] is None or not tokens_equal(found[1], hash_token(parts[1])):
            return Verdict.DENY, None  # revoked, or wrong: the shape is provisiond's
        return Verdict.ALLOW, await _device(uow, found[0])
    chosen = await uow.credentials.find_active_by_lookup(CredentialType.ACCESS_TOKEN,
                                                         hash_token(username))
    if chosen is not None:
        return Verdict.ALLOW, await _device(uow, chosen[0])
    basic = await uow.credentials.find_active_by_lookup(CredentialType.MQTT_BASIC, username)
    if basic is None:
        revoked = await uow.credentials.lookup_taken(CredentialType.MQTT_BASIC, username)
        return (Verdict.DENY if revoked else Verdict.IGNORE), None
    credential, secret_hash = basic
    bound = await uow.credentials.client_id(credential.id)
    if bound and client_id is not None and client_id != bound:
        return Verdict.DENY, None
    if check_secret and (password is None or secret_hash is None
                         or not tokens_equal(secret_hash, hash_token(password))):
        return Verdict.DENY, None
    return Verdict.ALLOW, await _device(uow, credential)


async def _device(uow: UnitOfWork, credential: Credential) -> MqttDevice | None:
    device = await uow.devices.find_by_id(credential.device_id)
    return (MqttDevice(device.id, device.serial, credential.id,
                       credential.first_used_at is None) if device else None)


async def authenticate(uow: UnitOfWork, *, username: str | None, password: str | None,
                       client_id: str | None, now: datetime
                       ) -> tuple[Verdict, MqttDevice | None]:
    """The verdict on a connecting client, and the device it is when allowed."""
    if not username:
        return Verdict.IGNORE, None
    async with uow.read():
        verdict, device = await _by_username(uow, username, password, client_id,
                                             check_secret=True)
    if verdict is Verdict.ALLOW and device is None:
        return Verdict.DENY, None  # the device was deleted meanwhile
    if device is not None and device.first_use:
        async with uow:
            await uow.credentials.mark_first_use(device.credential_id, now)
            await uow.commit()
    return verdict, device


async def authorise(uow: UnitOfWork, *, username: str | None, client_id: str | None,
                    topic: str, prefix_template: str) -> Verdict:
    """May this (already authenticated) client publish or subscribe to ``topic``?"""
    if not username:
        return Verdict.IGNORE
    async with uow.read():
        verdict, device = await _by_username(uow, username, None, client_id,
                                             check_secret=False)
    if verdict is not Verdict.ALLOW or device is None:
        return verdict
    allowed = topic_within(topic_prefix(prefix_template, device.device_id), topic)
    return Verdict.ALLOW if allowed else Verdict.DENY
