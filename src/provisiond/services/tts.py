"""Keeping The Things Stack in step with claimed LoRaWAN devices.

A device is wanted in The Things Stack while it is claimed and has an active LoRaWAN
credential (DevEUI, JoinEUI and AppKey from a static-token import). Events about a device
(claimed, released, deleted, credentials issued or revoked, imported) queue it
(``pending_work`` kind ``tts``); :meth:`TtsSync.apply_pending` then compares what is wanted
with what provisiond registered (``tts_devices``) and:

- registers it: Identity Server, then Join, Network and Application Servers (every call
  idempotent; an existing Identity Server record is updated);
- removes it (released or deleted): Application, Network, Join, then Identity Server;
- replaces it when its DevEUI changed (swapped hardware): the old end device is removed, the
  new one registered; provisiond's device and history stay.

A failure the server may get over (no answer, 429, 5xx) is retried with backoff. Any other
(a refused field, a missing right or application) rolls back what this attempt created,
records the device as failed with the reason (``provisiond devices show``, the device page)
and writes a ``lorawan.failed`` event: no half-registered device is left behind.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from provisiond.domain.events import EventType, NewEvent
from provisiond.domain.tts import EndDevice, NetworkSettings, end_device_id
from provisiond.protocols import tts as api
from provisiond.services.broker import retry_delay
from provisiond.services.sealing import Sealer
from provisiond.store.tts import LorawanDevice, TtsRecord
from provisiond.store.uow import UnitOfWork

log = logging.getLogger(__name__)


class TtsClient(Protocol):
    async def call(self, call: api.Call) -> tuple[int | None, str]:
        """The status code (None: no answer) and a short text of what came back."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Addresses:
    network_server: str
    application_server: str
    join_server: str


class Permanent(Exception):
    """The Things Stack refused, and asking again will not help."""


class Transient(Exception):
    """No answer, or a failure The Things Stack may get over."""


@dataclass
class TtsReport:
    registered: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    retrying: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"registered": self.registered, "removed": self.removed,
                "failed": self.failed, "retrying": self.retrying}


