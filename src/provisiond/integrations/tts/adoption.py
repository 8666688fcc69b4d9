"""Adoption: an operator's explicit decision that provisiond takes over an end device in The
Things Stack it did not create — the one holding the device's ID or DevEUI (what a
``conflict`` names). These are the checks before provisiond writes its mark on it; the
taking over itself is :meth:`provisiond.integrations.tts.sync.TtsSync.adopt`.

Refused, with the reason: an unknown device, one that is not claimed or has no LoRaWAN keys
(it would not be registered at all), an end device that is not there or is provisiond's
already (nothing to adopt), one in another application than the device's profile's, one
with other EUIs (another radio), and one with no room left for the mark (The Things Stack
allows 10 attributes).
"""

from __future__ import annotations

import uuid
from dataclasses import replace

from provisiond.domain.tts import MAX_ATTRIBUTES, EndDevice, is_ours
from provisiond.errors import (
    AdoptionRefused,
    DeviceNotFound,
    InvalidTransition,
    NothingToAdopt,
)
from provisiond.integrations.tts.protocol import StoredEndDevice
from provisiond.store.tts import LorawanDevice, TtsRecord
from provisiond.store.uow import UnitOfWork


async def adoptable(
    uow: UnitOfWork, serial: str
) -> tuple[uuid.UUID, uuid.UUID | None, LorawanDevice, TtsRecord | None]:
    """The device (id, group), its LoRaWAN keys and its record; in a read transaction."""
    device = await uow.devices.find_by_serial(serial)
    if device is None:
        raise DeviceNotFound(f"no device {serial}", serial=serial)
    d = (await uow.tts.lorawan_devices([device.id])).get(device.id)
    record = (await uow.tts.records([device.id])).get(device.id)
    if d is None:
        raise InvalidTransition(
            f"{serial} has no LoRaWAN keys: only LoRaWAN devices are registered in The Things Stack"
        )
    if d.state != "claimed":
        raise InvalidTransition(
            f"{serial} is not claimed: provisiond registers (and adopts) "
            "the end devices of claimed devices only"
        )
    return device.id, device.group_id, d, record


def adoption_target(serial: str, end_device: EndDevice, record: TtsRecord | None) -> EndDevice:
    """The device as it would be registered, under the ID of the end device in its way:
    the one its conflict names, else the ID provisiond uses."""
    if record is None or record.status != "conflict" or not record.foreign_end_device_id:
        return end_device
    if record.foreign_application_id != end_device.application_id:
        raise AdoptionRefused(
            f"{serial}: the end device in its way, {record.foreign_end_device_id}, is in "
            f"application {record.foreign_application_id}, and provisiond registers {serial} "
            f"in {end_device.application_id} (its profile's): delete it there, or give the "
            "profile that application"
        )
    return replace(end_device, device_id=record.foreign_end_device_id)


def check_adoptable(
    serial: str, end_device: EndDevice, found: StoredEndDevice | None
) -> StoredEndDevice:
    """``found`` (the Identity Server's record at ``end_device``'s ID), if it may be
    adopted."""
    where = f"end device {end_device.device_id} in application {end_device.application_id}"
    if found is None:
        raise NothingToAdopt(
            f"{serial}: the Identity Server has no {where} to adopt (one "
            "in another server's way must be deleted there); provisiond "
            "registers the device itself (`provisiond lorawan sync`)"
        )
    if is_ours(found.attributes, end_device.owner):
        raise NothingToAdopt(f"{serial}: {where} is provisiond's already")
    if (found.dev_eui, found.join_eui) != (end_device.dev_eui, end_device.join_eui):
        raise AdoptionRefused(
            f"{serial}: {where} has DevEUI {found.dev_eui} and JoinEUI {found.join_eui}, the "
            f"device {end_device.dev_eui} and {end_device.join_eui}: it is another radio's; "
            "delete it in The Things Stack instead"
        )
    if len(end_device.attributes(found.attributes)) > MAX_ATTRIBUTES:
        raise AdoptionRefused(
            f"{serial}: {where} has {len(found.attributes)} attributes, and The Things Stack "
            f"allows {MAX_ATTRIBUTES}: remove one so provisiond can add its mark"
        )
    return found
