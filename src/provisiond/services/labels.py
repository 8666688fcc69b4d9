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
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import segno

from provisiond.domain.device import Device
from provisiond.errors import InvalidInput, Problem
from provisiond.protocols import qr
from provisiond.protocols.codes import Code, DeviceUrl, LoRaWanCode, PayloadError, SerialCode
from provisiond.protocols.pdf import MM, Page, StreamingPdf
from provisiond.services.devices import list_devices
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
    "single-62mm": Sheet("single-62mm", 62 * MM, 29 * MM, 1, 1, 62 * MM, 29 * MM, 0, 0,
                         outline=False),
}
LABEL_FORMATS = ("url", "serial", "lorawan")


@dataclass(frozen=True, slots=True)
class LabelOptions:
    sheet: str = "a4-3x8"
    code_format: str = "url"
    public_url: str = "http://127.0.0.1:8000"
    join_eui: str = "0000000000000000"
    claim_codes: dict[str, str] | None = None  # serial -> claim code (from an import's file)


def check_options(options: LabelOptions) -> Sheet:
    problems = []
    if options.sheet not in SHEETS:
        problems.append(Problem(f"{options.sheet!r} is not a sheet; use one of "
                                f"{', '.join(SHEETS)}", field="--sheet"))
    if options.code_format not in LABEL_FORMATS:
        reason = (" (ESP and Matter labels need each device's secret, which provisiond does "
                  "not hold yet)" if options.code_format in ("esp", "matter") else "")
        problems.append(Problem(f"{options.code_format!r} cannot be printed; use one of "
                                f"{', '.join(LABEL_FORMATS)}{reason}", field="--format"))
    if problems:
        raise InvalidInput("; ".join(str(p) for p in problems), problems=problems)
    return SHEETS[options.sheet]


def read_claim_codes(path: Path) -> dict[str, str]:
    """The claim codes in an import's credentials file (rows of type claim-code)."""
    codes: dict[str, str] = {}
    try:
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                if row.get("credential_type") == "claim-code" and row.get("serial"):
                    codes[row["serial"]] = row.get("secret") or ""
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        problem = Problem(f"cannot read {path}: {err}", field="--codes")
        raise InvalidInput(str(problem), problems=[problem]) from None
    return codes


def device_code(device: Device, options: LabelOptions) -> Code:
    """The code a device's label carries."""
    try:
        if options.code_format == "serial":
            return SerialCode(device.serial)
        if options.code_format == "lorawan":
            join_eui = device.tags.get("join_eui", options.join_eui)  # a LoRaWAN import's
            return LoRaWanCode.parse(LoRaWanCode(join_eui.upper(), device.serial,
                                                 "00000000").render())
        return DeviceUrl(options.public_url.rstrip("/"), device.serial)
    except PayloadError as err:
        raise InvalidInput(f"{device.serial}: {err.message} (LoRaWAN labels need the serial "
                           "to be the DevEUI)", problems=[Problem(err.message,
                                                                  field=device.serial)]
                           ) from None


_DARK_RUN = re.compile(rb"[\x01-\xff]+")


def qr_rects(matrix: list[bytes], x: float, y: float, size: float
             ) -> list[tuple[float, float, float, float]]:
    """The dark modules of a QR matrix, with its 4-module quiet zone, fitted in a ``size``
    square at (x, y), one rectangle per horizontal run."""
    module = size / (len(matrix) + 8)
    rects = []
    for r, row in enumerate(matrix):
        top = y + size - (r + 5) * module
        for run in _DARK_RUN.finditer(row):
            rects.append((x + (run.start() + 4) * module, top,
                          (run.end() - run.start()) * module, module))
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


def draw_label(page: Page, sheet: Sheet, slot: int, device: Device,
               matrix: list[bytes], claim_code: str | None) -> None:
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
    for text in (device.model or "", f"Claim {claim_code}" if claim_code else ""):
        if text:
            line -= small * 1.5
            page.text(tx, line, small, text[:int(room / (0.5 * small)) or 1])


async def write_labels(uow_factory: Callable[[], UnitOfWork], out: BinaryIO,
                       options: LabelOptions, *, group: str | None = None,
                       state: str | None = None, model: str | None = None,
                       tags: dict[str, str] | None = None, serial_prefix: str | None = None,
                       progress: Callable[[int], None] | None = None,
                       executor: Executor | None = None) -> int:
    """Write a PDF of labels for the matching devices; returns how many. With an executor,
    QR codes are encoded there, one listing page ahead of the drawing."""
    sheet = check_options(options)
    encoder = QrEncoder(executor)
    written = 0
    with StreamingPdf(out, sheet.page_width, sheet.page_height) as pdf:
        sheets = _Sheets(pdf, sheet)
        pending: tuple[list[Device], Any] | None = None
        async for batch in _device_pages(uow_factory, group=group, state=state, model=model,
                                         tags=tags, serial_prefix=serial_prefix):
            texts = [device_code(d, options).render() for d in batch]
            started = encoder.start(texts)
            if pending is not None:
                written += sheets.draw(pending[0], encoder.result(pending[1]), options,
                                       progress)
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

    def draw(self, devices: list[Device], matrices: list[list[bytes]], options: LabelOptions,
             progress: Callable[[int], None] | None) -> int:
        codes = options.claim_codes or {}
        for device, matrix in zip(devices, matrices, strict=True):
            draw_label(self.page, self.sheet, self.slot, device, matrix,
                       codes.get(device.serial))
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


async def _device_pages(uow_factory: Callable[[], UnitOfWork], *, group: str | None,
                        state: str | None, model: str | None, tags: dict[str, str] | None,
                        serial_prefix: str | None) -> AsyncIterator[list[Device]]:
    cursor = None
    while True:
        page = await list_devices(uow_factory(), group=group, state=state, model=model,
                                  tags=tags, serial_prefix=serial_prefix, cursor=cursor,
                                  limit=500)
        if page.items:
            yield page.items
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def single_label_image(device: Device, options: LabelOptions, path: Path) -> None:
    """One device's QR code as SVG or PNG (by the file name)."""
    text = device_code(device, options).render()
    kind = path.suffix.lower().lstrip(".")
    if kind not in ("svg", "png"):
        problem = Problem("a single label is written as .svg or .png (or .pdf)", field="--out")
        raise InvalidInput(str(problem), problems=[problem])
    segno.make(text, error=QR_ERROR, micro=False).save(str(path), kind=kind, scale=8, border=4)
