"""Printable labels: one per device, with its QR code, serial, model and claim code.

Sheets for office printers (A4 3x8, US Letter 3x10) and single labels for label printers
(62 mm tape). The QR is drawn as vector rectangles at error correction level Q (a quarter of
the code may be scratched off and it still scans), with its quiet zone. Pages are written as
they fill (protocols/pdf.py), and devices are read a page of the listing at a time, so
memory stays flat however many labels are printed.
"""

from __future__ import annotations

import csv
import re
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import segno

from provisiond.domain.device import Device
from provisiond.domain.scope import Scope
from provisiond.domain.serials import parse_serial
from provisiond.errors import DeviceNotFound, InvalidInput, Problem
from provisiond.protocols import qr
from provisiond.protocols.codes import (
    Code,
    DeviceUrl,
    LoRaWanCode,
    MatterQr,
    PayloadError,
    SerialCode,
)
from provisiond.protocols.codes.matter import DISCOVERY as MATTER_DISCOVERY
from provisiond.protocols.codes.matter import FLOWS as MATTER_FLOWS
from provisiond.protocols.csv_cells import restore
from provisiond.protocols.pdf import MM, Page, StreamingPdf
from provisiond.services.codes import MakeOptions, make, public_url_of
from provisiond.services.devices import device_in_scope, list_devices
from provisiond.store.uow import UnitOfWork

QR_ERROR = qr.ERROR


@dataclass(frozen=True, slots=True)
class Sheet:
    name: str
    page_width: float  # points
    page_height: float
    columns: int
    rows: int
    label_width: float
    label_height: float
    left: float  # offset of the first label from the page's left edge
    top: float  # from the page's top edge
    gap_x: float = 0.0
    gap_y: float = 0.0
    outline: bool = True  # a faint cut guide around each label

    @property
    def per_page(self) -> int:
        return self.columns * self.rows


SHEETS = {
    # A4, 3 x 8 labels of 70 x 37 mm edge to edge (Avery 3474-style)
    "a4-3x8": Sheet("a4-3x8", 210 * MM, 297 * MM, 3, 8, 70 * MM, 37.125 * MM, 0, 0),
    # US Letter, 3 x 10 labels of 2.625 x 1 in (Avery 5160)
    "letter-3x10": Sheet("letter-3x10", 612, 792, 3, 10, 189, 72, 13.5, 36, gap_x=9),
    # one 62 x 29 mm label per page (Brother DK-11209)
    "single-62mm": Sheet(
        "single-62mm", 62 * MM, 29 * MM, 1, 1, 62 * MM, 29 * MM, 0, 0, outline=False
    ),
}
LABEL_FORMATS = ("url", "serial", "lorawan", "esp", "matter")
# Formats whose code carries a device secret provisiond does not store: the proof of
# possession (ESP), the setup passcode (Matter). They come from the manufacturing file.
SECRET_FORMATS = ("esp", "matter")
SECRETS_COLUMNS = {
    "esp": (
        "serial, pop (required); name (default PROV_ and the serial's last 6), "
        "transport (softap or ble), username (security 2)"
    ),
    "matter": (
        "serial, passcode, discriminator, vendor_id, product_id (required); flow "
        "(standard, user-intent, custom), discovery (ble, soft-ap, on-network, "
        "joined with +)"
    ),
}


@dataclass(frozen=True, slots=True)
class LabelOptions:
    sheet: str = "a4-3x8"
    code_format: str = "url"
    public_url: str | None = None  # url labels' base: the public_url setting
    join_eui: str = "0000000000000000"
    claim_codes: dict[str, str] | None = None  # serial -> claim code (from an import's file)
    device_codes: dict[str, Code] | None = None  # serial -> ESP or Matter code (--secrets)


