"""What provisiond registered in The Things Stack, as `provisiond lorawan status` and
`provisiond devices show` report it (the registrar itself: integrations/tts/)."""

from __future__ import annotations

import uuid
from typing import Any

from provisiond.store.tts import TtsRecord
from provisiond.store.uow import UnitOfWork


def record_dict(r: TtsRecord, serial: str | None = None) -> dict[str, Any]:
    return {
        "device_id": str(r.device_id),
        "serial": serial,
        "application_id": r.application_id,
        "end_device_id": r.end_device_id,
        "dev_eui": r.dev_eui,
        "status": r.status,
        "origin": r.origin if r.status != "conflict" else None,  # not provisiond's
        "error": r.last_error,
        "foreign_end_device": (
            f"{r.foreign_application_id}/{r.foreign_end_device_id}"
            if r.foreign_end_device_id
            else None
        ),
        "updated_at": r.updated_at.isoformat(),
    }


async def tts_status(uow: UnitOfWork) -> dict[str, Any]:
    """What `provisiond lorawan status` shows: registered, failed (why), waiting for an
    operator (why), queued."""
    async with uow.read():
        records = await uow.tts.records()
        pending = await uow.tts.pending.listed()
        serials = await uow.tts.serials([*records, *(p[0] for p in pending)])
    return {
        "devices": [
            record_dict(r, serials.get(r.device_id))
            for r in sorted(records.values(), key=lambda r: r.end_device_id)
        ],
        "pending": [
            {
                "device_id": str(d),
                "serial": serials.get(d),
                "attempts": a,
                "error": e,
                "next_attempt_at": n.isoformat() if n else None,
            }
            for d, a, n, e in pending
        ],
    }


async def tts_registration(uow: UnitOfWork, device_id: uuid.UUID) -> dict[str, Any] | None:
    """The device's registration in The Things Stack, if provisiond made (or tried) one."""
    async with uow.read():
        record = (await uow.tts.records([device_id])).get(device_id)
    return record_dict(record) if record else None
