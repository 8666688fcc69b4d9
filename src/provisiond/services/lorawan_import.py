"""Blynk-style LoRaWAN static tokens: a CSV of ``Device EUI, Join EUI, Application Key`` and,
for LoRaWAN 1.1 devices, ``Network Key``.

Each row becomes a device whose serial is its DevEUI, tagged with its JoinEUI, with a LoRaWAN
credential holding the AppKey (and the NwkKey, if the row has one) sealed (services/sealing.py:
they must later be handed to a network server, so they are encrypted, not hashed), and its
TR005 QR code written to the credentials file. Header names are matched leniently (case,
spaces, underscores; AppEUI for Join EUI, AppKey for Application Key, NwkKey for Network Key).
EUIs are 16 hex digits and the keys 32, normalised to upper case; the Network Key column is
optional, and an empty cell in it means a LoRaWAN 1.0.x device. Like every import it is one
transaction, and a file with any problem imports nothing and lists every problem with its line.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import IO

from provisiond.domain.credentials import Credential, CredentialType
from provisiond.domain.device import Device, DeviceState
from provisiond.domain.events import EventType, NewEvent
from provisiond.domain.scope import Scope
from provisiond.errors import DeviceExists, Problem
from provisiond.protocols.codes import LoRaWanCode
from provisiond.services.devices import Resolver
from provisiond.services.ids import new_id
from provisiond.services.registration import (
    CredentialSink,
    ImportProblems,
    ImportResult,
    resolve_defaults,
)
from provisiond.services.sealing import Sealer
from provisiond.store.uow import UnitOfWork

TR005 = "lorawan-tr005"
_COLUMNS = {
    "deviceeui": "dev_eui",
    "deveui": "dev_eui",
    "joineui": "join_eui",
    "appeui": "join_eui",
    "applicationeui": "join_eui",
    "applicationkey": "app_key",
    "appkey": "app_key",
    "networkkey": "nwk_key",
    "nwkkey": "nwk_key",
}
_HEX = re.compile(r"[0-9A-Fa-f]+")


def _column_key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.strip().lstrip("\ufeff").lower())


def is_lorawan_header(line: str) -> bool:
    """A CSV header of LoRaWAN static tokens (DevEUI and AppKey columns)?"""
    try:
        header = next(csv.reader([line]))
    except (csv.Error, StopIteration):
        return False
    fields = {_COLUMNS.get(_column_key(h)) for h in header}
    return {"dev_eui", "app_key"} <= fields


@dataclass(frozen=True, slots=True)
class LoRaWanRow:
    line: int
    dev_eui: str
    join_eui: str
    app_key: str
    nwk_key: str | None = None  # LoRaWAN 1.1


def clean_hex(value: str, digits: int) -> str | None:
    """An EUI or key as written on labels and in files (spaces, dashes, colons, either
    case) in canonical form, or None when it is not ``digits`` hexadecimal digits."""
    value = value.strip().replace(" ", "").replace("-", "").replace(":", "")
    return value.upper() if len(value) == digits and _HEX.fullmatch(value) else None


_REQUIRED = (
    ("dev_eui", "Device EUI", 16),
    ("join_eui", "Join EUI", 16),
    ("app_key", "Application Key", 32),
)


def _checked(number: int, values: dict[str, str]) -> tuple[LoRaWanRow | None, list[Problem]]:
    """One row's cells, checked and normalised (None when any is wrong)."""
    problems: list[Problem] = []
    clean: dict[str, str] = {}
    for key, title, digits in _REQUIRED:
        value = clean_hex(values[key], digits)
        if value is None:
            problems.append(
                Problem(f"must be {digits} hexadecimal digits", field=title, line=number)
            )
        clean[key] = value or ""
    nwk_key = None
    if values.get("nwk_key"):
        nwk_key = clean_hex(values["nwk_key"], 32)
        if nwk_key is None:
            problems.append(
                Problem(
                    "must be 32 hexadecimal digits (or empty: a LoRaWAN 1.0.x device)",
                    field="Network Key",
                    line=number,
                )
            )
    if problems:
        return None, problems
    return LoRaWanRow(number, clean["dev_eui"], clean["join_eui"], clean["app_key"], nwk_key), []