def check_options(options: LabelOptions) -> Sheet:
    problems = []
    if options.sheet not in SHEETS:
        problems.append(
            Problem(
                f"{options.sheet!r} is not a sheet; use one of {', '.join(SHEETS)}", field="--sheet"
            )
        )
    if options.code_format not in LABEL_FORMATS:
        problems.append(
            Problem(
                f"{options.code_format!r} cannot be printed; use one of {', '.join(LABEL_FORMATS)}",
                field="--format",
            )
        )
    elif options.code_format in SECRET_FORMATS and options.device_codes is None:
        what = "proof of possession" if options.code_format == "esp" else "setup passcode"
        problems.append(
            Problem(
                f"{options.code_format} labels carry each device's {what}, a secret provisiond "
                f"does not store: give --secrets FILE, the manufacturing file with "
                f"{SECRETS_COLUMNS[options.code_format]}",
                field="--secrets",
            )
        )
    if problems:
        raise InvalidInput("; ".join(str(p) for p in problems), problems=problems)
    if options.code_format == "url":
        public_url_of(options.public_url)  # refused before anything is written
    return SHEETS[options.sheet]


def read_claim_codes(path: Path) -> dict[str, str]:
    """The claim codes in an import's credentials file (rows of type claim-code)."""
    codes: dict[str, str] = {}
    try:
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                if row.get("credential_type") == "claim-code" and row.get("serial"):
                    codes[restore(row["serial"])] = restore(row.get("secret") or "")
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        problem = Problem(f"cannot read {path}: {err}", field="--codes")
        raise InvalidInput(str(problem), problems=[problem]) from None
    return codes


def read_device_secrets(path: Path, code_format: str) -> dict[str, Code]:
    """The ESP or Matter code of each device in a manufacturing file (CSV with a header),
    checked whole: every problem is listed with its line, and nothing is printed if any."""
    if code_format not in SECRET_FORMATS:
        problem = Problem(
            f"--secrets is for esp and matter labels, not {code_format}", field="--secrets"
        )
        raise InvalidInput(str(problem), problems=[problem])
    codes: dict[str, Code] = {}
    seen: set[str] = set()
    problems: list[Problem] = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = [h.strip().lower() for h in next(reader, [])]
            needed = (
                ("serial", "pop")
                if code_format == "esp"
                else ("serial", "passcode", "discriminator", "vendor_id", "product_id")
            )
            missing = [c for c in needed if c not in header]
            if missing:
                problem = Problem(
                    f"{path}: no column {', '.join(missing)} (a {code_format} "
                    f"file has {SECRETS_COLUMNS[code_format]})",
                    line=1,
                    field="--secrets",
                )
                raise InvalidInput(str(problem), problems=[problem])
            for line, values in enumerate(reader, start=2):
                if not any(v.strip() for v in values):
                    continue
                row = {
                    k: (values[i].strip() if i < len(values) else "") for i, k in enumerate(header)
                }
                try:
                    serial = parse_serial(row["serial"])
                    if serial in seen:
                        raise ValueError(f"{serial} appears twice")
                    seen.add(serial)
                    codes[serial] = (
                        _esp_code(serial, row)
                        if code_format == "esp"
                        else _matter_code(serial, row)
                    )
                except (InvalidInput, ValueError) as err:
                    problems.append(Problem(str(err), line=line, field="--secrets"))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        problem = Problem(f"cannot read {path}: {err}", field="--secrets")
        raise InvalidInput(str(problem), problems=[problem]) from None
    if problems:
        shown = "; ".join(f"line {p.line}: {p.message}" for p in problems[:20])
        more = f" (and {len(problems) - 20} more)" if len(problems) > 20 else ""
        raise InvalidInput(f"{path}: {shown}{more}", problems=problems)
    return codes


def _esp_code(serial: str, row: dict[str, str]) -> Code:
    if not row.get("pop"):
        raise ValueError("pop is empty (the device's proof of possession)")
    return _made(
        "esp",
        serial,
        MakeOptions(
            esp_name=row.get("name") or None,
            transport=(row.get("transport") or "softap").lower(),
            pop=row["pop"],
            username=row.get("username", ""),
        ),
    )


_DISCOVERY_BITS = {name: bit for bit, name in MATTER_DISCOVERY.items()}


