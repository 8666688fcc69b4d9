"""The devices a user may see: the list, one device's page, releasing it, and a label's URL."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter
from fastapi.responses import Response

from provisiond.domain.serials import parse_serial
from provisiond.errors import DeviceAlreadyClaimed, Forbidden, InvalidInput
from provisiond.services.claims import ownership, visibility
from provisiond.services.devices import list_devices
from provisiond.web.pages.rendering import (
    Page,
    PageDep,
    PageRoute,
    client_address,
    error_titles,
    redirect,
)

router = APIRouter(include_in_schema=False, route_class=PageRoute)


def _released(text: str) -> str | None:
    """The serial a release redirect names, to say it happened (only a serial's shape)."""
    try:
        return parse_serial(text) if text else None
    except InvalidInput:
        return None


@router.get("/devices")
async def devices_page(
    page: PageDep, q: str = "", cursor: str | None = None, released: str = ""
) -> Response:
    c = page.container
    done = _released(released)
    try:
        result = await list_devices(
            c.uow(), scope=page.user.scope, serial_prefix=q.strip() or None, cursor=cursor, limit=50
        )
    except InvalidInput as err:
        return page.render("devices.html", 422, devices=[], q=q, next_cursor=None, error=err.detail)
    return page.render(
        "devices.html", devices=result.items, q=q, next_cursor=result.next_cursor, released=done
    )


@router.get("/devices/{serial}")
async def device_page(page: PageDep, serial: str) -> Response:
    c = page.container
    device, events, claims = await visibility.device_timeline(
        c.uow(), c.limiter, c.claim_policy, page.user, serial
    )
    return page.render(
        "device.html",
        device=device,
        events=events,
        claims=claims,
        may_release=ownership.may_release(page.user, device),
        now=c.now(),
    )


_NOT_RELEASED = {Forbidden: "Not released", DeviceAlreadyClaimed: "Not released"}


async def _ask_release(page: Page, serial: str) -> Response:
    """The question: release this device? (a page of its own: no JavaScript needed)."""
    c = page.container
    found = await ownership.releasable_device(
        c.uow(), user=page.user, serial=serial, limiter=c.limiter, policy=c.claim_policy
    )
    return page.render("release.html", device=found.device, policy=found.policy.value)


@router.get("/devices/{serial}/release")
@error_titles(_NOT_RELEASED)
async def device_release_form(page: PageDep, serial: str) -> Response:
    return await _ask_release(page, serial)


@router.post("/devices/{serial}/release")
@error_titles(_NOT_RELEASED)
async def device_release(page: PageDep, serial: str) -> Response:
    form = await page.form()
    if form.get("confirm") != "yes":  # not confirmed (a stray post): ask, change nothing
        return await _ask_release(page, serial)
    c = page.container
    await ownership.release_device(
        c.uow(),
        user=page.user,
        serial=serial,
        now=c.now(),
        limiter=c.limiter,
        policy=c.claim_policy,
    )
    return redirect(f"/devices?released={quote(serial)}")


@router.get("/d/{serial}")
async def label(page: PageDep, serial: str) -> Response:
    """A label's URL: the device's page for a user who may see it, the claim form (with the
    serial filled in; starting the claim is a POST) for one who may claim it."""
    c = page.container
    where = await visibility.label_target(
        c.uow(),
        c.limiter,
        c.claim_policy,
        user=page.user,
        serial_text=serial,
        address=client_address(page.request),
    )
    if where == "device":
        return redirect(f"/devices/{quote(serial)}")
    return page.render("provision.html", serial=serial, target="me", from_label=True)
