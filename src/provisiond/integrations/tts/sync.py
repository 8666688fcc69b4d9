"""Keeping The Things Stack in step with claimed LoRaWAN devices.

A device is wanted in The Things Stack while it is claimed and has an active LoRaWAN
credential (DevEUI, JoinEUI and AppKey — and for LoRaWAN 1.1 a NwkKey — from a static-token
import). Events about a device (claimed, released, deleted, credentials issued or revoked,
imported) queue it (``pending_work`` kind ``tts``); :meth:`TtsSync.apply_pending` then
compares what is wanted with what provisiond registered (``tts_devices``) and:

- registers it: Identity Server, then Join, Network and Application Servers (every call
  idempotent; an existing Identity Server record is updated only when it is provisiond's);
- removes it (released or deleted): Application, Network, Join, then Identity Server — only
  when the end device is provisiond's (its mark, read at removal time); someone else's is
  left, and a ``lorawan.removal-skipped`` event says why;
- replaces it when its DevEUI changed (swapped hardware): the old end device is removed, the
  new one registered; provisiond's device and history stay.

Whose an end device is: integrations/tts/registrar.py. An end device provisiond did not create
holding the device's ID or DevEUI puts the device in ``conflict``: it waits, with the reason
(``provisiond lorawan status``, ``provisiond devices show``, a ``lorawan.conflict`` event),
until an operator deletes that end device in The Things Stack (then ``provisiond lorawan
sync``) or adopts it (:meth:`TtsSync.adopt`). It is not retried on its own.

A failure the server may get over (no answer, 429, 5xx) is retried with backoff. Any other
(a refused field, a missing right or application) rolls back what this attempt created,
records the device as failed with the reason and writes a ``lorawan.failed`` event: no
half-registered device is left behind.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from provisiond.domain.events import EventType, NewEvent
from provisiond.domain.serials import parse_serial
from provisiond.domain.tts import EndDevice, NetworkSettings, end_device_id
from provisiond.errors import AdoptionRefused, TtsUnavailable
from provisiond.integrations.tts.adoption import adoptable, adoption_target, check_adoptable
from provisiond.integrations.tts.registrar import (
    Foreign,
    Permanent,
    Registrar,
    Transient,
    TtsClient,
)
from provisiond.services.broker_keeper import retry_delay
from provisiond.services.sealing import Sealer
from provisiond.store.tts import LorawanDevice, TtsRecord
from provisiond.store.uow import UnitOfWork

__all__ = ["Addresses", "TtsClient", "TtsReport", "TtsSync"]
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Addresses:
    network_server: str
    application_server: str
    join_server: str


@dataclass
class TtsReport:
    registered: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    retrying: dict[str, str] = field(default_factory=dict)
    waiting: dict[str, str] = field(default_factory=dict)  # conflict: for an operator
    skipped: dict[str, str] = field(default_factory=dict)  # not removed: not provisiond's

    def add(self, other: TtsReport) -> None:
        self.registered += other.registered
        self.removed += other.removed
        for mine, theirs in (
            (self.failed, other.failed),
            (self.retrying, other.retrying),
            (self.waiting, other.waiting),
            (self.skipped, other.skipped),
        ):
            mine |= theirs

    def as_dict(self) -> dict[str, Any]:
        return {
            "registered": self.registered,
            "removed": self.removed,
            "failed": self.failed,
            "retrying": self.retrying,
            "waiting": self.waiting,
            "skipped": self.skipped,
        }


@dataclass
class _Step:
    """What one device's pass decided: its new record and the events to write with it."""

    record: TtsRecord | None
    events: list[NewEvent] = field(default_factory=list)
    removing: bool = False


def _stale(record: TtsRecord, end_device: EndDevice | None) -> bool:
    return (
        end_device is None
        or record.end_device_id != end_device.device_id
        or record.application_id != end_device.application_id
    )


def _needs_registration(record: TtsRecord | None) -> bool:
    # a legacy record: registered before end devices were marked; registering marks it
    return record is None or record.status != "registered" or record.origin == "legacy"