def _matter_code(serial: str, row: dict[str, str]) -> Code:
    def number(key: str, limit: int) -> int:
        try:
            value = int(row.get(key, ""), 0)
        except ValueError:
            raise ValueError(f"{key} {row.get(key)!r} is not a number") from None
        if not 0 <= value <= limit:
            raise ValueError(f"{key} {value} is out of range (0 to {limit})")
        return value

    flow_text = (row.get("flow") or "standard").lower()
    if flow_text not in MATTER_FLOWS:
        raise ValueError(f"flow {flow_text!r}: one of {', '.join(MATTER_FLOWS)}")
    discovery = 0
    for part in (row.get("discovery") or "ble").lower().replace("|", "+").split("+"):
        name = part.strip()
        if name not in _DISCOVERY_BITS:
            raise ValueError(
                f"discovery {name!r}: one of {', '.join(_DISCOVERY_BITS)} (joined with +)"
            )
        discovery |= _DISCOVERY_BITS[name]
    return _made(
        "matter",
        serial,
        MakeOptions(
            vendor_id=number("vendor_id", 0xFFFF),
            product_id=number("product_id", 0xFFFF),
            discriminator=number("discriminator", 0xFFF),
            passcode=number("passcode", 0x7FFFFFF),
            flow=MATTER_FLOWS.index(flow_text),
            discovery=discovery,
        ),
    )


def _made(code_format: str, serial: str, options: MakeOptions) -> Code:
    """The code `provisiond codes make` would make (every value checked), or ValueError
    with what is wrong, for the row's line."""
    try:
        return make(code_format, serial, options)
    except InvalidInput as err:
        raise ValueError("; ".join(p.message for p in err.problems) or str(err)) from None


def device_code(device: Device, options: LabelOptions) -> Code:
    """The code a device's label carries."""
    if options.code_format in SECRET_FORMATS:
        found = (options.device_codes or {}).get(device.serial)
        if found is None:
            problem = Problem(
                f"{device.serial} has no row in the --secrets file", field="--secrets"
            )
            raise InvalidInput(
                f"{problem}: print only the devices it lists (--serial-prefix, "
                "--tag, --group) or add the device",
                problems=[problem],
            )
        return found
    try:
        if options.code_format == "serial":
            return SerialCode(device.serial)
        if options.code_format == "lorawan":
            join_eui = device.tags.get("join_eui", options.join_eui)  # a LoRaWAN import's
            return LoRaWanCode.parse(
                LoRaWanCode(join_eui.upper(), device.serial, "00000000").render()
            )
        return DeviceUrl(public_url_of(options.public_url), device.serial)
    except PayloadError as err:
        raise InvalidInput(
            f"{device.serial}: {err.message} (LoRaWAN labels need the serial to be the DevEUI)",
            problems=[Problem(err.message, field=device.serial)],
        ) from None


_DARK_RUN = re.compile(rb"[\x01-\xff]+")


def qr_rects(
    matrix: list[bytes], x: float, y: float, size: float
) -> list[tuple[float, float, float, float]]:
    """The dark modules of a QR matrix, with its 4-module quiet zone, fitted in a ``size``
    square at (x, y), one rectangle per horizontal run."""
    module = size / (len(matrix) + 8)
    rects = []
    for r, row in enumerate(matrix):
        top = y + size - (r + 5) * module
        for run in _DARK_RUN.finditer(row):
            rects.append(
                (x + (run.start() + 4) * module, top, (run.end() - run.start()) * module, module)
            )
    return rects


class QrEncoder:
    """QR matrices for a run of labels. Choosing a code's mask (8 candidates, scored for
    readability) is three quarters of encoding it; the codes of one run differ only in their
    serials, so the mask chosen for the first code is used for the rest (any mask is valid,
    and the label tests decode every code of a sheet). With an executor (worker processes),
    chunks are encoded there while this process draws."""

    def __init__(self, executor: Executor | None = None) -> None:
        self._executor = executor
        self._mask: int | None = None

    def start(self, texts: list[str]) -> Future[list[list[bytes]]] | list[list[bytes]]:
        if not texts:
            return []
        if self._mask is None:
            self._mask = qr.best_mask(texts[0])
        if self._executor is None:
            return qr.matrices(texts, self._mask)
        return self._executor.submit(qr.matrices, texts, self._mask)

    @staticmethod
    def result(started: Future[list[list[bytes]]] | list[list[bytes]]) -> list[list[bytes]]:
        return started if isinstance(started, list) else started.result()


