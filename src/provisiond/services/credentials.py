"""A device's credentials after registration: list, rotate, revoke.

Rotation issues a fresh credential (an access token, or MQTT basic with a new user name
and password and the same client id; by default the kind the device has) and revokes the
access tokens and MQTT credentials it had, in one transaction; the new secret is in the
answer only. Revocation ends every credential a device
connects with (LoRaWAN root keys stay: they are the radio's identity, not a login). The
broker's accounts follow both through the outbox (integrations/mosquitto_dynsec/keeper.py).
"""

from __future__ import annotations

from datetime import datetime

from provisiond.domain.credentials import KINDS, ROTATABLE, Credential, CredentialType
from provisiond.domain.device import Device
from provisiond.domain.events import EventType, NewEvent
from provisiond.domain.scope import Scope
from provisiond.domain.serials import parse_serial
from provisiond.domain.users import Role
from provisiond.errors import InvalidInput, Problem
from provisiond.services.credential_kinds import HANDLERS, Rotated
from provisiond.services.devices import device_in_scope
from provisiond.services.ids import new_id
from provisiond.services.lorawan_import import clean_hex
from provisiond.services.scoping import require
from provisiond.services.sealing import Sealer
from provisiond.store.certificates import RevocationReason
from provisiond.store.uow import UnitOfWork


async def rotate_credentials(
    uow: UnitOfWork,
    *,
    scope: Scope,
    serial: str,
    kind: CredentialType | None,
    actor: str,
    now: datetime,
    sealer: Sealer | None = None,
) -> Rotated:
    """A new credential for the device; its active token and MQTT credentials are revoked.
    Installers may (re-commissioning a device in the field), within their subtree."""
    serial = parse_serial(serial)
    require(scope, Role.INSTALLER, "rotating credentials")
    if kind is not None and not KINDS[kind].rotatable:
        message = f"{kind.value} credentials are not rotated here: {KINDS[kind].not_rotated}"
        raise InvalidInput(message, problems=[Problem(message, field="type")])
    async with uow:
        device = await device_in_scope(uow, scope, serial)
        held = await uow.credentials.for_device(device.id)
        active = [c for c in held if c.revoked_at is None and c.type in ROTATABLE]
        kind = kind or (active[-1].type if active else CredentialType.ACCESS_TOKEN)
        credential = Credential(new_id(), device.id, kind, now)
        rotated = await HANDLERS[kind].rotate(
            uow, credential=credential, serial=serial, active=active, sealer=sealer
        )
        # one MQTT identity at a time, whichever kind it was
        await _revoke(uow, device, active, "rotated", RevocationReason.SUPERSEDED, actor, now)
        await uow.events.add(
            NewEvent(
                EventType.CREDENTIALS_ISSUED,
                now,
                actor,
                device_id=device.id,
                serial=serial,
                group_id=device.group_id,
                data={"type": kind.value, "credential_id": str(credential.id), "rotated": True},
            )
        )
        await uow.commit()
    return rotated


async def revoke_credentials(
    uow: UnitOfWork, *, scope: Scope, serial: str, actor: str, now: datetime
) -> list[Credential]:
    """Revoke every active credential the device connects with; the ones revoked."""
    serial = parse_serial(serial)
    require(scope, Role.ADMIN, "revoking credentials")
    async with uow:
        device = await device_in_scope(uow, scope, serial)
        held = await uow.credentials.for_device(device.id)
        revoked = [c for c in held if c.revoked_at is None and KINDS[c.type].revoke]
        await _revoke(uow, device, revoked, "revoked", RevocationReason.UNSPECIFIED, actor, now)
        await uow.commit()
    return revoked


async def _revoke(
    uow: UnitOfWork,
    device: Device,
    credentials: list[Credential],
    why: str,
    reason: RevocationReason,
    actor: str,
    now: datetime,
) -> None:
    """Revoke ``credentials`` of ``device`` in the open transaction, with their event."""
    for c in credentials:
        await uow.credentials.revoke(c.id, now, reason)
    if credentials:
        await uow.events.add(
            NewEvent(
                EventType.CREDENTIALS_REVOKED,
                now,
                actor,
                device_id=device.id,
                serial=device.serial,
                group_id=device.group_id,
                data={"credential_ids": [str(c.id) for c in credentials], "reason": why},
            )
        )


async def replace_lorawan_keys(  # noqa: PLR0913 - a use case's context (uow, scope, actor, now) and the LoRaWAN keys
    uow: UnitOfWork,
    *,
    scope: Scope,
    serial: str,
    dev_eui: str,
    join_eui: str,
    app_key: str,
    actor: str,
    now: datetime,
    sealer: Sealer,
    nwk_key: str | None = None,
) -> Credential:
    """Swapped hardware: the device's LoRaWAN identity becomes this DevEUI, JoinEUI and
    AppKey (and NwkKey, for LoRaWAN 1.1) — the old one is revoked; provisiond's device keeps
    its serial and history, and The Things Stack gets the new end device in place of the old
    one."""
    serial = parse_serial(serial)
    require(scope, Role.ADMIN, "replacing LoRaWAN keys")
    given = [("dev_eui", dev_eui, 16), ("join_eui", join_eui, 16), ("app_key", app_key, 32)]
    if nwk_key is not None:
        given.append(("nwk_key", nwk_key, 32))
    cleaned = {name: clean_hex(value, digits) for name, value, digits in given}
    problems = [
        Problem(f"must be {digits} hexadecimal digits", name)
        for name, _value, digits in given
        if cleaned[name] is None
    ]
    if problems:
        raise InvalidInput("; ".join(str(p) for p in problems), problems=problems)
    new_eui, new_join, new_key = (
        cleaned["dev_eui"] or "",
        cleaned["join_eui"] or "",
        cleaned["app_key"] or "",
    )
    async with uow:
        device = await device_in_scope(uow, scope, serial)
        if await uow.credentials.lookup_taken(CredentialType.LORAWAN, new_eui):
            raise InvalidInput(
                f"DevEUI {new_eui} is (or was) another LoRaWAN credential's",
                problems=[Problem("is already in use", "dev_eui")],
            )
        held = await uow.credentials.for_device(device.id)
        old = [c for c in held if c.type is CredentialType.LORAWAN and c.revoked_at is None]
        for c in old:
            await uow.credentials.revoke(c.id, now)
        credential = Credential(new_id(), device.id, CredentialType.LORAWAN, now)
        await uow.credentials.add(credential, lookup=new_eui, secret_sealed=sealer.seal(new_key))
        if cleaned.get("nwk_key"):
            await uow.tts.set_nwk_key(credential.id, sealer.seal(cleaned["nwk_key"] or ""))
        await uow.devices.set_tag(device, "join_eui", new_join)
        await uow.events.add(
            NewEvent(
                EventType.CREDENTIALS_ISSUED,
                now,
                actor,
                device_id=device.id,
                serial=serial,
                group_id=device.group_id,
                data={
                    "type": CredentialType.LORAWAN.value,
                    "credential_id": str(credential.id),
                    "dev_eui": new_eui,
                    "replaced": [str(c.id) for c in old],
                },
            )
        )
        await uow.commit()
    return credential