class TtsSync:
    def __init__(
        self,
        uow: Callable[[], UnitOfWork],
        client: TtsClient,
        sealer: Sealer,
        defaults: NetworkSettings,
        addresses: Addresses,
        clock: Callable[[], datetime],
    ) -> None:
        self._uow = uow
        self._registrar = Registrar(client)
        self._sealer = sealer
        self._defaults = defaults
        self._addresses = addresses
        self._clock = clock
        self._busy = asyncio.Lock()

    def _end_device(self, d: LorawanDevice, record: TtsRecord | None) -> EndDevice:
        network = NetworkSettings.from_json(d.profile_network).over(self._defaults)
        missing = network.missing()
        if missing:
            raise Permanent(
                "no " + ", ".join(missing) + " for this device: set them on its "
                "profile (provisiond profiles create … --tts-application, "
                "--frequency-plan) or as tts__* settings"
            )
        if not d.join_eui or not d.app_key_sealed:
            raise Permanent(
                "the device has no JoinEUI or AppKey (import it from a LoRaWAN static-token file)"
            )
        nwk_key = None
        if network.needs_nwk_key:
            if not d.nwk_key_sealed:
                raise Permanent(
                    f"LoRaWAN 1.1 ({network.lorawan_version}) needs the device's NwkKey as "
                    "well as its AppKey, and provisiond has none: import it with a Network "
                    "Key column, give it with `provisiond lorawan replace … --nwk-key-stdin`, "
                    "or set the profile's LoRaWAN version to the device's 1.0.x"
                )
            nwk_key = self._sealer.unseal(d.nwk_key_sealed)
        application_id = network.application_id or ""
        target = end_device_id(d.dev_eui)
        if (
            record is not None
            and record.origin == "adopted"
            and record.dev_eui == d.dev_eui
            and record.application_id == application_id
        ):
            target = record.end_device_id  # adopted under the ID it had
        return EndDevice(
            application_id=application_id,
            device_id=target,
            dev_eui=d.dev_eui,
            join_eui=d.join_eui,
            app_key=self._sealer.unseal(d.app_key_sealed),
            name=d.name,
            serial=d.serial,
            network=network,
            network_server_address=self._addresses.network_server,
            application_server_address=self._addresses.application_server,
            join_server_address=self._addresses.join_server,
            owner=d.device_id,
            nwk_key=nwk_key,
        )

    async def apply_pending(self, limit: int = 100) -> int:
        """Bring up to ``limit`` queued devices in step; how many were handled."""
        async with self._busy:
            now = self._clock()
            async with self._uow().read() as uow:
                device_ids = await uow.tts.pending.due(now, limit)
            if not device_ids:
                return 0
            report = await self._apply(device_ids)
            return len(device_ids) - len(report.retrying)

    async def sync_all(self) -> TtsReport:
        """Queue every claimed LoRaWAN device and every registered one, and apply them
        (devices waiting for an operator are looked at again too)."""
        async with self._uow() as uow:
            ids = set(await uow.tts.claimed_lorawan_ids()) | set(await uow.tts.records())
            await uow.tts.pending.mark(ids)
            await uow.commit()
        report = TtsReport()
        async with self._busy:
            pending = sorted(ids)
            for start in range(0, len(pending), 100):
                report.add(await self._apply(pending[start : start + 100]))
        return report

    async def _apply(self, device_ids: list[uuid.UUID]) -> TtsReport:
        async with self._uow().read() as uow:
            wanted = await uow.tts.lorawan_devices(device_ids)
            records = await uow.tts.records(device_ids)
        report = TtsReport()
        for device_id in device_ids:
            await self._apply_one(device_id, wanted.get(device_id), records.get(device_id), report)
        return report

    async def _apply_one(
        self,
        device_id: uuid.UUID,
        d: LorawanDevice | None,
        record: TtsRecord | None,
        report: TtsReport,
    ) -> None:
        now = self._clock()
        want = d if d is not None and d.state == "claimed" else None
        key = str(device_id)
        step = _Step(record)
        try:
            end_device = self._end_device(want, record) if want is not None else None
            if record is not None and _stale(record, end_device):
                await self._retire(record, d, step, report, now)
            if end_device is not None and _needs_registration(step.record):
                await self._register(end_device, record, step, report, now)
        except Transient as err:
            report.retrying[key] = str(err)
            async with self._uow() as uow:
                tries = await uow.tts.pending.attempts([device_id])
                await uow.tts.pending.failed(
                    device_id, str(err), now + retry_delay(tries.get(device_id, 0))
                )
                await uow.commit()
            log.warning("The Things Stack: %s", err)
            return
        except Permanent as err:
            report.failed[key] = str(err)
            self._failed(err, device_id, d, want, record, step, now)
        async with self._uow() as uow:
            if step.record is None:
                await uow.tts.forget(device_id)
            elif step.record is not record:
                await uow.tts.save(step.record)
            device = await uow.devices.find_by_id(device_id) if step.events else None
            for event in step.events:  # the device's subtree, as it is now
                await uow.events.add(
                    replace(event, group_id=device.group_id, group_path=device.group_path)
                    if device is not None
                    else event
                )
            await uow.tts.pending.done([device_id])
            await uow.commit()

    async def _retire(
        self,
        record: TtsRecord,
        d: LorawanDevice | None,
        step: _Step,
        report: TtsReport,
        now: datetime,
    ) -> None:
        """The device no longer wants this end device: remove it if it is ours (a failed
        or waiting record's too: a roll-back may not have finished)."""
        step.removing = True
        skipped = await self._registrar.remove_own(
            record.application_id,
            record.end_device_id,
            record.device_id,
            legacy=record.origin == "legacy",
            serial=record.serial,
        )
        step.removing = False
        step.record = None
        if record.status != "registered":
            return
        ids = {"application_id": record.application_id, "end_device_id": record.end_device_id}
        key = str(record.device_id)
        if skipped is not None:
            report.skipped[key] = skipped
            step.events.append(
                self._event(
                    EventType.LORAWAN_REMOVAL_SKIPPED,
                    now,
                    record.device_id,
                    d,
                    {**ids, "reason": skipped},
                    serial=record.serial,
                )
            )
        else:
            report.removed.append(key)
            step.events.append(
                self._event(
                    EventType.LORAWAN_REMOVED, now, record.device_id, d, ids, serial=record.serial
                )
            )

    async def _register(
        self,
        end_device: EndDevice,
        record: TtsRecord | None,
        step: _Step,
        report: TtsReport,
        now: datetime,
    ) -> None:
        legacy = (
            record is not None
            and record.origin == "legacy"
            and record.end_device_id == end_device.device_id
        )
        try:
            done = await self._registrar.register(end_device, legacy=legacy)
        except Foreign as err:
            report.waiting[str(end_device.owner)] = str(err)
            self._conflict(err, end_device, record, step, now)
            return
        adopted = done.device_id != end_device_id(done.dev_eui) or (
            record is not None
            and record.origin == "adopted"
            and record.end_device_id == done.device_id
        )
        step.record = TtsRecord(
            end_device.owner,
            done.application_id,
            done.device_id,
            done.dev_eui,
            "registered",
            None,
            now,
            done.serial,
            "adopted" if adopted else "created",
        )
        step.events.append(
            self._event(
                EventType.LORAWAN_REGISTERED,
                now,
                end_device.owner,
                None,
                {"application_id": done.application_id, "end_device_id": done.device_id},
                serial=done.serial,
            )
        )
        report.registered.append(str(end_device.owner))

    def _conflict(
        self,
        err: Foreign,
        end_device: EndDevice,
        record: TtsRecord | None,
        step: _Step,
        now: datetime,
    ) -> None:
        """It waits for an operator; the event is written once per reason."""
        reason = str(err)[:500]
        step.record = TtsRecord(
            end_device.owner,
            end_device.application_id,
            end_device.device_id,
            end_device.dev_eui,
            "conflict",
            reason,
            now,
            end_device.serial,
            "created",
            err.application_id or None,
            err.end_device_id or None,
        )
        if record is None or record.status != "conflict" or record.last_error != reason:
            step.events.append(
                self._event(
                    EventType.LORAWAN_CONFLICT,
                    now,
                    end_device.owner,
                    None,
                    {
                        "application_id": end_device.application_id,
                        "end_device_id": end_device.device_id,
                        "foreign_application_id": err.application_id,
                        "foreign_end_device_id": err.end_device_id,
                        "reason": reason,
                    },
                    serial=end_device.serial,
                )
            )

    def _failed(
        self,
        err: Permanent,
        device_id: uuid.UUID,
        d: LorawanDevice | None,
        want: LorawanDevice | None,
        record: TtsRecord | None,
        step: _Step,
        now: datetime,
    ) -> None:
        error = str(err)[:500]
        step.record = None
        if step.removing and record is not None:  # still there: keep it, with the reason
            step.record = replace(record, last_error=error, updated_at=now)
        elif want is not None:  # remembered as failed, with the reason, until it changes
            network = NetworkSettings.from_json(want.profile_network).over(self._defaults)
            step.record = TtsRecord(
                device_id,
                network.application_id or "",
                end_device_id(want.dev_eui),
                want.dev_eui,
                "failed",
                error,
                now,
                want.serial,
            )
        step.events.append(
            self._event(EventType.LORAWAN_FAILED, now, device_id, d, {"error": error})
        )

    async def adopt(self, *, serial: str, actor: str) -> dict[str, Any]:
        """An operator's decision: provisiond takes over the end device in The Things Stack
        that holds this device's ID or DevEUI (marks it, then registers it as its own).
        Refused when there is none, or it is provisiond's already, or it cannot be this
        device's (another application, other EUIs, no room for the mark)."""
        serial = parse_serial(serial)
        async with self._busy:
            async with self._uow().read() as uow:
                device_id, group_id, d, record = await adoptable(uow, serial)
            try:
                end_device = adoption_target(serial, self._end_device(d, record), record)
            except Permanent as err:
                raise AdoptionRefused(f"{serial}: {err}") from err
            try:
                found = check_adoptable(
                    serial,
                    end_device,
                    await self._registrar.read(end_device.application_id, end_device.device_id),
                )
                await self._registrar.mark(end_device, found)
            except (Transient, Permanent) as err:
                raise TtsUnavailable(f"{serial}: {err}") from err
            now = self._clock()
            async with self._uow() as uow:
                await uow.tts.save(
                    TtsRecord(
                        device_id,
                        end_device.application_id,
                        end_device.device_id,
                        d.dev_eui,
                        "failed",
                        "adopted: being registered as provisiond's",
                        now,
                        serial,
                        "adopted",
                    )
                )
                await uow.events.add(
                    NewEvent(
                        EventType.LORAWAN_ADOPTED,
                        now,
                        actor,
                        device_id=device_id,
                        serial=serial,
                        group_id=group_id,
                        data={
                            "application_id": end_device.application_id,
                            "end_device_id": end_device.device_id,
                            "attributes_before": dict(found.attributes),
                        },
                    )
                )
                await uow.tts.pending.mark([device_id])
                await uow.commit()
            report = await self._apply([device_id])
        key = str(device_id)
        status = next(
            (
                name
                for name, found in (
                    ("registered", report.registered),
                    ("retrying", report.retrying),
                    ("waiting", report.waiting),
                )
                if key in found
            ),
            "failed",
        )
        error = {**report.failed, **report.retrying, **report.waiting}.get(key)
        return {
            "serial": serial,
            "application_id": end_device.application_id,
            "end_device_id": end_device.device_id,
            "status": status,
            "error": error,
        }

    @staticmethod
    def _event(
        kind: EventType,
        now: datetime,
        device_id: uuid.UUID,
        d: LorawanDevice | None,
        data: dict[str, Any],
        serial: str | None = None,
    ) -> NewEvent:
        return NewEvent(
            kind,
            now,
            "provisiond",
            device_id=device_id,
            serial=(d.serial if d else None) or serial,
            data=data,
        )