def label_note(code: Code) -> str:
    """A line the label prints under the model: a Matter device's manual pairing code (for
    typing when the QR cannot be scanned), grouped as Matter apps show it."""
    if not isinstance(code, MatterQr):
        return ""
    d = code.manual().render()  # 11 digits, or 21 with the vendor and product ids
    ids = f"-{d[11:16]}-{d[16:]}" if len(d) == 21 else ""
    return f"Setup {d[:4]}-{d[4:7]}-{d[7:11]}{ids}"


def draw_label(
    page: Page,
    sheet: Sheet,
    slot: int,
    device: Device,
    matrix: list[bytes],
    claim_code: str | None,
    note: str = "",
) -> None:
    col, row = slot % sheet.columns, slot // sheet.columns
    x = sheet.left + col * (sheet.label_width + sheet.gap_x)
    y = sheet.page_height - sheet.top - (row + 1) * sheet.label_height - row * sheet.gap_y
    w, h = sheet.label_width, sheet.label_height
    if sheet.outline:
        page.line(x, y, x + w, y)
        page.line(x, y + h, x + w, y + h)
        page.line(x, y, x, y + h)
        page.line(x + w, y, x + w, y + h)
    pad = min(w, h) * 0.06
    size = h - 2 * pad
    page.rects(qr_rects(matrix, x + pad, y + pad, size))
    tx = x + 2 * pad + size
    room = w - (tx - x) - pad
    big = max(5.0, min(9.0, room / (0.62 * max(len(device.serial), 8))))
    line = y + h - pad - big
    page.text(tx, line, big, device.serial, bold=True)
    small = big * 0.8
    for text in (device.model or "", note, f"Claim {claim_code}" if claim_code else ""):
        if text:
            line -= small * 1.5
            page.text(tx, line, small, text[: int(room / (0.5 * small)) or 1])


async def write_labels(  # noqa: PLR0913 - the label sheet's layout options, each optional, as the CLI offers them
    uow_factory: Callable[[], UnitOfWork],
    out: BinaryIO,
    options: LabelOptions,
    *,
    scope: Scope,
    group: str | None = None,
    state: str | None = None,
    model: str | None = None,
    tags: dict[str, str] | None = None,
    serial_prefix: str | None = None,
    progress: Callable[[int], None] | None = None,
    executor: Executor | None = None,
) -> int:
    """Write a PDF of labels for the matching devices; returns how many. With an executor,
    QR codes are encoded there, one listing page ahead of the drawing."""
    sheet = check_options(options)
    encoder = QrEncoder(executor)
    written = 0
    with StreamingPdf(out, sheet.page_width, sheet.page_height) as pdf:
        sheets = _Sheets(pdf, sheet)
        pending: tuple[list[Device], Any] | None = None
        async for batch in _device_pages(
            uow_factory,
            scope=scope,
            group=group,
            state=state,
            model=model,
            tags=tags,
            serial_prefix=serial_prefix,
        ):
            texts = [device_code(d, options).render() for d in batch]
            started = encoder.start(texts)
            if pending is not None:
                written += sheets.draw(pending[0], encoder.result(pending[1]), options, progress)
            pending = (batch, started)
        if pending is not None:
            written += sheets.draw(pending[0], encoder.result(pending[1]), options, progress)
        sheets.finish(written)
    return written


class _Sheets:
    """Places labels on pages and writes each page when it is full."""

    def __init__(self, pdf: StreamingPdf, sheet: Sheet) -> None:
        self.pdf = pdf
        self.sheet = sheet
        self.page = Page()
        self.slot = 0

    def draw(
        self,
        devices: list[Device],
        matrices: list[list[bytes]],
        options: LabelOptions,
        progress: Callable[[int], None] | None,
    ) -> int:
        codes = options.claim_codes or {}
        device_codes = options.device_codes or {}
        for device, matrix in zip(devices, matrices, strict=True):
            found = device_codes.get(device.serial)
            draw_label(
                self.page,
                self.sheet,
                self.slot,
                device,
                matrix,
                codes.get(device.serial),
                label_note(found) if found else "",
            )
            self.slot += 1
            if self.slot == self.sheet.per_page:
                self.pdf.add_page(self.page)
                self.page, self.slot = Page(), 0
        if progress is not None:
            progress(len(devices))
        return len(devices)

    def finish(self, written: int) -> None:
        if self.slot or written == 0:
            self.pdf.add_page(self.page)