def read_rows(stream: IO[bytes]) -> tuple[list[LoRaWanRow], list[Problem]]:
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="strict", newline="")
    rows: list[LoRaWanRow] = []
    problems: list[Problem] = []
    try:
        reader = csv.reader(text)
        header = next(reader, [])
        columns = {
            _COLUMNS[k]: i for i, h in enumerate(header) if (k := _column_key(h)) in _COLUMNS
        }
        problems += [
            Problem(f"there is no {title!r} column", line=1)
            for need, title, _digits in _REQUIRED
            if need not in columns
        ]
        if problems:
            return rows, problems
        seen: dict[str, int] = {}
        for number, cells in enumerate(reader, start=2):
            if not any(c.strip() for c in cells):
                continue
            row, wrong = _checked(
                number,
                {k: (cells[i].strip() if i < len(cells) else "") for k, i in columns.items()},
            )
            problems += wrong
            if row is None:
                continue
            first = seen.setdefault(row.dev_eui, number)
            if first != number:
                problems.append(
                    Problem(
                        f"{row.dev_eui} is also on line {first}", field="Device EUI", line=number
                    )
                )
                continue
            rows.append(row)
    except UnicodeDecodeError:
        problems.append(Problem("the file is not UTF-8 text"))
    except csv.Error as err:
        problems.append(Problem(f"not a readable CSV file: {err}"))
    return rows, problems


async def register_lorawan(  # noqa: PLR0913 - the import's context (uow, actor, now), its file, sink and options
    uow: UnitOfWork,
    *,
    stream: IO[bytes],
    sealer: Sealer,
    sink: CredentialSink,
    actor: str,
    now: datetime,
    group: str | None = None,
    model: str | None = None,
    profile: str | None = None,
    source: str = "",
) -> ImportResult:
    """Register every row of a LoRaWAN static-token file, or none of them."""
    rows, problems = read_rows(stream)
    if not problems and not rows:
        problems.append(Problem("the file has a header but no devices", line=2))
    async with uow:
        uow.conflicts_as(
            DeviceExists(
                "another import registered some of these DevEUIs at the "
                "same time; nothing was imported"
            )
        )
        group_obj, model_obj, profile_obj = await resolve_defaults(
            Resolver(uow, Scope.operator()),  # the command line's import: operator-wide
            group=group,
            model=model,
            profile=profile,
        )
        existing = await uow.bulk.existing_serials([r.dev_eui for r in rows])
        problems += [
            Problem(f"{r.dev_eui} is already registered", field="Device EUI", line=r.line)
            for r in rows
            if r.dev_eui in existing
        ]
        if problems:
            listed = ImportProblems(len(problems))
            for problem in problems:
                listed.add(problem)
            raise listed.error()
        event_id = await uow.events.add(
            NewEvent(  # every row goes to group_obj
                EventType.DEVICES_IMPORTED,
                now,
                actor,
                group_id=group_obj.id if group_obj else None,
                group_path=group_obj.path if group_obj else None,
                data={
                    "source": source,
                    "format": "lorawan",
                    "imported": len(rows),
                    "group": group,
                    "model": model,
                    "profile": profile,
                },
            )
        )
        for row in rows:
            device = Device(
                id=new_id(),
                serial=row.dev_eui,
                name=row.dev_eui,
                model=model_obj.name if model_obj else None,
                state=DeviceState.CLAIMED if group_obj else DeviceState.REGISTERED,
                group_id=group_obj.id if group_obj else None,
                group_path=group_obj.path if group_obj else None,
                owner_user_id=None,
                owner_email=None,
                created_at=now,
                updated_at=now,
                claimed_at=now if group_obj else None,
                tags={"join_eui": row.join_eui},
            )
            await uow.devices.add(
                device,
                model_id=model_obj.id if model_obj else None,
                registered_event_id=event_id,
                profile_id=profile_obj.id if profile_obj else None,
            )
            credential = Credential(new_id(), device.id, CredentialType.LORAWAN, now)
            await uow.credentials.add(
                credential, lookup=row.dev_eui, secret_sealed=sealer.seal(row.app_key)
            )
            if row.nwk_key is not None:
                await uow.tts.set_nwk_key(credential.id, sealer.seal(row.nwk_key))
            code = LoRaWanCode(row.join_eui, row.dev_eui, "00000000")
            sink.add_rows([(row.dev_eui, str(device.id), TR005, code.render())])
        sink.prepare()
        await uow.commit()
        sink.commit()
    claimed = len(rows) if group_obj else 0
    return ImportResult(event_id, len(rows), claimed, 0)


def peek_is_lorawan(first_lines: Iterable[bytes]) -> bool:
    for raw in first_lines:
        line = raw.decode("utf-8-sig", "replace").strip()
        if line:
            return is_lorawan_header(line)
    return False
