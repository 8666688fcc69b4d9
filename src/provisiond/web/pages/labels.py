"""The console's labels: choose devices and a sheet, preview one label, download the PDF
(services.labels, as `provisiond labels`).

Everything here is a GET (nothing changes): the selection travels as repeated ``serial``
parameters (``/labels?serial=A&serial=B``, as the devices list links here). A selection is
printed whole or not at all: a serial that names no device the admin may see (missing, or
another customer's: the same words) refuses the PDF and the preview, with the serials named
on the page. URL labels need the ``public_url`` setting; without it the page says so on the
format field.
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query
from fastapi.responses import Response

from provisiond.domain.device import Device
from provisiond.errors import DeviceNotFound, InvalidInput, ProvisiondError, PublicUrlNotConfigured
from provisiond.services.devices import list_devices
from provisiond.services.group_choices import list_group_choices
from provisiond.services.label_preview import SVG_TYPE, label_svg
from provisiond.services.labels import (
    MAX_SELECTED,
    SHEETS,
    LabelOptions,
    check_options,
    selected_devices,
    write_device_labels,
)
from provisiond.web.pages.rendering import SECURITY_HEADERS, AdminDep, Page, PageRoute

router = APIRouter(include_in_schema=False, route_class=PageRoute)

#: The codes the console prints (esp and matter labels need the manufacturing file of
#: secrets provisiond does not keep: `provisiond labels --secrets`).
FORMATS = (
    ("url", "The device's URL (public_url)"),
    ("serial", "The serial alone"),
    ("lorawan", "LoRaWAN TR005 (the serial is the DevEUI)"),
)
SHEET_NAMES = {
    "a4-3x8": "A4, 3 x 8 labels (70 x 37 mm)",
    "letter-3x10": "US Letter, 3 x 10 labels (Avery 5160)",
    "single-62mm": "One 62 x 29 mm label per page (label printer)",
}
#: The option fields the service's problems name (the CLI's options).
_FIELDS = {"--sheet": "sheet", "--format": "format", "public_url": "format"}
FOUND_PER_SEARCH = 50

Serials = Annotated[list[str], Query(alias="serial")]


@dataclass(slots=True)
class Choice:
    """What the form asks for, and what is wrong with it (field -> message)."""

    serials: list[str]
    sheet: str
    code_format: str
    errors: dict[str, str] = field(default_factory=dict)

    def options(self, page: Page) -> LabelOptions:
        return LabelOptions(
            sheet=self.sheet,
            code_format=self.code_format,
            public_url=page.container.settings.public_url,
        )

    def refused(self, err: ProvisiondError) -> None:
        if isinstance(err, PublicUrlNotConfigured):
            self.errors["format"] = err.detail
            return
        for problem in err.problems or []:
            key = _FIELDS.get(problem.field or "", problem.field or "")
            self.errors[key] = (
                f"{self.errors[key]}; {problem.message}" if key in self.errors else problem.message
            )
        if not err.problems:
            self.errors[""] = err.detail

    def query(self, **more: str) -> str:
        pairs = [("serial", s) for s in self.serials]
        pairs += [("sheet", self.sheet), ("format", self.code_format), *more.items()]
        return urlencode(pairs)


def _choice(serials: list[str], sheet: str, code_format: str) -> Choice:
    choice = Choice([s for s in serials if s.strip()], sheet.strip(), code_format.strip().lower())
    if choice.code_format not in dict(FORMATS):
        choice.errors["format"] = (
            f"{code_format!r} is not a code the console prints: choose "
            f"{', '.join(dict(FORMATS))} (esp and matter labels carry device secrets provisiond "
            "does not keep: print them with provisiond labels --secrets)"
        )
    if choice.sheet not in SHEETS:
        choice.errors["sheet"] = f"{sheet!r} is not a sheet: choose {', '.join(SHEETS)}"
    return choice


async def _render(page: Page, choice: Choice, status: int = 200, **context: Any) -> Response:
    c, scope = page.container, page.user.scope
    if not choice.errors:
        try:
            check_options(choice.options(page))
        except (InvalidInput, PublicUrlNotConfigured) as err:
            choice.refused(err)
    chosen: list[Device] = []
    if choice.serials and "serial" not in choice.errors:
        try:
            chosen = await selected_devices(c.uow(), scope=scope, serials=choice.serials)
        except (InvalidInput, DeviceNotFound) as err:
            choice.refused(err)
    q, group = context.pop("q", ""), context.pop("group", "")
    found: list[Device] = []
    try:
        listing = await list_devices(
            c.uow(),
            scope=scope,
            group=group or None,
            serial_prefix=q or None,
            limit=FOUND_PER_SEARCH,
        )
        found = [d for d in listing.items if d.serial not in {x.serial for x in chosen}]
    except InvalidInput as err:
        choice.errors.setdefault("q", err.detail)
    groups = await list_group_choices(c.uow(), scope=scope, limit=500)
    preview = None
    if chosen and not choice.errors:
        preview = "/labels/preview.svg?" + urlencode(
            [("serial", chosen[0].serial), ("sheet", choice.sheet), ("format", choice.code_format)]
        )
    sheet = SHEETS.get(choice.sheet)
    return page.render(
        "labels_form.html",
        status,
        choice=choice,
        errors=choice.errors,
        chosen=chosen,
        found=found,
        q=q,
        group=group,
        group_options=[("", "All my groups")] + [(g.path, g.path) for g in groups],
        sheet_options=list(SHEET_NAMES.items()),
        format_options=list(FORMATS),
        preview=preview,
        pages=-(-len(chosen) // sheet.per_page) if sheet and chosen else 0,
        max_selected=MAX_SELECTED,
        **context,
    )


@router.get("/labels")
async def labels_page(
    page: AdminDep,
    serials: Serials = [],  # noqa: B006 - FastAPI copies a Query default
    q: str = "",
    group: str = "",
    sheet: str = "a4-3x8",
    format: str = "url",
) -> Response:
    return await _render(page, _choice(serials, sheet, format), q=q.strip(), group=group.strip())


def _refused_image(message: str) -> Response:
    """What an image request gets for a choice that cannot be drawn (the page says it on
    its field and shows no image)."""
    return Response(
        message, status_code=422, media_type="text/plain; charset=utf-8", headers=SECURITY_HEADERS
    )


@router.get("/labels/preview.svg")
async def label_preview(
    page: AdminDep,
    serial: str = "",
    sheet: str = "a4-3x8",
    format: str = "url",
) -> Response:
    """One device's label as SVG; a device the admin may not see is the "Not found" page, as
    a missing one is."""
    choice = _choice([serial], sheet, format)
    if choice.errors:
        return _refused_image("; ".join(choice.errors.values()))
    options = choice.options(page)
    try:
        check_options(options)
        (device,) = await selected_devices(
            page.container.uow(), scope=page.user.scope, serials=[serial]
        )
        svg = label_svg(device, options)
    except (InvalidInput, PublicUrlNotConfigured) as err:
        return _refused_image(err.detail)
    return Response(svg, media_type=SVG_TYPE, headers=SECURITY_HEADERS)


@router.get("/labels/pdf")
async def labels_pdf(
    page: AdminDep,
    serials: Serials = [],  # noqa: B006 - FastAPI copies a Query default
    sheet: str = "a4-3x8",
    format: str = "url",
) -> Response:
    """The labels of the chosen devices as a PDF attachment; or the page, with what is
    wrong on its field, and no PDF."""
    c = page.container
    choice = _choice(serials, sheet, format)
    if choice.errors:
        return await _render(page, choice, 422)
    options = choice.options(page)
    out = io.BytesIO()
    try:
        check_options(options)
        chosen = await selected_devices(c.uow(), scope=page.user.scope, serials=choice.serials)
        # the QR codes are a second or two of CPU for 500 labels: off the event loop
        count = await asyncio.to_thread(write_device_labels, out, options, chosen)
    except (InvalidInput, PublicUrlNotConfigured, DeviceNotFound) as err:
        choice.refused(err)
        status = 404 if isinstance(err, DeviceNotFound) else 422
        return await _render(page, choice, status)
    stamp = c.now().strftime("%Y%m%d-%H%M%S")
    headers = {
        **SECURITY_HEADERS,
        "Content-Disposition": f'attachment; filename="labels-{stamp}.pdf"',
        "X-Provisiond-Labels": str(count),
    }
    return Response(out.getvalue(), media_type="application/pdf", headers=headers)