#: The most devices one selection (:func:`selected_devices`) may name.
MAX_SELECTED = 500


async def selected_devices(
    uow: UnitOfWork, *, scope: Scope, serials: Sequence[str]
) -> list[Device]:
    """The devices these serials name, in their order (a serial given twice counts once), all
    in the caller's scope. A serial that names no device and one outside the scope are
    refused alike, together, in one :class:`DeviceNotFound` that lists them (field
    ``serial``): a label run prints all it was asked for, or nothing."""
    problems: list[Problem] = []
    wanted: list[str] = []
    for text in serials:
        try:
            serial = parse_serial(text)
        except InvalidInput as err:
            problems.append(Problem(f"{text!r}: {err.detail}", field="serial"))
            continue
        if serial not in wanted:
            wanted.append(serial)
    if not wanted and not problems:
        problems.append(Problem("choose at least one device", field="serial"))
    elif len(wanted) > MAX_SELECTED:
        problems.append(
            Problem(
                f"{len(wanted)} devices chosen; at most {MAX_SELECTED} at once "
                "(provisiond labels prints any number)",
                field="serial",
            )
        )
    if problems:
        raise InvalidInput("; ".join(p.message for p in problems), problems=problems)
    found: list[Device] = []
    missing: list[str] = []
    async with uow.read():
        for serial in wanted:
            try:
                found.append(await device_in_scope(uow, scope, serial))
            except DeviceNotFound:
                missing.append(serial)
    if missing:
        message = (
            f"no device {', '.join(missing)} that you may see (it does not exist, or it is "
            "outside your groups); nothing was printed"
        )
        raise DeviceNotFound(message, problems=[Problem(message, field="serial")])
    return found


def write_device_labels(out: BinaryIO, options: LabelOptions, devices: Sequence[Device]) -> int:
    """Write a PDF of the labels of ``devices`` (from :func:`selected_devices`), in their
    order; returns how many. No database and no event loop: encoding the QR codes is a
    second or two for 500 labels, so a server runs this in a worker thread."""
    sheet = check_options(options)
    codes = [device_code(d, options).render() for d in devices]
    matrices = QrEncoder.result(QrEncoder().start(codes))
    with StreamingPdf(out, sheet.page_width, sheet.page_height) as pdf:
        sheets = _Sheets(pdf, sheet)
        written = sheets.draw(list(devices), matrices, options, None)
        sheets.finish(written)
    return written


async def _device_pages(
    uow_factory: Callable[[], UnitOfWork],
    *,
    scope: Scope,
    group: str | None,
    state: str | None,
    model: str | None,
    tags: dict[str, str] | None,
    serial_prefix: str | None,
) -> AsyncIterator[list[Device]]:
    cursor = None
    while True:
        page = await list_devices(
            uow_factory(),
            scope=scope,
            group=group,
            state=state,
            model=model,
            tags=tags,
            serial_prefix=serial_prefix,
            cursor=cursor,
            limit=500,
        )
        if page.items:
            yield page.items
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def single_label_image(device: Device, options: LabelOptions, path: Path) -> None:
    """One device's QR code as SVG or PNG (by the file name)."""
    check_options(options)
    text = device_code(device, options).render()
    kind = path.suffix.lower().lstrip(".")
    if kind not in ("svg", "png"):
        problem = Problem("a single label is written as .svg or .png (or .pdf)", field="--out")
        raise InvalidInput(str(problem), problems=[problem])
    segno.make(text, error=QR_ERROR, micro=False).save(str(path), kind=kind, scale=8, border=4)