class TtsSync:
    def __init__(self, uow: Callable[[], UnitOfWork], client: TtsClient, sealer: Sealer,
                 defaults: NetworkSettings, addresses: Addresses,
                 clock: Callable[[], datetime]) -> None:
        self._uow = uow
        self._client = client
        self._sealer = sealer
        self._defaults = defaults
        self._addresses = addresses
        self._clock = clock
        self._busy = asyncio.Lock()

    async def _send(self, call: api.Call, *, absent_ok: bool = False,
                    conflict_ok: bool = False) -> int:
        status, text = await self._client.call(call)
        if status is not None and 200 <= status < 300:
            return status
        if (absent_ok and status == 404) or (conflict_ok and status == 409):
            return status
        what = f"{call.method} {call.path}: " + (f"{status} {text}" if status
                                                else text or "no answer")
        raise Transient(what) if api.transient(status) else Permanent(what)

    def _end_device(self, d: LorawanDevice) -> EndDevice:
        network = NetworkSettings.from_json(d.profile_network).over(self._defaults)
        missing = network.missing()
        if missing:
            raise Permanent("no " + ", ".join(missing) + " for this device: set them on its "
                            "profile (provisiond profiles create … --tts-application, "
                            "--frequency-plan) or as tts__* settings")
        if not d.join_eui or not d.app_key_sealed:
            raise Permanent("the device has no JoinEUI or AppKey (import it from a "
                            "LoRaWAN static-token file)")
        return EndDevice(
            application_id=network.application_id or "", device_id=end_device_id(d.dev_eui),
            dev_eui=d.dev_eui, join_eui=d.join_eui,
            app_key=self._sealer.unseal(d.app_key_sealed), name=d.name, serial=d.serial,
            network=network, network_server_address=self._addresses.network_server,
            application_server_address=self._addresses.application_server,
            join_server_address=self._addresses.join_server)

    async def _register(self, device: EndDevice) -> None:
        """Register everywhere; on a permanent refusal, remove what this attempt made."""
        made = False
        try:
            created = await self._send(api.create_in_identity_server(device),
                                       conflict_ok=True)
            made = created != 409
            if created == 409:
                await self._send(api.update_in_identity_server(device))
            for call in api.register(device):
                await self._send(call)
        except Permanent as err:
            if made:
                try:
                    await self._remove(device.application_id, device.device_id)
                except (Permanent, Transient) as undo:
                    raise Permanent(f"{err}; rolling back failed too ({undo}): the next "
                                    "sync removes or completes it") from err
            raise

    async def _remove(self, application_id: str, device_id: str) -> None:
        for call in api.remove(application_id, device_id):
            await self._send(call, absent_ok=True)

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
        """Queue every claimed LoRaWAN device and every registered one, and apply them."""
        async with self._uow() as uow:
            ids = set(await uow.tts.claimed_lorawan_ids()) | set(await uow.tts.records())
            await uow.tts.pending.mark(ids)
            await uow.commit()
        report = TtsReport()
        async with self._busy:
            pending = sorted(ids)
            for start in range(0, len(pending), 100):
                part = await self._apply(pending[start:start + 100])
                report.registered += part.registered
                report.removed += part.removed
                report.failed |= part.failed
                report.retrying |= part.retrying
        return report

    async def _apply(self, device_ids: list[uuid.UUID]) -> TtsReport:
        async with self._uow().read() as uow:
            wanted = await uow.tts.lorawan_devices(device_ids)
            records = await uow.tts.records(device_ids)
        report = TtsReport()
        for device_id in device_ids:
            await self._apply_one(device_id, wanted.get(device_id), records.get(device_id),
                                  report)
        return report

    async def _apply_one(self, device_id: uuid.UUID, d: LorawanDevice | None,
                         record: TtsRecord | None, report: TtsReport) -> None:
        now = self._clock()
        want = d if d is not None and d.state == "claimed" else None
        key = str(device_id)
        events: list[NewEvent] = []
        new_record: TtsRecord | None = record
        removing = False
        try:
            end_device = self._end_device(want) if want is not None else None
            stale = record is not None and (
                end_device is None or record.end_device_id != end_device.device_id
                or record.application_id != end_device.application_id)
            if record is not None and stale:
                # a failed record too: its rollback may not have finished (404s are fine)
                removing = True
                await self._remove(record.application_id, record.end_device_id)
                removing = False
                if record.status == "registered":
                    events.append(self._event(EventType.LORAWAN_REMOVED, now, device_id, d, {
                        "application_id": record.application_id,
                        "end_device_id": record.end_device_id}))
                    report.removed.append(key)
                new_record = None
            if end_device is not None and (new_record is None
                                           or new_record.status != "registered"):
                await self._register(end_device)
                new_record = TtsRecord(device_id, end_device.application_id,
                                       end_device.device_id, end_device.dev_eui,
                                       "registered", None, now)
                events.append(self._event(EventType.LORAWAN_REGISTERED, now, device_id, d, {
                    "application_id": end_device.application_id,
                    "end_device_id": end_device.device_id}))
                report.registered.append(key)
        except Transient as err:
            report.retrying[key] = str(err)
            async with self._uow() as uow:
                tries = await uow.tts.pending.attempts([device_id])
                await uow.tts.pending.failed(device_id, str(err),
                                             now + retry_delay(tries.get(device_id, 0)))
                await uow.commit()
            log.warning("The Things Stack: %s", err)
            return
        except Permanent as err:
            report.failed[key] = str(err)
            new_record = None
            if removing and record is not None:  # still there: keep it, with the reason
                new_record = TtsRecord(record.device_id, record.application_id,
                                       record.end_device_id, record.dev_eui, record.status,
                                       str(err)[:500], now)
            elif want is not None:  # remembered as failed, with the reason, until it changes
                network = NetworkSettings.from_json(want.profile_network).over(self._defaults)
                new_record = TtsRecord(device_id, network.application_id or "",
                                       end_device_id(want.dev_eui), want.dev_eui, "failed",
                                       str(err)[:500], now)
            events.append(self._event(EventType.LORAWAN_FAILED, now, device_id, d,
                                      {"error": str(err)[:500]}))
        async with self._uow() as uow:
            if new_record is None:
                await uow.tts.forget(device_id)
            elif new_record is not record:
                await uow.tts.save(new_record)
            for event in events:
                await uow.events.add(event)
            await uow.tts.pending.done([device_id])
            await uow.commit()

    @staticmethod
    def _event(kind: EventType, now: datetime, device_id: uuid.UUID, d: LorawanDevice | None,
               data: dict[str, Any]) -> NewEvent:
        return NewEvent(kind, now, "provisiond", device_id=device_id,
                        serial=d.serial if d else None, data=data)


def record_dict(r: TtsRecord) -> dict[str, Any]:
    return {"device_id": str(r.device_id), "application_id": r.application_id,
            "end_device_id": r.end_device_id, "dev_eui": r.dev_eui, "status": r.status,
            "error": r.last_error, "updated_at": r.updated_at.isoformat()}


async def tts_status(uow: UnitOfWork) -> dict[str, Any]:
    """What `provisiond lorawan status` shows: registered, failed (why), waiting."""
    async with uow.read():
        records = await uow.tts.records()
        pending = await uow.tts.pending.listed()
    return {"devices": [record_dict(r) for r in sorted(records.values(),
                                                        key=lambda r: r.end_device_id)],
            "pending": [{"device_id": str(d), "attempts": a, "error": e,
                         "next_attempt_at": n.isoformat() if n else None}
                        for d, a, n, e in pending]}


async def tts_registration(uow: UnitOfWork, device_id: uuid.UUID) -> dict[str, Any] | None:
    """The device's registration in The Things Stack, if provisiond made (or tried) one."""
    async with uow.read():
        record = (await uow.tts.records([device_id])).get(device_id)
    return record_dict(record) if record else None
